"""The trace API over real PostgreSQL: endpoints answer from a read-only engine, and the live stream still
delivers an event whose transaction commits after a later event's (a lower seq surfacing late)."""

import pytest
from sqlalchemy import insert

from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from capture.store.models import ExecutionEvent

pytestmark = pytest.mark.postgres


def test_endpoints_and_late_commits_on_postgresql(pg_url, sample, serve, get, sse, request):
    upgrade(pg_url)
    writer = CaptureStore.open(pg_url)
    request.addfinalizer(writer.close)
    writer.write_batch(sample)
    server = serve(pg_url, poll_interval=0.05)

    status, run = get(server.url + "/api/runs/run-1")
    assert status == 200 and run["statistics"]["total_events"] == 6 and run["max_seq"] == 6
    tree = get(server.url + "/api/events/e1/tree")[1]
    assert [(e["id"], e["level"]) for e in tree["tree"]] == [("e1", 0), ("e2", 1), ("e3", 1), ("e4", 2)]
    assert get(server.url + "/api/runs/run-1/failure")[1]["failure"]["failed_event"]["id"] == "e6"
    assert get(server.url + "/api/nodes/n-x/files")[0] == 404

    client = sse(server.url + "/api/runs/run-1/stream?after_seq=7")
    row = {"run_id": "run-1", "session_id": "sess-a", "event_type": "info", "execution_order": 10}
    with writer.engine.connect() as slow:
        slow_tx = slow.begin()
        slow.execute(insert(ExecutionEvent.__table__).values(id="late", **row))  # takes seq 8, not committed
        with writer.engine.begin() as fast:
            fast.execute(insert(ExecutionEvent.__table__).values(id="early", **row))  # seq 9, committed
        first = client.next()
        slow_tx.commit()
    second = client.next()
    assert (first["id"], first["data"]["data"]["event_id"]) == ("9", "early")
    assert (second["data"]["data"]["event_id"], second["data"]["data"]["seq"]) == ("late", 8)
    assert second["id"] == "9"  # the cursor never goes back, so a resumed client does not repeat "early"
