"""A full queue never loses events: ``spill`` writes them to the spool from the caller, ``block`` waits briefly
first; spilled events are written after the queue drains, so their parents are already stored."""

import pytest
from sqlalchemy import create_engine

import capture
from capture.store.migrate import upgrade


@pytest.mark.parametrize("policy", ["spill", "block"])
def test_full_queue_spills_and_nothing_is_lost(policy, tmp_path, settings_for, fetch):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    capture.configure(settings_for(url, queue_size=5, batch_size=5, full_policy=policy))
    locker = create_engine(url).connect()
    try:
        locker.exec_driver_sql("BEGIN EXCLUSIVE")  # the writer stalls on the lock, the queue fills up
        with capture.run("overflow") as run, capture.span("agent_call", agent_name="a") as top:
            ids = [capture.record_event("info", "trace", meta={"i": i}) for i in range(30)]
        spilled = capture.stats()["spooled"]
        locker.rollback()
        assert capture.flush(40)
        for _ in range(100):
            if not capture.stats()["spool_pending"]:
                break
            capture.flush(5)
        stats = capture.stats()
    finally:
        locker.close()
        capture.shutdown()
    assert spilled > 0
    assert stats["dropped"] == 0 and stats["spool_pending"] == 0 and stats["replayed"] == spilled
    rows = fetch(url, "SELECT id, parent_event_id, run_id FROM execution_events WHERE event_type = 'info'")
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert {(r["parent_event_id"], r["run_id"]) for r in rows} == {(top.id, run.id)}
    assert fetch(url, "SELECT status FROM execution_events WHERE id = :i", i=top.id) == [{"status": "completed"}]
