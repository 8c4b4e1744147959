"""The cheap hot path: fast ids, raw time stamps converted on the writer, one queue item per message."""

import json
import multiprocessing
import threading
import time
import uuid
from datetime import UTC, datetime

import capture
from capture.core import clock
from capture.core.clock import SimulatedClock, as_datetime, elapsed_ms, stamp, use_clock
from capture.core.items import new_id

from .conftest import settle


def _ids_in_child(conn: "multiprocessing.connection.Connection") -> None:
    conn.send([new_id() for _ in range(2000)])
    conn.close()


def test_ids_are_uuid_shaped_and_unique_across_threads_and_forked_processes():
    from_threads: list[list[str]] = [[] for _ in range(8)]

    def make(out: list[str]) -> None:
        out.extend(new_id() for _ in range(5000))

    threads = [threading.Thread(target=make, args=(out,)) for out in from_threads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    context = multiprocessing.get_context("fork")
    from_children = []
    for _ in range(3):
        parent_end, child_end = context.Pipe(duplex=False)
        child = context.Process(target=_ids_in_child, args=(child_end,))
        child.start()
        from_children.append(parent_end.recv())
        child.join(10)
        assert child.exitcode == 0
    mine = [new_id() for _ in range(2000)]
    every = [i for ids in from_threads + from_children + [mine] for i in ids]
    assert len(every) == 8 * 5000 + 3 * 2000 + 2000
    assert len(set(every)) == len(every)
    assert {uuid.UUID(i).version for i in every} == {4}
    assert all(str(uuid.UUID(i)) == i for i in every[::997])
    prefixes = {ids[0][:24] for ids in from_children + [mine]}
    assert len(prefixes) == 4  # each forked child drew its own random prefix


def test_stamps_convert_exactly_and_follow_a_simulated_clock():
    assert as_datetime(1_700_000_000_123_456_789) == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)
    assert elapsed_ms(1_000_000_000, 3_499_999_999) == 2499
    before = time.time_ns()
    real = stamp()
    assert type(real) is int and before <= real <= time.time_ns()
    simulated = SimulatedClock(datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC))
    with use_clock(simulated):
        assert stamp() == datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
        assert elapsed_ms(real, simulated.advance(10)) == int(
            (datetime(2025, 3, 1, 12, 0, 0, 10_000, tzinfo=UTC) - as_datetime(real)).total_seconds() * 1000)
    assert type(stamp()) is int


def test_hot_stamp_follows_a_simulated_clock_once_one_is_used(recorder):
    simulated = SimulatedClock(datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC))
    with use_clock(simulated):
        assert clock.hot_stamp() == datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
        with capture.span("tool_call") as span:
            pass
        assert span._started == datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    before = time.time_ns()
    assert type(clock.hot_stamp()) is int and before <= clock.hot_stamp() <= time.time_ns()


def test_span_completed_in_a_later_batch_keeps_its_real_times(recorder, url, fetch):
    with capture.run("real clock"), capture.span("tool_call", agent_name="executor") as span:
        assert capture.flush(5)  # the start row is written alone; the completion becomes an update
        time.sleep(0.06)
        span.set_outputs({"result": "ok"})
    assert settle()
    [row] = fetch(url, "SELECT started_at, completed_at, duration_ms, status, event_subtype, outputs "
                       "FROM execution_events WHERE id = :i", i=span.id)
    started, completed = (v if isinstance(v, datetime) else datetime.fromisoformat(v)
                          for v in (row["started_at"], row["completed_at"]))
    span_ms = (completed - started).total_seconds() * 1000
    assert 60 <= row["duration_ms"] < 5000 and abs(span_ms - row["duration_ms"]) <= 1
    assert (row["status"], row["event_subtype"]) == ("completed", "complete")
    assert "ok" in str(row["outputs"])


def test_a_message_is_one_queue_item_and_lands_as_its_event_and_messages_row(recorder, url, fetch):
    simulated = SimulatedClock(datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC))
    with use_clock(simulated, process_wide=True), capture.run("chat") as run:
        before = capture.stats()["enqueued"]
        eid = capture.record_message("planner", "engineer", "the plan", tokens=7, silent=True, meta={"role": "user"})
        assert capture.stats()["enqueued"] == before + 1
    assert settle()
    [event] = fetch(url, "SELECT run_id, event_type, event_subtype, agent_name, started_at, completed_at, status "
                         "FROM execution_events WHERE id = :i", i=eid)
    assert (event["run_id"], event["event_type"], event["event_subtype"], event["agent_name"], event["status"]) == \
        (run.id, "message", "broadcast", "planner", "completed")
    assert str(event["started_at"])[:19] == str(event["completed_at"])[:19] == "2025-03-01 12:00:00"
    [message] = fetch(url, "SELECT run_id, sender, recipient, content, tokens, timestamp FROM messages "
                           "WHERE event_id = :i", i=eid)
    assert (message["run_id"], message["sender"], message["recipient"], message["content"], message["tokens"]) == \
        (run.id, "planner", "engineer", "the plan", 7)
    assert str(message["timestamp"])[:19] == "2025-03-01 12:00:00"


def test_a_broadcast_is_one_event_and_one_messages_row_listing_every_recipient(recorder, url, fetch):
    recipients = [f"researcher_with_a_long_name_{i}" for i in range(6)]  # joined, they overflow the 100-char column
    with capture.run("group") as run:
        before = capture.stats()["enqueued"]
        eid = capture.record_broadcast("chat_manager", recipients, "round 1", meta={"role": "user"})
        assert capture.stats()["enqueued"] == before + 1
    assert settle()
    [event] = fetch(url, "SELECT event_type, event_subtype, agent_name, inputs, meta FROM execution_events "
                         "WHERE run_id = :r AND event_type = 'message'", r=run.id)
    assert (event["event_type"], event["event_subtype"], event["agent_name"]) == ("message", "broadcast",
                                                                                  "chat_manager")
    assert _json(event["inputs"]) == {"sender": "chat_manager", "recipients": recipients}
    assert _json(event["meta"]) == {"role": "user"}
    [message] = fetch(url, "SELECT event_id, sender, recipient, content, meta FROM messages WHERE run_id = :r",
                      r=run.id)
    assert (message["event_id"], message["sender"], message["content"]) == (eid, "chat_manager", "round 1")
    assert message["recipient"] == ", ".join(recipients)[:100] and len(message["recipient"]) == 100
    assert _json(message["meta"]) == {"role": "user", "recipients": recipients}


def _json(value):
    """A JSON column as read with plain SQL: text on SQLite, already decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value
