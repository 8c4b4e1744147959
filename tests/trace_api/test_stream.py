"""The live SSE stream over a real server: events written after connecting arrive in order, resumable with
Last-Event-ID, updates and run status follow, heartbeats flow, and disconnects or shutdown end the stream."""

import threading
import time
from datetime import UTC, datetime

from capture.store.capture_store import Batch

T = datetime(2026, 3, 1, 9, 0, 10, tzinfo=UTC)


def new_event(id_: str, order: int, **kw):
    return {"id": id_, "run_id": "run-1", "session_id": "sess-a", "event_type": "agent_call",
            "agent_name": "engineer", "execution_order": order, "timestamp": T, "node_id": "n-exe", **kw}


def test_events_written_after_connecting_arrive_in_order(server, sse, writer):
    """The sample holds seqs 1-6 (run-1) and 7 (run-2), so new events get 8, 9, 10."""
    client = sse(server.url + "/api/runs/run-1/stream?after_seq=6")
    assert client.response.status == 200
    assert client.response.headers["Content-Type"].startswith("text/event-stream")
    writer.write_batch(Batch(events=[new_event("e7", 7), new_event("e8", 8, event_type="tool_call",
                                                                    parent_event_id="e7", depth=1)]))
    writer.write_batch(Batch(events=[new_event("e9", 9, event_type="error", status="failed",
                                               error_message="boom")]))
    got = [client.next() for _ in range(3)]
    assert [(m["id"], m["data"]["data"]["event_id"]) for m in got] == [("8", "e7"), ("9", "e8"), ("10", "e9")]
    first = got[0]["data"]
    assert {k: first[k] for k in ("event_type", "run_id", "session_id")} == {
        "event_type": "event_captured", "run_id": "run-1", "session_id": "sess-a"}
    assert first["data"] == {
        "event_id": "e7", "node_id": "n-exe", "event_type": "agent_call", "event_subtype": None,
        "agent_name": "engineer", "timestamp": "2026-03-01T09:00:10+00:00", "execution_order": 7, "depth": 0,
        "seq": 8, "parent_event_id": None, "status": "completed", "started_at": None, "completed_at": None,
        "duration_ms": None, "error_message": None, "tokens": 0, "cost_usd": 0.0}
    assert got[1]["data"]["data"]["parent_event_id"] == "e7"
    assert (got[2]["data"]["data"]["status"], got[2]["data"]["data"]["error_message"]) == ("failed", "boom")


def test_stream_resumes_after_last_event_id(server, sse, writer):
    writer.write_batch(Batch(events=[new_event("e7", 7), new_event("e8", 8)]))
    client = sse(server.url + "/api/runs/run-1/stream?after_seq=0", last_event_id="8")  # header wins
    message = client.next()
    assert (message["id"], message["data"]["data"]["event_id"]) == ("9", "e8")
    writer.write_batch(Batch(events=[new_event("e9", 9)]))
    assert client.next()["data"]["data"]["event_id"] == "e9"
    from_start = sse(server.url + "/api/runs/run-1/stream")
    assert [from_start.next()["data"]["data"]["event_id"] for _ in range(9)] == [f"e{i}" for i in range(1, 10)]


def test_status_changes_of_sent_events_and_of_the_run_follow(server, sse, writer):
    writer.write_batch(Batch(events=[new_event("e7", 7, status="running", started_at=T)]))
    client = sse(server.url + "/api/runs/run-1/stream?after_seq=6")
    assert client.next()["data"]["data"]["status"] == "running"
    assert client.next(("run_status",))["data"] == {"run_id": "run-1", "status": "failed"}
    writer.write_batch(Batch(event_updates=[{"id": "e7", "status": "completed", "duration_ms": 1500,
                                             "completed_at": "2026-03-01T09:00:11.5+00:00"}]))
    updated = client.next()
    assert updated["event"] == "event_updated" and "id" not in updated
    assert {k: updated["data"]["data"][k] for k in ("event_id", "status", "duration_ms", "completed_at")} == {
        "event_id": "e7", "status": "completed", "duration_ms": 1500, "completed_at": "2026-03-01T09:00:11.500000+00:00"}
    writer.write_batch(Batch(runs=[{"id": "run-1", "session_id": "sess-a", "status": "completed"}]))
    assert client.next(("run_status",))["data"] == {"run_id": "run-1", "status": "completed"}


def test_idle_stream_sends_heartbeats(server, sse):
    client = sse(server.url + "/api/runs/run-2/stream?after_seq=1")
    beat = client.next(("heartbeat",), timeout=3)
    assert set(beat["data"]) == {"timestamp"}


def test_disconnect_ends_the_server_side_stream(server, sse):
    client = sse(server.url + "/api/runs/run-1/stream?after_seq=6")
    client.next(("run_status",))
    assert (server.live_streams, server.app.state.feed.streams) == (1, 1)
    client.close()
    deadline = time.monotonic() + 3
    while server.live_streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (server.live_streams, server.app.state.feed.streams) == (0, 0)


def test_shutdown_ends_open_streams(server, sse):
    client = sse(server.url + "/api/runs/run-1/stream?after_seq=6")
    client.next(("run_status",))
    started = time.monotonic()
    server.stop()
    assert client.next(("never",), timeout=3) is None  # end of stream
    assert time.monotonic() - started < 2


def test_streams_joining_while_events_flow_get_each_event_once_in_order(server, sse, writer):
    """Two streams of run-1 (one joins mid-flow, overlapping the feed) and one of run-2, while a writer adds
    events to both runs: every stream gets exactly its run's events after its cursor, once, in seq order."""
    first = sse(server.url + "/api/runs/run-1/stream?after_seq=7")
    other = sse(server.url + "/api/runs/run-2/stream?after_seq=7")
    first.next(("run_status",))
    ids = [f"f{i}" for i in range(60)]

    def write() -> None:
        for i, ident in enumerate(ids):
            run, session = ("run-1", "sess-a") if i % 3 else ("run-2", "sess-b")
            writer.write_batch(Batch(events=[{**new_event(ident, 100 + i), "run_id": run, "session_id": session,
                                              "node_id": None}]))
            time.sleep(0.01)

    thread = threading.Thread(target=write)
    thread.start()
    time.sleep(0.2)
    joined = sse(server.url + "/api/runs/run-1/stream?after_seq=7")
    thread.join()
    run1 = [i for n, i in enumerate(ids) if n % 3]
    run2 = [i for n, i in enumerate(ids) if not n % 3]
    for client, expected in ((first, run1), (joined, run1), (other, run2)):
        got = [client.next(timeout=10)["data"]["data"] for _ in expected]
        assert [e["event_id"] for e in got] == expected
        assert [e["seq"] for e in got] == sorted(e["seq"] for e in got)
    time.sleep(0.3)  # nothing sent twice: no event message is left after the expected ones
    for client in (first, joined, other):
        assert all(m is None or m["event"] != "event_captured" for m in list(client.messages.queue))
