"""Skill quality on a real fast-engine simulation scored against its ground truth (the benchmark's scorer)."""
import importlib.util
import re
from pathlib import Path

import pytest

from workloads.simulate import simulate

TYPE_NAME = re.compile(r"\b(?:an? )?(?:string|enum|integer|boolean)\b", re.IGNORECASE)
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_skill_quality.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_skill_quality", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_300_run_simulation_skill_groups_match_ground_truth(tmp_path):
    url, truth = f"sqlite:///{tmp_path / 'capture.db'}", tmp_path / "truth.jsonl"
    simulate(runs=300, seed=11, engine="fast", url=url, ground_truth=truth)
    q = _bench().evaluate(url, truth)
    assert q["runs"] == 300 and q["true_groups"] == 13
    assert q["ari"] >= 0.95 and q["ari"] > q["baseline_ari"]
    assert q["slot_f1"] >= 0.9
    assert q["step_precision"] >= 0.95 and q["step_recall"] >= 0.95
    assert q["interval_coverage"] == 1.0
    for skill in q["skills"]:  # every skill reads like documentation: no type names, no member run's literal
        assert not TYPE_NAME.search(skill["title"]), skill["title"]
        for name, description in skill["parameters"].items():
            assert description and not TYPE_NAME.fullmatch(description) and not TYPE_NAME.fullmatch(name), name
            assert not any(len(v) > 2 and v in description for v in skill["values"]), (name, description)
