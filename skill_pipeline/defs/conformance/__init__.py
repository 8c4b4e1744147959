"""Conformance domain: how new runs conform to the published skills (``run_conformance``) and its drift check."""
