"""Published skills read like documentation (issue 11, item 4): no title or parameter description is a type name
("A string", "an enum") or quotes one member run's literal. Both workloads are mined the way a user mines them,
with ``skillmine mine``; each skill is judged against the true parameter values of its member runs."""

import json
from pathlib import Path

import pytest

from benchmarks.external_workload import generate, read_truth
from benchmarks.external_workload.examine import mine, readability_report, run_cli


def _problems(report: dict[str, list[str]]) -> str:
    return "\n".join(f"{name}: {flag}" for name, flags in sorted(report.items()) for flag in flags)


@pytest.mark.timeout(240)
def test_external_workload_skills_read_well(tmp_path: Path) -> None:
    url, truth = f"sqlite:///{tmp_path / 'capture.db'}", tmp_path / "truth.jsonl"
    generate(runs=260, seed=3, url=url, truth_path=truth)
    mine(tmp_path, url)
    report = readability_report(tmp_path, {t["run_id"]: t["params"] for t in read_truth(truth)})
    assert report, "the external workload published no skill"
    assert not _problems(report), "published skills that do not read like documentation:\n" + _problems(report)


@pytest.mark.timeout(240)
def test_simulator_skills_read_well(tmp_path: Path) -> None:
    url, truth = f"sqlite:///{tmp_path / 'capture.db'}", tmp_path / "truth.jsonl"
    run_cli(tmp_path, "simulate", "--runs", "150", "--seed", "5", "--engine", "fast", "--url", url,
            "--ground-truth", str(truth), "--quiet")
    mine(tmp_path, url)
    params = {r["run_id"]: r["params"] for r in map(json.loads, truth.read_text().splitlines()) if r}
    report = readability_report(tmp_path, params)
    assert report, "the simulator workload published no skill"
    assert not _problems(report), "published skills that do not read like documentation:\n" + _problems(report)
