"""Nothing misrouted, nothing lost: spooled batches go only to the store they were meant for, and a PostgreSQL
server stopped and restarted mid-run (a cluster the test owns) loses nothing and duplicates nothing."""

import json

import capture
from capture.recorder.processor import Recorder
from capture.store.migrate import upgrade
from tests.recorder.conftest import settle


def _spool_files(spool_dir):
    return sorted(spool_dir.glob("spool-*.jsonl"))


def _info_ids(fetch, url: str) -> list[str]:
    return [r["id"] for r in fetch(url, "SELECT id FROM execution_events WHERE event_type = 'info'")]


def test_spool_of_a_postgres_store_is_not_replayed_into_a_sqlite_store(owned_pg, owned_pg_url, tmp_path, fetch,
                                                                       settings_for):
    upgrade(owned_pg_url)
    owned_pg.stop()
    capture.configure(settings_for(owned_pg_url))
    try:
        with capture.run("meant for postgres"):
            pg_ids = [capture.record_event("info", "trace", meta={"i": i}) for i in range(200)]
        assert capture.flush(10)
        assert capture.stats()["spooled"] >= 200 and capture.stats()["written"] == 0
    finally:
        capture.shutdown()
    [pg_file] = _spool_files(tmp_path / "spool")
    header = json.loads(pg_file.read_bytes().splitlines()[0])
    assert header == {"_spool_store": owned_pg_url}  # no password in the URL, none on disk

    # The next process writes to a SQLite store with the same spool folder: it replays only its own store's files.
    sqlite_url = f"sqlite:///{tmp_path / 'other.db'}"
    capture.configure(settings_for(sqlite_url))
    try:
        with capture.run("meant for sqlite"):
            sqlite_ids = [capture.record_event("info", "trace", meta={"i": i}) for i in range(50)]
        assert settle()
        sink_stats = capture.get_recorder().sink().stats()
    finally:
        capture.shutdown()
    assert sorted(_info_ids(fetch, sqlite_url)) == sorted(sqlite_ids)
    assert sink_stats["spool_files_of_other_stores"] == 1
    assert _spool_files(tmp_path / "spool") == [pg_file]

    # PostgreSQL is back: a process writing to it replays the file, once.
    owned_pg.start()
    recorder = Recorder(settings_for(owned_pg_url), install_exit_handlers=False)
    try:
        recorder.sink().idle()
        assert recorder.flush(10)
        replayed = recorder.stats()["replayed"]
    finally:
        recorder.close()
    assert sorted(_info_ids(fetch, owned_pg_url)) == sorted(pg_ids)
    assert replayed == 200 + 2  # the events plus the run's start and end
    assert not _spool_files(tmp_path / "spool")


def test_postgres_stopped_and_restarted_mid_run_loses_nothing_and_replays_once(owned_pg, owned_pg_url, tmp_path,
                                                                               fetch, settings_for):
    upgrade(owned_pg_url)

    def batch(label: str) -> list[str]:
        ids = []
        for i in range(150):
            eid = capture.record_event("llm_call", "complete", agent_name="engineer", meta={"phase": label, "i": i})
            capture.record_cost(agent_name="engineer", model="m", prompt_tokens=i, completion_tokens=1,
                                cost_usd=0.001, event_id=eid)
            capture.record_message("engineer", "executor", f"{label} {i}")
            ids.append(eid)
        return ids

    capture.configure(settings_for(owned_pg_url))
    try:
        with capture.run("pg restart") as run:
            before = batch("before")
            assert capture.flush(10) and capture.stats()["spooled"] == 0
            owned_pg.stop()
            with capture.span("agent_call", agent_name="engineer") as top:
                during = batch("during")
                assert capture.flush(15)
                assert capture.stats()["spooled"] >= 450
                owned_pg.start()
                after = batch("after")
        assert settle(30)
        stats = capture.stats()
    finally:
        capture.shutdown()
        if not owned_pg.running:
            owned_pg.start()
    events = fetch(owned_pg_url, "SELECT id, parent_event_id FROM execution_events WHERE event_type = 'llm_call'")
    assert sorted(r["id"] for r in events) == sorted(before + during + after)
    parents = {r["id"]: r["parent_event_id"] for r in events}
    assert {parents[i] for i in during + after} == {top.id}
    costs = fetch(owned_pg_url, "SELECT event_id FROM cost_records")
    assert sorted(r["event_id"] for r in costs) == sorted(before + during + after)  # each exactly once
    messages = fetch(owned_pg_url, "SELECT content FROM messages")
    assert len(messages) == 450 and len({m["content"] for m in messages}) == 450
    assert fetch(owned_pg_url, "SELECT status FROM workflow_runs WHERE id = :i", i=run.id) == [{"status": "completed"}]
    assert stats["dropped"] == 0 and stats["spool_pending"] == 0
    assert stats["replayed"] == stats["spooled"]  # every spooled item replayed, none twice
    assert not _spool_files(tmp_path / "spool")


def test_a_spool_file_never_holds_the_store_password(owned_pg, owned_pg_url, tmp_path, settings_for):
    password = "s3cret-Pa55"
    url = owned_pg_url.replace("postgres@", f"postgres:{password}@")  # trust auth: any password is accepted
    owned_pg.stop()
    capture.configure(settings_for(url))
    try:
        capture.record_event("info", "trace")
        assert capture.flush(10)
    finally:
        capture.shutdown()
        owned_pg.start()
    [spool] = _spool_files(tmp_path / "spool")
    assert password not in spool.read_text()
