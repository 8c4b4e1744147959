"""Published skills read like documentation (issue 11, item 4), on every benchmark workload: the simulator, the
external generator and the real CMBAgent records, each mined the way a user mines it (``skillmine mine`` with its
defaults). EVERY published skill is checked (``documentation.documentation_flags``): a title that says what the skill
does as an instruction, never a type name or a member run's value, never (for one run) that run's request; parameters
named for their role and described without a member run's value; where the truth is known, without a true value
either."""

import json
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from benchmarks.external_workload import generate, read_truth
from benchmarks.external_workload.examine import (
    members_by_skill,
    mine,
    published_skills,
    run_cli,
    run_memberships,
    run_slot_values,
)

from .documentation import documentation_flags


def _tasks(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as con:
            return {str(r): str(t or "") for r, t in con.execute(text("SELECT id, task_description FROM workflow_runs"))}
    finally:
        engine.dispose()


def _report(home: Path, url: str, truth: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, list[str]]:
    """Published skill name -> its documentation flags, for the store at ``url`` mined into ``home``."""
    mine(home, url)
    skills = published_skills(home / "library")
    members = members_by_skill(skills, run_memberships(home / "warehouse.duckdb"))
    values, tasks = run_slot_values(home / "warehouse.duckdb"), _tasks(url)
    asked = Counter(s["task_template"] for s in skills)
    return {s["name"]: documentation_flags(s, [tasks[r] for r in members[s["name"]]],
                                           [values.get(r, {}) for r in members[s["name"]]],
                                           [truth[r] for r in members[s["name"]] if truth and r in truth],
                                           {t for t, n in asked.items() if n > 1})
            for s in skills}


def _problems(report: dict[str, list[str]]) -> str:
    return "\n".join(f"{name}: {flag}" for name, flags in sorted(report.items()) for flag in flags)


@pytest.mark.timeout(300)
def test_external_workload_skills_read_well(tmp_path: Path) -> None:
    url, truth = f"sqlite:///{tmp_path / 'capture.db'}", tmp_path / "truth.jsonl"
    generate(runs=260, seed=3, url=url, truth_path=truth)
    report = _report(tmp_path, url, {t["run_id"]: t["params"] for t in read_truth(truth)})
    assert report, "the external workload published no skill"
    assert not _problems(report), "published skills that do not read like documentation:\n" + _problems(report)


def _simulated_report(home: Path, runs: int, seed: int, engine: str) -> dict[str, list[str]]:
    """Flags of the skills mined from a ``skillmine simulate`` workload, judged with its ground truth too."""
    url, truth = f"sqlite:///{home / 'capture.db'}", home / "truth.jsonl"
    run_cli(home, "simulate", "--runs", str(runs), "--seed", str(seed), "--engine", engine, "--url", url,
            "--ground-truth", str(truth), "--quiet")
    return _report(home, url, {r["run_id"]: r["params"] for r in map(json.loads, truth.read_text().splitlines())})


@pytest.mark.timeout(300)
def test_simulator_skills_read_well(tmp_path: Path) -> None:
    report = _simulated_report(tmp_path, 300, 5, "fast")
    assert report, "the simulator workload published no skill"
    assert not _problems(report), "published skills that do not read like documentation:\n" + _problems(report)


@pytest.mark.timeout(300)
def test_simulator_ag2_engine_skills_read_well(tmp_path: Path) -> None:
    """Real AG2 agents at the quickstart's scale: skills of one or two runs, whose values are easily shared."""
    report = _simulated_report(tmp_path, 30, 1, "ag2")
    assert len(report) >= 5, sorted(report)
    assert not _problems(report), "published skills that do not read like documentation:\n" + _problems(report)


@pytest.mark.timeout(500)
def test_real_record_skills_read_well(fixture_path: Callable[..., Path], tmp_path: Path) -> None:
    """Every real record imported the way a user imports it (``skillmine import``), then mined."""
    url, cmb = f"sqlite:///{tmp_path / 'capture.db'}", fixture_path("cmbagent")
    run_cli(tmp_path, "db", "upgrade")
    imports = [("cmbagent-db", db) for db in sorted((cmb / "mars_sqlite").glob("*.db"))] + [
        ("cmbagent-history", cmb / folder)
        for folder in ("mars_sessions_2026-02-18", "upstream_cmbagent_history", "mars_idea_generation_task")] + [
        ("cmbagent-trials", cmb / "benchmarks_cmbagent_trials.jsonl")]
    for kind, path in imports:
        run_cli(tmp_path, "import", kind, str(path), "--url", url, "--quiet")
    report = _report(tmp_path, url)
    assert len(report) >= 5, sorted(report)
    assert not _problems(report), "published skills that do not read like documentation:\n" + _problems(report)
