"""Workloads: drive real AG2 agents offline (scripted model clients) to produce realistic captured runs."""
