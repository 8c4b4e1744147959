"""The fast engine: reproducible streams, realistic coverage, ground truth kept out of the store."""

import hashlib
from collections import Counter
from datetime import UTC, datetime

import pytest
from sim_streams import attempts, stored_occurrences
from sqlalchemy import create_engine, select, text

from capture.store.capture_store import EVENTS
from workloads.artefacts import PRODUCERS
from workloads.families import FAMILIES, MODES
from workloads.ground_truth import read_ground_truth
from workloads.script import OUTCOMES, build_run_script
from workloads.simulate import simulate

EVENT_COLUMNS = ("id", "run_id", "node_id", "parent_event_id", "event_type", "event_subtype", "agent_name",
                 "timestamp", "started_at", "completed_at", "duration_ms", "inputs", "outputs", "error_message",
                 "meta", "execution_order", "depth", "status")


def _plain(value):
    """Backend-neutral values: UTC times without tzinfo (SQLite returns naive UTC)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    return value


def _events(url: str) -> list[tuple]:
    engine = create_engine(url)
    columns = [EVENTS.c[name] for name in EVENT_COLUMNS]
    with engine.connect() as conn:
        rows = conn.execute(select(*columns).order_by(EVENTS.c.run_id, EVENTS.c.execution_order)).all()
    engine.dispose()
    return [tuple(_plain(v) for v in row) for row in rows]


def test_same_seed_gives_the_same_event_streams(tmp_path) -> None:
    urls = [f"sqlite:///{tmp_path / name}.db" for name in ("a", "b", "c")]
    for url, seed in zip(urls, (7, 7, 8)):
        simulate(runs=12, seed=seed, url=url, ground_truth=tmp_path / f"{seed}-{url[-4:]}.jsonl")
    first, second, other = (_events(u) for u in urls)
    assert len(first) > 500
    assert first == second
    assert first != other


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim200")
    url = f"sqlite:///{root / 'capture.db'}"
    summary = simulate(runs=200, seed=42, url=url, ground_truth=root / "truth.jsonl")
    return url, read_ground_truth(root / "truth.jsonl"), summary


def test_200_runs_cover_every_mode_family_and_outcome(simulated) -> None:
    _, truth, summary = simulated
    assert len(truth) == summary.runs == 200
    assert {t.mode for t in truth} == set(MODES)
    assert {t.family for t in truth} == set(FAMILIES)
    assert {t.outcome for t in truth} == set(OUTCOMES)
    assert summary.by_outcome == Counter(t.outcome for t in truth)
    assert all(t.outcome != "abandoned" or t.mode == "human_in_the_loop" for t in truth)
    assert all((t.family == "generate_ideas") == (t.mode == "idea_generation") for t in truth)


def test_run_and_node_status_follow_the_outcome(simulated) -> None:
    url, truth, _ = simulated
    engine = create_engine(url)
    with engine.connect() as conn:
        runs = dict(conn.execute(text("SELECT id, status FROM workflow_runs")).all())
        nodes = conn.execute(text("SELECT run_id, meta, status, order_index FROM dag_nodes "
                                  "ORDER BY run_id, order_index")).all()
        approvals = Counter(conn.execute(text(
            "SELECT event_subtype FROM execution_events WHERE event_type = 'approval_requested'")).scalars())
        limited = set(conn.execute(text("SELECT run_id FROM execution_events WHERE event_type = 'error' "
                                        "AND event_subtype = 'llm_call' AND error_message LIKE '%Error code: 429%'"))
                      .scalars())
    engine.dispose()
    expected = {"success": "completed", "retry": "completed", "installer": "completed", "rate_limit": "failed",
                "abandoned": "executing"}
    assert {t.run_id: runs[t.run_id] for t in truth} == {t.run_id: expected[t.outcome] for t in truth}
    assert limited == {t.run_id for t in truth if t.outcome == "rate_limit"}
    for t in (t for t in truth if t.outcome == "rate_limit"):
        statuses = [status for run, _, status, _ in nodes if run == t.run_id]
        first_failed = statuses.index("failed")
        assert statuses[first_failed:] == ["failed"] * (len(statuses) - first_failed)
        assert set(statuses[:first_failed]) <= {"completed"}
    hitl = [t for t in truth if t.mode == "human_in_the_loop"]
    assert approvals["pending"] == len(hitl)
    assert approvals["approved"] == sum(t.outcome != "abandoned" for t in hitl)


def test_retry_runs_have_the_recorded_engineer_attempts(simulated) -> None:
    url, truth, _ = simulated
    retries = [t for t in truth if t.outcome == "retry"]
    assert {t.n_attempts for t in retries} <= {2, 3, 4} and len(retries) >= 5
    for t in retries + [t for t in truth if t.outcome == "success" and t.family == "fit_model"]:
        assert attempts(url, t.run_id) == (t.n_attempts, t.n_attempts - 1), t


def test_installer_detour_runs_the_installer_then_executor_bash(simulated) -> None:
    url, truth, _ = simulated
    engine = create_engine(url)
    detour = next(t for t in truth if t.outcome == "installer")
    with engine.connect() as conn:
        agents = conn.execute(text(
            "SELECT agent_name FROM execution_events WHERE run_id = :r AND event_type = 'agent_call' "
            "ORDER BY execution_order"), {"r": detour.run_id}).scalars().all()
    engine.dispose()
    start = agents.index("installer")
    assert agents[start - 3:start + 7] == [
        "executor", "executor_response_formatter", "_Group_Tool_Executor", "installer", "executor_bash",
        "executor_response_formatter", "_Group_Tool_Executor", "engineer_response_formatter", "executor",
        "executor_response_formatter"]


def test_ground_truth_never_reaches_the_store(simulated) -> None:
    url, truth, _ = simulated
    assert stored_occurrences(url, {t.template_id for t in truth} | {t.template for t in truth}) == []
    engine = create_engine(url)
    with engine.connect() as conn:
        tasks = set(conn.execute(text("SELECT task_description FROM workflow_runs")).scalars())
    engine.dispose()
    assert tasks == {t.task for t in truth}


def test_files_carry_the_sha256_of_what_the_task_code_writes(simulated) -> None:
    url, truth, _ = simulated
    plot = next(t for t in truth if t.family == "plot_function" and t.outcome == "success")
    expected = PRODUCERS["plot_function"]({**plot.params, **plot.hidden_params})[plot.params["file_name"]]
    engine = create_engine(url)
    with engine.connect() as conn:
        row = conn.execute(text(
            "SELECT f.content_hash, f.size_bytes, f.file_type, e.event_type, p.event_type FROM files f "
            "JOIN execution_events e ON e.id = f.event_id JOIN execution_events p ON p.id = e.parent_event_id "
            "WHERE f.run_id = :r AND f.file_path = :p"), {"r": plot.run_id, "p": plot.params["file_name"]}).one()
    engine.dispose()
    assert tuple(row) == (hashlib.sha256(expected).hexdigest(), len(expected), "plot", "file_gen", "code_exec")
    assert expected.startswith(b"\x89PNG\r\n\x1a\n")


def test_store_backends_hold_the_same_streams(store_url, tmp_path) -> None:
    summary = simulate(runs=15, seed=5, url=store_url, ground_truth=tmp_path / "t.jsonl")
    reference = f"sqlite:///{tmp_path / 'ref.db'}"
    simulate(runs=15, seed=5, url=reference, ground_truth=tmp_path / "r.jsonl")
    assert summary.events == len(_events(reference))
    assert _events(store_url) == _events(reference)


def test_bad_choices_are_named() -> None:
    with pytest.raises(ValueError, match="unknown mode"):
        simulate(runs=1, modes=("one-shot-ish",), url="sqlite://")
    with pytest.raises(ValueError, match="no family among"):
        build_run_script(1, 0, modes=("idea_generation",), families=("plot_function",))
