"""Shared helpers for the mining tests."""
from __future__ import annotations

import random

import pytest

from skill_pipeline.mining.synthetic import generate_synthetic_sequences, render_run  # noqa: F401  (re-export)

ONE_SHOT = [("plain", ["agent_call:engineer", "agent_call:engineer_response_formatter"]),
            ("exec", ["agent_call:executor", "code_exec:executor:ok", "agent_call:executor_response_formatter"]),
            ("plain", ["agent_call:control", "tool_call:control:record_status", "agent_call:terminator",
                       "tool_call:terminator:terminate_session"])]
PLAN_RESEARCH = [("plain", ["agent_call:plan_setter", "agent_call:planner", "agent_call:planner_response_formatter",
                            "tool_call:planner:record_plan", "agent_call:plan_reviewer",
                            "tool_call:plan_reviewer:record_review", "agent_call:control",
                            "agent_call:researcher", "agent_call:researcher_response_formatter",
                            "tool_call:researcher:save_markdown", "agent_call:control_starter"]),
                 ("exec", ["agent_call:engineer", "agent_call:executor", "code_exec:executor:ok"]),
                 ("plain", ["agent_call:control", "agent_call:terminator"])]
IDEAS = [("plain", ["agent_call:control_starter", "agent_call:idea_maker", "agent_call:idea_maker_nest",
                    "tool_call:idea_maker:record_ideas", "agent_call:control", "agent_call:idea_hater",
                    "agent_call:idea_hater_response_formatter", "agent_call:control", "agent_call:idea_maker",
                    "agent_call:idea_maker_nest", "tool_call:idea_maker:record_ideas", "agent_call:terminator"])]
PLANTED = [ONE_SHOT, PLAN_RESEARCH, IDEAS]


def planted_sequences(n: int, templates, noise: float, seed: int):
    """n runs over hand-made CMBAgent-shaped templates with retries (1-4), installer detours, noise."""
    rng = random.Random(seed)
    seqs, labels = [], []
    for i in range(n):
        t = i % len(templates)
        seqs.append(render_run(templates[t], rng, noise, retry_prob=0.4, installer_prob=0.2)[0])
        labels.append(t)
    return seqs, labels


@pytest.fixture
def planted():
    return planted_sequences
