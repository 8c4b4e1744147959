"""Candidate-skill factories shared by the skill-library tests, and a library mined from simulated runs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest


def plot_candidate(**overrides: Any) -> dict[str, Any]:
    doc = {
        "name": "Plot function",
        "title": "Plot a function",
        "description": "Load a function definition, evaluate it and draw a line plot.",
        "category": "visualisation",
        "tags": ["matplotlib"],
        "task_template": "Plot {function} over [{x_min}, {x_max}]",
        "steps": [
            {"agent": "planner", "action": "plan", "tool": None},
            {"agent": "engineer", "action": "write_code", "tool": "python",
             "description": "Write code that plots {function}"},
            {"agent": "executor", "action": "execute", "tool": "python",
             "repeat": {"min": 1, "max": 4, "until": "success"},
             "expected_outputs": [{"type": "plot", "format": "png"}]},
        ],
        "parameters": {
            "function": {"type": "string", "required": True, "examples": ["sin(x)"]},
            "x_min": {"type": "number", "required": False, "default": 0},
            "x_max": {"type": "number", "required": False, "default": 10},
        },
        "preconditions": ["python with matplotlib"],
        "statistics": {"support": 12, "success_rate": 0.92, "success_wilson": [0.65, 0.99],
                       "repeatability": 0.9, "duration_s": {"p50": 41.0, "p95": 80.0},
                       "cost_usd": {"p50": 0.11, "p95": 0.2}, "retries": {"mean": 0.4, "max": 2},
                       "failure_hotspots": [{"step": 2, "failure_rate": 0.08, "agent": "executor"}]},
        "provenance": {"source_runs": ["run-1", "run-2"], "cluster_id": 3,
                       "extracted_at": "2026-01-01T00:00:00Z"},
    }
    doc.update(overrides)
    return doc


def table_candidate(**overrides: Any) -> dict[str, Any]:
    doc = {
        "name": "summarise dataset",
        "description": "Compute summary statistics of a CSV file and write a table.",
        "tags": ["pandas"],
        "task_template": "Summarise the columns of {data_file}",
        "steps": [
            {"agent": "engineer", "action": "load_data", "tool": "python"},
            {"agent": "engineer", "action": "describe", "tool": "python",
             "expected_outputs": [{"type": "table", "format": "csv"}]},
            {"agent": "researcher", "action": "report", "tool": None, "optional": True},
        ],
        "parameters": {"data_file": {"type": "string", "required": True}},
        "statistics": {"support": 7, "success_rate": 1.0},
        "provenance": {"source_runs": ["run-9"], "cluster_id": 5},
    }
    doc.update(overrides)
    return doc


def search_candidate(**overrides: Any) -> dict[str, Any]:
    doc = {
        "name": "literature search",
        "description": "Find papers about a topic and summarise them.",
        "task_template": "Find recent papers on {topic}",
        "steps": [
            {"agent": "researcher", "action": "search", "tool": "arxiv"},
            {"agent": "researcher", "action": "summarise", "tool": None,
             "expected_outputs": [{"type": "text", "format": "md"}]},
        ],
        "parameters": {"topic": {"type": "string", "required": True},
                       "max_papers": {"type": "integer", "required": False, "default": 5, "enum": [5, 10, 20]}},
        "statistics": {"support": 5, "success_rate": 0.8},
        "provenance": {"source_runs": ["run-20"]},
    }
    doc.update(overrides)
    return doc


def variant(doc: dict[str, Any], mutate: Any) -> dict[str, Any]:
    """A deep copy of ``doc`` changed by ``mutate(copy)``."""
    out = copy.deepcopy(doc)
    mutate(out)
    return out


@pytest.fixture
def candidates() -> list[dict[str, Any]]:
    return [plot_candidate(), table_candidate(), search_candidate()]


@pytest.fixture(scope="session")
def mined(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A capture store of 80 fast-engine simulated runs and the library ``skillmine mine`` published from it."""
    from mined_library import mine_library  # Dagster and the simulator load only for the tests that mine

    from workloads.simulate import simulate

    root = tmp_path_factory.mktemp("mined")
    url = f"sqlite:///{root / 'capture.db'}"
    simulate(runs=80, seed=11, url=url, ground_truth=root / "truth.jsonl")
    return url, mine_library(url, root)
