"""The AG2 engine: real AG2 Classic agents (offline scripted models) under capture, real code execution.

Seed 2's first 12 runs cover every mode, family and outcome; the fast engine must write the very same streams.
"""

import hashlib
from pathlib import Path

import pytest
from sim_streams import attempts, run_rows, stored_occurrences
from sqlalchemy import create_engine, text

from workloads.families import FAMILIES, MODES
from workloads.ground_truth import read_ground_truth
from workloads.script import OUTCOMES
from workloads.simulate import simulate

SEED, RUNS = 2, 12


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("ag2sim")
    ag2_url, fast_url = f"sqlite:///{root / 'ag2.db'}", f"sqlite:///{root / 'fast.db'}"
    summary = simulate(runs=RUNS, seed=SEED, engine="ag2", url=ag2_url, ground_truth=root / "ag2.jsonl",
                       work_dir=root / "work")
    simulate(runs=RUNS, seed=SEED, engine="fast", url=fast_url, ground_truth=root / "fast.jsonl")
    return ag2_url, fast_url, read_ground_truth(root / "ag2.jsonl"), root / "work", summary


def test_ag2_runs_cover_every_mode_family_and_outcome(engines) -> None:
    _, _, truth, _, summary = engines
    assert summary.runs == RUNS and summary.events > 1000
    assert {t.mode for t in truth} == set(MODES)
    assert {t.family for t in truth} == set(FAMILIES)
    assert {t.outcome for t in truth} == set(OUTCOMES)
    assert {t.engine for t in truth} == {"ag2"}


def test_fast_engine_writes_the_streams_ag2_capture_records(engines) -> None:
    ag2_url, fast_url, truth, _, _ = engines
    for t in truth:
        assert run_rows(ag2_url, t.run_id) == run_rows(fast_url, t.run_id), (t.mode, t.family, t.outcome)


def test_one_run_per_family_has_the_same_agent_and_event_type_sequence(engines) -> None:
    ag2_url, fast_url, truth, _, _ = engines
    for family in FAMILIES:
        t = next(t for t in truth if t.family == family)
        tokens = [[f"{e[1]}:{e[3]}" for e in run_rows(url, t.run_id)["events"]] for url in (ag2_url, fast_url)]
        assert tokens[0] == tokens[1]
        assert "agent_call:control" in tokens[0] or "agent_call:idea_maker" in tokens[0]


def test_ag2_engine_really_executes_code(engines) -> None:
    ag2_url, _, truth, work, _ = engines
    engine = create_engine(ag2_url)
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT f.run_id, f.file_path, f.content_hash, f.size_bytes, p.agent_name, p.outputs "
            "FROM files f JOIN execution_events g ON g.id = f.event_id "
            "JOIN execution_events p ON p.id = g.parent_event_id WHERE p.event_type = 'code_exec'")).all()
        failures = conn.execute(text("SELECT e.run_id, e.error_message FROM execution_events e "
                                     "WHERE e.event_type = 'error' AND e.event_subtype = 'code_exec'")).all()
    engine.dispose()
    dirs = {p.name.split("_")[2]: p for p in Path(work).iterdir() if p.name.startswith("run_")}
    plots = 0
    for run_id, path, digest, size, agent, _ in rows:
        content = (dirs[run_id[:8]] / path).read_bytes()
        assert (hashlib.sha256(content).hexdigest(), len(content)) == (digest, size)
        assert agent in {"executor", "executor_bash", "researcher_executor"}
        plots += content.startswith(b"\x89PNG\r\n\x1a\n")
    assert plots >= 1
    by_outcome = {t.run_id: t.outcome for t in truth}
    assert {by_outcome[run] for run, _ in failures} == {"retry", "installer"}
    assert all("Traceback (most recent call last)" in message for _, message in failures)
    assert any("ModuleNotFoundError: No module named" in message for _, message in failures)


def test_ag2_retries_match_ground_truth_and_truth_stays_out(engines) -> None:
    ag2_url, _, truth, _, _ = engines
    for t in truth:
        if t.outcome in ("retry", "success") and t.family in ("plot_function", "fit_model", "dataset_statistic"):
            assert attempts(ag2_url, t.run_id) == (t.n_attempts, t.n_attempts - 1)
    assert stored_occurrences(ag2_url, {t.template_id for t in truth} | {t.template for t in truth}) == []


def test_abandoned_runs_stay_executing_at_approval(engines) -> None:
    ag2_url, _, truth, _, _ = engines
    abandoned = [t for t in truth if t.outcome == "abandoned"]
    engine = create_engine(ag2_url)
    with engine.connect() as conn:
        for t in abandoned:
            run = conn.execute(text("SELECT status, completed_at FROM workflow_runs WHERE id = :r"),
                               {"r": t.run_id}).one()
            nodes = conn.execute(text("SELECT node_type, status FROM dag_nodes WHERE run_id = :r "
                                      "ORDER BY order_index"), {"r": t.run_id}).all()
            assert tuple(run) == ("executing", None)
            assert [tuple(n) for n in nodes] == [("planning", "completed"), ("approval", "running")]
    engine.dispose()
    assert abandoned
