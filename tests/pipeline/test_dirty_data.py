"""Dirty data is mined or skipped, never a crash, and every kind is counted in the metadata."""

from pathlib import Path

import dagster as dg
from sqlalchemy import insert

from capture.store.capture_store import CaptureStore
from capture.store.models import ExecutionEvent
from capture.store.records import prepare_event
from skill_pipeline.mine import materialisations

from .helpers import checks, run_job
from .workload import write_runs

EVENTS = ExecutionEvent.__table__


def _raw_events(store: CaptureStore, rows: list[dict]) -> list[str]:
    """Insert events as a foreign importer might have left them (no vocabulary check)."""
    prepared = [prepare_event({"session_id": "tests", **r}, strict_types=False) for r in rows]
    with store.engine.begin() as conn:
        conn.execute(insert(EVENTS), prepared)
    return [p["id"] for p in prepared]


def test_dirty_data_mines_without_crashing(sqlite_store: CaptureStore, tmp_path: Path):
    write_runs(sqlite_store, 30, seed=9)
    stuck = sqlite_store.upsert_run(session_id="tests", status="executing", mode="one-shot")
    ids = _raw_events(sqlite_store, [
        {"run_id": stuck, "event_type": "info", "agent_name": "engineer", "execution_order": 1},
        {"run_id": stuck, "event_type": "agent_call", "agent_name": None, "execution_order": 5},
        {"run_id": stuck, "event_type": "agent_call", "agent_name": "system", "execution_order": 9},
        {"run_id": stuck, "event_type": "tool_call", "agent_name": "unknown", "execution_order": 12,
         "inputs": {"tool_name": "search", "blob": "x" * 300_000}},
        {"run_id": stuck, "event_type": "code_exec", "agent_name": "executor", "execution_order": 13},
    ])
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE execution_events SET event_type = 'mystery_event' WHERE id = ?", (ids[0],))
        conn.exec_driver_sql("UPDATE execution_events SET outputs = CAST(X'7B226F7574223A2280FF227D' AS TEXT), "
                             "meta = CAST(X'C3' AS TEXT) WHERE id = ?", (ids[4],))
    silent = sqlite_store.upsert_run(session_id="tests", status="completed")
    _raw_events(sqlite_store, [{"run_id": silent, "event_type": "message", "agent_name": "admin"}])
    with dg.instance_for_test() as instance:
        result = run_job(sqlite_store, tmp_path, instance)
    assert result.success
    meta = materialisations(result)
    events = meta["raw_agent_events"]
    assert events["undecodable_payloads"] == 1
    assert events["truncated_payloads"] == 1
    assert events["events_without_node"] == 6
    sequences = meta["event_sequences"]
    assert sequences["unknown_event_types"] == 1
    assert sequences["unknown_or_system_agents"] == 3
    assert sequences["runs_with_order_gaps"] == 1
    assert sequences["runs_stuck_open"] == 1
    assert sequences["runs_without_tokens"] == 1  # the message-only run: nothing to mine, counted
    assert sequences["dagster/row_count"] == 32
    assert meta["sequence_clusters"]["runs_skipped_empty"] == 1
    assert meta["run_outcomes"]["unfinished"] == 1
    assert checks(result) == {"events_reconcile_with_source": True, "events_have_no_orphans": True,
                              "every_run_has_a_sequence": True, "clustering_quality": True,
                              "templates_match_library_schema": True, "release_verifies": True,
                              "conformance_drift": True}
    assert meta["skill_library_release"]["release"] == 1
