"""Incremental extraction: HWM, idempotent re-runs, re-synced runs, and late commits on PostgreSQL."""

from pathlib import Path

import duckdb
import pytest
from sqlalchemy import insert

from capture.store.capture_store import CaptureStore
from capture.store.models import ExecutionEvent
from capture.store.records import prepare_event
from skill_pipeline.defs.extract.checks import events_have_no_orphans
from skill_pipeline.lib import extraction
from skill_pipeline.resources import WarehouseResource

from .workload import write_runs

EVENTS = ExecutionEvent.__table__


def _count(path: Path, sql: str) -> int:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def test_incremental_extraction_is_idempotent_and_moves_the_hwm(sqlite_store: CaptureStore, tmp_path: Path):
    write_runs(sqlite_store, 12, seed=3)
    total = sqlite_store.max_seq()
    wh = tmp_path / "w.duckdb"
    first = extraction.extract(sqlite_store.engine, wh, overlap=50)
    assert (first.previous_hwm, first.hwm, first.events_inserted) == (0, total, total)
    assert first.warehouse_counts["runs"] == 12
    again = extraction.extract(sqlite_store.engine, wh, overlap=50)
    assert (again.events_read, again.events_inserted, again.hwm) == (50, 0, total)
    write_runs(sqlite_store, 3, seed=4, start_index=12)
    more = extraction.extract(sqlite_store.engine, wh, overlap=50)
    grown = sqlite_store.max_seq()
    assert (more.previous_hwm, more.hwm, more.events_inserted) == (total, grown, grown - total)
    assert more.warehouse_counts == {"events": grown, "runs": 15,
                                     "nodes": _count(wh, "SELECT count(*) FROM nodes"),
                                     "files": _count(wh, "SELECT count(*) FROM files")}
    assert _count(wh, "SELECT count(DISTINCT seq) FROM events") == grown
    assert extraction.source_count(sqlite_store.engine, grown) == grown


def test_run_status_is_resynced_after_its_events(sqlite_store: CaptureStore, tmp_path: Path):
    run_id = sqlite_store.upsert_run(session_id="tests", status="executing", mode="one_shot")
    sqlite_store.create_event(run_id=run_id, session_id="tests", event_type="agent_call", agent_name="engineer")
    wh = tmp_path / "w.duckdb"
    extraction.extract(sqlite_store.engine, wh, overlap=0)
    assert _count(wh, f"SELECT count(*) FROM runs WHERE id = '{run_id}' AND status = 'executing'") == 1
    sqlite_store.upsert_run(id=run_id, session_id="tests", status="completed")
    result = extraction.extract(sqlite_store.engine, wh, overlap=0)
    assert result.events_inserted == 0
    assert _count(wh, f"SELECT count(*) FROM runs WHERE id = '{run_id}' AND status = 'completed'") == 1


def _changed_runs_are_resynced_and_unchanged_open_runs_are_not(store: CaptureStore, wh: Path) -> None:
    idle, active = (store.upsert_run(session_id="tests", status="waiting_approval", mode="one_shot")
                    for _ in range(2))
    for run_id in (idle, active):
        store.create_event(run_id=run_id, session_id="tests", event_type="agent_call", agent_name="engineer")
    extraction.extract(store.engine, wh, overlap=0)
    other = store.upsert_run(session_id="tests", status="executing", mode="one_shot")
    store.create_event(run_id=other, session_id="tests", event_type="agent_call", agent_name="engineer")
    quiet = extraction.extract(store.engine, wh, overlap=0)
    assert (quiet.events_inserted, quiet.runs_synced, quiet.touched_runs) == (1, 1, [other])  # open runs not re-read
    store.upsert_run(id=active, session_id="tests", status="completed")  # a change without a new event
    changed = extraction.extract(store.engine, wh, overlap=0)
    assert (changed.events_inserted, changed.touched_runs) == (0, [active])
    assert _count(wh, f"SELECT status FROM runs WHERE id = '{active}'") == "completed"
    assert _count(wh, f"SELECT status FROM runs WHERE id = '{idle}'") == "waiting_approval"
    store.create_event(run_id=other, session_id="tests", event_type="agent_call", agent_name="engineer")
    assert set(extraction.extract(store.engine, wh, overlap=0).touched_runs) == {other, active}  # stamp in range
    assert extraction.extract(store.engine, wh, overlap=0).touched_runs == []  # the change is behind the range now


def test_only_changed_runs_are_resynced_sqlite(sqlite_store: CaptureStore, tmp_path: Path):
    _changed_runs_are_resynced_and_unchanged_open_runs_are_not(sqlite_store, tmp_path / "w.duckdb")


@pytest.mark.postgres
def test_only_changed_runs_are_resynced_postgres(pg_store: CaptureStore, tmp_path: Path):
    _changed_runs_are_resynced_and_unchanged_open_runs_are_not(pg_store, tmp_path / "w.duckdb")


def test_payloads_are_cut_and_non_utf8_bytes_do_not_crash(sqlite_store: CaptureStore, tmp_path: Path):
    run_id = sqlite_store.upsert_run(session_id="tests", status="completed")
    big = sqlite_store.create_event(run_id=run_id, session_id="tests", event_type="tool_call",
                                    inputs={"name": "read_pdf", "text": "é" * 20_000})
    dirty = sqlite_store.create_event(run_id=run_id, session_id="tests", event_type="code_exec")
    with sqlite_store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE execution_events SET outputs = CAST(X'7B2261223A22FFFE227D' AS TEXT) "
                             "WHERE id = ?", (dirty,))
    wh = tmp_path / "w.duckdb"
    result = extraction.extract(sqlite_store.engine, wh, payload_chars=100)
    assert (result.events_inserted, result.truncated_payloads, result.undecodable_payloads) == (2, 1, 1)
    assert _count(wh, f"SELECT length(inputs) FROM events WHERE id = '{big}'") == 100
    assert _count(wh, f"SELECT tool_name FROM events WHERE id = '{big}'") == "read_pdf"
    assert _count(wh, f"SELECT outputs FROM events WHERE id = '{dirty}'") == '{"a":"\ufffd\ufffd"}'


@pytest.mark.postgres
def test_late_commit_is_picked_up_by_the_overlap_window(pg_store: CaptureStore, tmp_path: Path):
    write_runs(pg_store, 4, seed=5)
    run_id = pg_store.upsert_run(session_id="tests", status="executing")
    slow = pg_store.engine.connect()
    slow_tx = slow.begin()
    late = prepare_event({"run_id": run_id, "session_id": "tests", "event_type": "agent_call",
                          "agent_name": "engineer", "execution_order": 1})
    late_seq = slow.execute(insert(EVENTS).returning(EVENTS.c.seq), late).scalar_one()
    write_runs(pg_store, 2, seed=6, start_index=4)  # commits seqs above the open transaction's
    assert pg_store.max_seq() > late_seq
    with_overlap, without = tmp_path / "overlap.duckdb", tmp_path / "none.duckdb"
    first = extraction.extract(pg_store.engine, with_overlap, overlap=1000)
    extraction.extract(pg_store.engine, without, overlap=0)
    assert first.hwm == pg_store.max_seq()
    assert _count(with_overlap, f"SELECT count(*) FROM events WHERE seq = {late_seq}") == 0
    slow_tx.commit()
    slow.close()
    second = extraction.extract(pg_store.engine, with_overlap, overlap=1000)
    extraction.extract(pg_store.engine, without, overlap=0)
    source_total = extraction.source_count(pg_store.engine, second.hwm)
    assert second.events_inserted == 1
    assert _count(with_overlap, f"SELECT count(*) FROM events WHERE seq = {late_seq}") == 1
    assert _count(with_overlap, "SELECT count(*) FROM events") == source_total
    assert _count(without, "SELECT count(*) FROM events") == source_total - 1  # what the overlap prevents
    third = extraction.extract(pg_store.engine, with_overlap, overlap=1000)
    assert third.events_inserted == 0
    assert _count(with_overlap, "SELECT count(*) FROM events") == source_total


@pytest.mark.postgres
def test_concurrent_writers_and_extractions_lose_and_duplicate_nothing(pg_store: CaptureStore, tmp_path: Path):
    import threading

    wh = tmp_path / "w.duckdb"
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            write_runs(pg_store, 6, seed=seed, start_index=seed * 100)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (11, 12, 13)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        extraction.extract(pg_store.engine, wh, overlap=1000)
    for t in threads:
        t.join()
    final = extraction.extract(pg_store.engine, wh, overlap=1000)
    assert errors == []
    total = extraction.source_count(pg_store.engine, pg_store.max_seq())
    assert final.hwm == pg_store.max_seq()
    assert _count(wh, "SELECT count(*) FROM events") == total
    assert _count(wh, "SELECT count(DISTINCT id) FROM events") == total
    assert _count(wh, "SELECT count(*) FROM runs") == 18


def test_orphan_check_covers_the_latest_hand_off(sqlite_store: CaptureStore, tmp_path: Path):
    write_runs(sqlite_store, 3, seed=6)
    wh = tmp_path / "w.duckdb"
    first = extraction.extract(sqlite_store.engine, wh, overlap=10)
    resource = WarehouseResource(path=str(wh))
    assert events_have_no_orphans(warehouse_db=resource).passed
    with duckdb.connect(str(wh)) as con:  # an event whose parent never arrived, above the hand-off's start
        con.execute("INSERT INTO events (seq, id, run_id, parent_event_id, event_type, payload_truncated) "
                    "VALUES (?, 'orphan', 'r', 'never-stored', 'info', false)", [first.hwm + 1])
    result = events_have_no_orphans(warehouse_db=resource)
    assert (result.passed, result.metadata["orphan_events"].value, result.metadata["sample"].value) == (
        False, 1, "orphan")
    with duckdb.connect(str(wh)) as con:
        log = con.execute("SELECT previous_hwm, start_after, hwm, events_inserted FROM extractions").fetchall()
    assert log == [(0, 0, first.hwm, first.hwm)]
