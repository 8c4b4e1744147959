"""write_batch guarantees on both backends: replay-safe, repairs, remembered ids survive deletions."""

from sqlalchemy import text

from capture.read import queries
from capture.store.capture_store import Batch, CaptureStore


def ev(i, **kw):
    return {"id": f"e{i}", "run_id": "r1", "session_id": "s1", "event_type": "tool_call", "execution_order": i,
            "inputs": {"i": i, "text": "tab\there\nnew line \\ backslash é"}, **kw}


def _count(store, table="execution_events"):
    with store.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def test_partial_replay_and_duplicates_within_a_batch(store):
    assert store.write_batch(Batch(events=[ev(i) for i in range(3)])).events_inserted == 3
    result = store.write_batch(Batch(events=[ev(i) for i in range(6)] + [ev(4)]))
    assert (result.events_inserted, result.events_skipped) == (3, 4)
    assert _count(store) == 6
    got = queries.get_event(store, "s1", "e5")
    assert got["inputs"] == {"i": 5, "text": "tab\there\nnew line \\ backslash é"}
    assert got["status"] == "completed" and got["depth"] == 0


def test_children_before_parents_in_a_batch_are_reordered(store):
    rows = [ev(2, parent_event_id="e1", depth=2), ev(1, parent_event_id="e0", depth=1), ev(0)]
    assert store.write_batch(Batch(events=rows)).events_inserted == 3
    assert [e["id"] for e in queries.get_event_tree(store, "s1", "e0")] == ["e0", "e1", "e2"]


def test_missing_references_are_repaired_not_fatal(store):
    result = store.write_batch(Batch(events=[ev(0, parent_event_id="ghost", node_id="no-node")]))
    assert result.events_inserted == 1
    assert result.repaired["parents_unlinked"] == 1 and result.repaired["nodes_unlinked"] == 1
    assert result.repaired["sessions_created"] == 1 and result.repaired["runs_created"] == 1
    got = queries.get_event(store, "s1", "e0")
    assert got["parent_event_id"] is None and got["node_id"] is None
    assert got["meta"] == {"missing_parent_event_id": "ghost", "missing_node_id": "no-node"}


def test_remembered_ids_survive_deletes_behind_the_stores_back(store):
    store.write_batch(Batch(nodes=[{"id": "n1", "run_id": "r1", "session_id": "s1"}], events=[ev(0, node_id="n1")]))
    with store.engine.begin() as conn:  # another process deletes the run (cascades to node and events)
        conn.execute(text("DELETE FROM workflow_runs WHERE id = 'r1'"))
    result = store.write_batch(Batch(events=[ev(1, node_id="n1", parent_event_id="e0")]))
    assert result.events_inserted == 1 and result.repaired["runs_created"] == 1
    assert result.repaired["nodes_unlinked"] == 1 and result.repaired["parents_unlinked"] == 1
    assert _count(store) == 1


def test_two_stores_on_one_database_see_each_others_parents(store):
    other = CaptureStore(store.engine)
    store.write_batch(Batch(events=[ev(0)]))
    result = other.write_batch(Batch(events=[ev(1, parent_event_id="e0", depth=1)]))
    assert result.events_inserted == 1 and not result.repaired.get("parents_unlinked")
    assert queries.get_child_events(store, "s1", "e0")[0]["id"] == "e1"


def test_update_event_and_create_event_prepare_once(store):
    eid = store.create_event(run_id="r1", session_id="s1", event_type="agent_call", status="running",
                             error_message="x" * 300_000)
    store.update_event(eid, status="completed", outputs={"response": "ok"}, duration_ms=12.7)
    got = queries.get_event(store, "s1", eid)
    assert (got["status"], got["outputs"], got["duration_ms"]) == ("completed", {"response": "ok"}, 12)
    assert got["error_message"].count("[truncated") == 1
