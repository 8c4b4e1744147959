"""Capture-internal failures never change the workflow's result and are counted; secrets never reach storage."""

import time

import capture
from capture.core.settings import CaptureSettings
from capture.store.migrate import upgrade

FAKE_KEY = "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX1234"


def workflow() -> int:
    """A tiny workflow whose result must not depend on capture."""
    total = 0
    with capture.run("workflow", task="add numbers"), capture.span("agent_call", agent_name="engineer"):
        for i in range(10):
            with capture.span("tool_call", agent_name="engineer", inputs={"i": i}):
                total += i
        capture.record_event("not_a_real_type", agent_name="engineer")  # a bad record
    return total


def test_bad_record_costs_only_itself(recorder, url, fetch):
    assert workflow() == 45
    assert capture.flush(5)
    stats = capture.stats()
    assert stats["bad_records"] == 1 and stats["errors"] == 1 and stats["dropped"] == 0
    rows = fetch(url, "SELECT event_type, count(*) AS n FROM execution_events GROUP BY event_type ORDER BY event_type")
    assert rows == [{"event_type": "agent_call", "n": 1}, {"event_type": "tool_call", "n": 10}]
    assert fetch(url, "SELECT status FROM workflow_runs") == [{"status": "completed"}]


def test_invalid_settings_switch_capture_off_without_raising(tmp_path):
    recorder = capture.configure(CaptureSettings(database_url=f"sqlite:///{tmp_path / 'x.db'}",
                                                 spool_dir=tmp_path / "spool"), redact_patterns=("([unclosed",))
    try:
        assert recorder.enabled is False
        assert workflow() == 45
        assert capture.stats()["errors"] == 1
    finally:
        capture.shutdown()
    assert not (tmp_path / "x.db").exists()


def test_unusable_database_url_spools_everything_and_raises_nothing(tmp_path):
    capture.configure(CaptureSettings(database_url="mysql://nobody@localhost/nothing", spool_dir=tmp_path / "spool",
                                      flush_interval_s=0.05))
    try:
        assert workflow() == 45
        assert capture.flush(5)
        stats = capture.stats()
        assert stats["written"] == 0 and stats["spooled"] == stats["enqueued"] > 0
        assert stats["errors"] >= 1 and stats["database_available"] is False
    finally:
        capture.shutdown()
    assert len(list((tmp_path / "spool").glob("spool-*.jsonl"))) == 1


def _secret_workflow(tmp_path) -> None:
    with capture.run("secrets", task=f"use key {FAKE_KEY}"):
        with capture.span("agent_call", agent_name="engineer", inputs={"llm_config": {"api_key": "plain-value-1"}}):
            capture.record_message("engineer", "executor", f"here is the key: {FAKE_KEY}")
            with capture.span("tool_call", agent_name="engineer",
                              inputs={"tool": "fetch", "args": {"url": "https://api.x.io", "key": FAKE_KEY,
                                                                "headers": [f"Authorization: Bearer {FAKE_KEY}"]}}):
                pass
            with capture.span("code_exec", agent_name="executor", inputs={"code": "print(os.environ['KEY'])"}) as code:
                code.set_outputs({"stdout": f"{FAKE_KEY}\n", "db": "postgresql://bob:hunter2pass@db:5432/x"})
                code.fail(f"leaked {FAKE_KEY}")


def _leaks(raw: bytes) -> list[str]:
    return [s for s in (FAKE_KEY, "ABCDEFGHIJKLMNOPQRSTUVWX1234", "plain-value-1", "hunter2pass") if s.encode() in raw]


def test_secrets_never_reach_the_database(tmp_path, settings_for, fetch):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    capture.configure(settings_for(url))
    try:
        _secret_workflow(tmp_path)
        assert capture.flush(5)
    finally:
        capture.shutdown()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("capture.db*"))
    assert _leaks(raw) == []
    dump = repr(fetch(url, "SELECT * FROM execution_events")) + repr(fetch(url, "SELECT * FROM messages")) + \
        repr(fetch(url, "SELECT * FROM workflow_runs"))
    assert _leaks(dump.encode()) == []
    assert "***" in dump and "Bearer ***" in dump and "bob:***@db" in dump


def test_secrets_never_reach_the_spool(tmp_path, settings_for):
    blocker = tmp_path / "blocked"
    blocker.write_text("a file where the database directory should be")
    capture.configure(settings_for(f"sqlite:///{blocker / 'capture.db'}"))
    try:
        _secret_workflow(tmp_path)
        assert capture.flush(5)
        assert capture.stats()["spooled"] > 0
        files = list((tmp_path / "spool").glob("spool-*.jsonl"))
        raw = b"".join(p.read_bytes() for p in files)
    finally:
        capture.shutdown()
    assert len(files) == 1 and b"***" in raw
    assert _leaks(raw) == []


def test_capture_is_cheap_when_the_writer_is_stuck(tmp_path, settings_for):
    """A locked database stalls only the writer thread; the workflow keeps its pace."""
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    capture.configure(settings_for(url))
    locker = create_engine(url).connect()
    try:
        locker.exec_driver_sql("BEGIN EXCLUSIVE")
        started = time.perf_counter()
        assert workflow() == 45
        elapsed = time.perf_counter() - started
        assert elapsed < 0.5
        locker.rollback()
        assert capture.flush(35)
        assert capture.stats()["bad_records"] == 1
    finally:
        locker.close()
        capture.shutdown()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM execution_events")).scalar() == 11
    engine.dispose()


def test_a_value_the_database_refuses_costs_only_its_row(recorder, url, store_url, fetch):
    """PostgreSQL refuses a 300-character agent name (VARCHAR(100)); SQLite stores it. Either way the rest of the
    batch lands and later events are written straight to the database, not stuck behind a poison batch."""
    with capture.run("long names"):
        good = capture.record_event("info", "trace", agent_name="engineer")
        long = capture.record_event("info", "trace", agent_name="x" * 300)
    assert capture.flush(5)
    later = capture.record_event("info", "trace", agent_name="later")
    assert capture.flush(5)
    stats = capture.stats()
    stored = {r["id"] for r in fetch(url, "SELECT id FROM execution_events")}
    refused = store_url.startswith("postgresql")
    assert stored == ({good, later} if refused else {good, long, later})
    assert (stats["bad_records"], stats["spooled"], stats["spool_pending"]) == (1 if refused else 0, 0, 0)


def test_refusals_are_told_apart_from_an_unavailable_database(tmp_path):
    import sqlite3

    import psycopg
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import IntegrityError, OperationalError

    from capture.sinks.store_sink import refused as _refused
    from capture.store.db import SchemaOutOfDate, StoreUnreachable
    from capture.store.records import BadRecord

    def raised(url: str, sql: str) -> BaseException:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY)"))
                conn.execute(text(sql))
        except Exception as exc:  # noqa: BLE001 - the point is the exception
            return exc
        finally:
            engine.dispose()
        raise AssertionError("no exception")

    url = f"sqlite:///{tmp_path / 'x.db'}"
    duplicate = raised(url, "INSERT INTO t (id) VALUES (1), (1)")
    missing = raised(f"sqlite:///{tmp_path / 'no' / 'dir' / 'x.db'}", "SELECT 1")
    assert isinstance(duplicate, IntegrityError) and isinstance(missing, OperationalError)
    refused = [duplicate, BadRecord("event x: bad"), psycopg.errors.StringDataRightTruncation("too long"),
               sqlite3.IntegrityError("raw driver"), ValueError("cannot convert float NaN to integer")]
    unavailable = [missing, StoreUnreachable("down"), SchemaOutOfDate("old"), OSError("disk I/O error"),
                   psycopg.OperationalError("connection refused"), sqlite3.OperationalError("database is locked")]
    assert [_refused(e) for e in refused] == [True] * len(refused)
    assert [_refused(e) for e in unavailable] == [False] * len(unavailable)
