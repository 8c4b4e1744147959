"""The reference's Stage 1 verification list (cmbagent.md §12), on real SQLite and real PostgreSQL."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, text

from capture.read import queries
from capture.store.capture_store import Batch
from capture.store.models import ExecutionEvent

T0 = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)


def _session_run(store, session="s1", run="r1", mode="one_shot"):
    store.write_batch(Batch(runs=[{"id": run, "session_id": session, "mode": mode, "status": "executing"}]))
    return session, run


def test_model_fields_and_indexes(store):
    cols = {c["name"] for c in inspect(store.engine).get_columns("execution_events")}
    assert {"seq", "id", "run_id", "node_id", "step_id", "session_id", "parent_event_id", "event_type",
            "event_subtype", "agent_name", "agent_role", "timestamp", "started_at", "completed_at", "duration_ms",
            "inputs", "outputs", "error_message", "meta", "execution_order", "depth", "status"} <= cols
    indexes = {i["name"] for i in inspect(store.engine).get_indexes("execution_events")}
    assert {"idx_events_run_order", "idx_events_node_order", "idx_events_parent"} <= indexes
    for table in ("files", "messages"):
        names = {i["name"] for i in inspect(store.engine).get_indexes(table)}
        assert {f"idx_{table}_event", f"idx_{table}_node"} <= names


def test_agent_call_start_for_engineer(store):
    s, r = _session_run(store)
    eid = store.create_event(session_id=s, run_id=r, event_type="agent_call", event_subtype="start",
                             agent_name="engineer", execution_order=0, status="running",
                             inputs={"message": "write code"}, timestamp=T0)
    got = queries.get_event(store, s, eid)
    assert got["event_type"] == "agent_call" and got["event_subtype"] == "start"
    assert got["agent_name"] == "engineer" and got["status"] == "running" and got["depth"] == 0
    assert got["inputs"] == {"message": "write code"}
    assert got["timestamp"] == "2026-01-19T12:00:00+00:00"
    assert isinstance(got["seq"], int) and got["seq"] >= 1


def test_tool_and_code_under_parent_at_depth_1(store):
    s, r = _session_run(store)
    root = store.create_event(session_id=s, run_id=r, event_type="agent_call", event_subtype="start",
                              agent_name="engineer", execution_order=0)
    tool = store.create_event(session_id=s, run_id=r, event_type="tool_call", event_subtype="complete",
                              agent_name="engineer", execution_order=1, parent_event_id=root, depth=1)
    code = store.create_event(session_id=s, run_id=r, event_type="code_exec", event_subtype="complete",
                              agent_name="executor", execution_order=2, parent_event_id=root, depth=1)
    children = queries.get_child_events(store, s, root)
    assert [c["id"] for c in children] == [tool, code]
    assert [c["execution_order"] for c in children] == [1, 2]
    assert all(c["depth"] == 1 and c["parent_event_id"] == root for c in children)


def _nested(store, s, r):
    root = store.create_event(session_id=s, run_id=r, event_type="agent_call", event_subtype="start",
                              agent_name="engineer", execution_order=1, depth=0)
    tool = store.create_event(session_id=s, run_id=r, event_type="tool_call", event_subtype="complete",
                              agent_name="engineer", execution_order=2, depth=1, parent_event_id=root)
    fgen = store.create_event(session_id=s, run_id=r, event_type="file_gen", event_subtype="create",
                              agent_name="engineer", execution_order=3, depth=2, parent_event_id=tool,
                              inputs={"file_path": "plot.png"})
    return root, tool, fgen


def test_nested_tree_depth_0_1_2(store):
    s, r = _session_run(store)
    root, tool, fgen = _nested(store, s, r)
    # a sibling tree and another session's event must not leak in
    store.create_event(session_id=s, run_id=r, event_type="agent_call", agent_name="planner", execution_order=0)
    tree = queries.get_event_tree(store, s, root)
    assert [(e["id"], e["depth"], e["level"]) for e in tree] == [(root, 0, 0), (tool, 1, 1), (fgen, 2, 2)]
    assert queries.get_event_tree(store, "other-session", root) == []


def test_files_and_messages_linked_by_event(store):
    s, r = _session_run(store)
    store.upsert_node(id="n1", run_id=r, session_id=s, node_type="agent", agent="engineer")
    root, _tool, fgen = _nested(store, s, r)
    store.write_batch(Batch(
        files=[{"id": "f1", "run_id": r, "session_id": s, "event_id": fgen, "node_id": "n1",
                "file_path": "data/plot.png", "file_type": "plot", "generating_agent": "engineer"}],
        messages=[{"run_id": r, "session_id": s, "event_id": root, "node_id": "n1", "sender": "planner",
                   "recipient": "engineer", "content": "please plot", "tokens": 12}]))
    files = queries.files_for_event(store, s, fgen)
    assert [f["id"] for f in files] == ["f1"] and files[0]["node_id"] == "n1"
    assert [f["id"] for f in queries.files_for_node(store, s, "n1")] == ["f1"]
    msgs = queries.messages_for_event(store, s, root)
    assert [(m["sender"], m["recipient"], m["content"], m["tokens"]) for m in msgs] == [
        ("planner", "engineer", "please plot", 12)]
    assert len(queries.messages_for_node(store, s, "n1")) == 1
    assert queries.files_for_event(store, "other", fgen) == []
    assert queries.messages_for_event(store, "other", root) == []


def test_statistics_exact_reference_numbers(store):
    s, r = _session_run(store)
    store.create_event(session_id=s, run_id=r, event_type="agent_call", event_subtype="complete",
                       agent_name="engineer", execution_order=1, duration_ms=1000)
    store.create_event(session_id=s, run_id=r, event_type="code_exec", event_subtype="complete",
                       agent_name="engineer", execution_order=2, duration_ms=2000)
    store.create_event(session_id=s, run_id=r, event_type="file_gen", event_subtype="create",
                       execution_order=3, duration_ms=500)
    stats = queries.get_event_statistics(store, s, r)
    assert stats["total_events"] == 3
    assert stats["event_types"] == {"agent_call": 1, "code_exec": 1, "file_gen": 1}
    assert stats["agents_involved"] == ["engineer"]
    assert stats["agent_call_counts"] == {"engineer": 1}
    assert stats["events_by_agent"] == {"engineer": 2}
    assert stats["total_duration_ms"] == 3500
    assert stats["avg_duration_ms"] == pytest.approx(3500 / 3)
    assert queries.get_event_statistics(store, "other", r)["total_events"] == 0


def test_planning_and_control_queries_by_type_and_agent(store):
    s, r = _session_run(store, mode="planning-control")
    store.upsert_node(id="plan", run_id=r, session_id=s, node_type="planning", agent="planner", order_index=0)
    store.upsert_node(id="step1", run_id=r, session_id=s, node_type="agent", agent="engineer", order_index=1)
    p = store.create_event(session_id=s, run_id=r, node_id="plan", event_type="agent_call", agent_name="planner",
                           execution_order=1)
    e = store.create_event(session_id=s, run_id=r, node_id="step1", event_type="agent_call",
                           agent_name="engineer", execution_order=2)
    t = store.create_event(session_id=s, run_id=r, node_id="step1", event_type="tool_call",
                           agent_name="engineer", execution_order=3, parent_event_id=e, depth=1)
    assert [x["id"] for x in queries.list_events_for_run(store, s, r)] == [p, e, t]
    assert [x["id"] for x in queries.list_events_for_run(store, s, r, event_type="agent_call")] == [p, e]
    assert [x["id"] for x in queries.list_events_for_run(store, s, r, agent_name="engineer")] == [e, t]
    assert [x["id"] for x in queries.list_events_for_run(store, s, r, limit=2)] == [p, e]
    assert [x["id"] for x in queries.list_events_for_node(store, s, "step1")] == [e, t]
    assert [x["id"] for x in queries.list_events_for_node(store, s, "step1", event_type="tool_call")] == [t]
    assert queries.list_events_for_run(store, s, r, event_type="handoff") == []
    overview = queries.store_overview(store.engine)
    assert overview["runs_by_mode"] == {"planning_and_control": 1}
    assert overview["tables"]["execution_events"] == 3 and overview["tables"]["dag_nodes"] == 2


def test_session_isolation(store):
    for session in ("sA", "sB"):
        store.write_batch(Batch(runs=[{"id": f"run-{session}", "session_id": session}], events=[
            {"id": f"{session}-e{i}", "run_id": f"run-{session}", "session_id": session,
             "event_type": "agent_call", "agent_name": "engineer", "execution_order": i} for i in range(3)]))
    assert [e["id"] for e in queries.list_events_for_run(store, "sA", "run-sA")] == ["sA-e0", "sA-e1", "sA-e2"]
    assert queries.list_events_for_run(store, "sA", "run-sB") == []
    assert queries.get_event(store, "sA", "sB-e0") is None
    assert queries.get_event(store, "sB", "sB-e0")["session_id"] == "sB"


def test_cascade_delete_of_a_run(store):
    s, r = _session_run(store)
    store.upsert_node(id="n1", run_id=r, session_id=s)
    root, _tool, fgen = _nested(store, s, r)
    store.write_batch(Batch(
        files=[{"id": "f1", "run_id": r, "session_id": s, "event_id": fgen, "node_id": "n1", "file_path": "a.csv"}],
        messages=[{"run_id": r, "session_id": s, "event_id": root, "node_id": "n1", "content": "x"}],
        costs=[{"run_id": r, "session_id": s, "node_id": "n1", "total_tokens": 5}]))
    _session_run(store, run="r2")
    store.create_event(session_id=s, run_id="r2", event_type="info", execution_order=0)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM workflow_runs WHERE id = 'r1'"))
    with store.engine.connect() as conn:
        for table in ("dag_nodes", "execution_events", "files", "messages", "cost_records"):
            assert conn.execute(text(f"SELECT count(*) FROM {table} WHERE run_id = 'r1'")).scalar() == 0, table
        assert conn.execute(text("SELECT count(*) FROM execution_events")).scalar() == 1


def test_deleting_a_parent_event_unlinks_children(store):
    s, r = _session_run(store)
    root, tool, _fgen = _nested(store, s, r)
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM execution_events WHERE id = :i"), {"i": root})
    assert queries.get_event(store, s, tool)["parent_event_id"] is None


def test_foreign_keys_enforced_even_on_sqlite(store):
    _session_run(store)
    with pytest.raises(Exception) as info, store.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO execution_events (id, run_id, session_id, event_type, timestamp, execution_order,"
            " depth, status) VALUES ('e-bad', 'no-such-run', 's1', 'info', '2026-01-01 00:00:00', 0, 0,"
            " 'completed')"))
    assert "foreign key" in str(info.value).lower()
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM execution_events")).scalar() == 0


def test_dirty_data_gaps_no_node_unknown_agents(store):
    s, r = _session_run(store)
    for order, agent in ((1, "engineer"), (2, "unknown"), (15, "system")):
        store.create_event(session_id=s, run_id=r, event_type="agent_call", agent_name=agent,
                           execution_order=order, timestamp=T0 + timedelta(seconds=order))
    store.create_event(session_id=s, run_id=r, event_type="info", execution_order=2)  # tie on order: by seq
    events = queries.list_events_for_run(store, s, r)
    assert [(e["execution_order"], e["agent_name"]) for e in events] == [
        (1, "engineer"), (2, "unknown"), (2, None), (15, "system")]
    assert all(e["node_id"] is None for e in events)
    stats = queries.get_event_statistics(store, s, r)
    assert stats["agents_involved"] == ["engineer", "system", "unknown"] and stats["total_events"] == 4
    assert stats["total_duration_ms"] == 0 and stats["avg_duration_ms"] == 0.0


def test_idempotent_write_batch(store):
    batch = Batch(runs=[{"id": "r1", "session_id": "s1"}], nodes=[{"id": "n1", "run_id": "r1", "session_id": "s1"}],
                  events=[{"id": f"e{i}", "run_id": "r1", "session_id": "s1", "node_id": "n1",
                           "event_type": "tool_call", "execution_order": i} for i in range(5)],
                  messages=[{"run_id": "r1", "session_id": "s1", "event_id": "e0", "content": "hi"}],
                  files=[{"id": "f1", "run_id": "r1", "session_id": "s1", "event_id": "e1", "file_path": "x.py"}])
    first = store.write_batch(batch)
    second = store.write_batch(batch)
    assert (first.events_inserted, first.events_skipped) == (5, 0)
    assert (second.events_inserted, second.events_skipped) == (0, 5)
    overview = queries.store_overview(store.engine)["tables"]
    assert (overview["execution_events"], overview["messages"], overview["files"], overview["workflow_runs"],
            overview["dag_nodes"]) == (5, 1, 1, 1, 1)


def test_seq_is_monotonic_in_insert_order(store):
    store.write_batch(Batch(events=[{"id": f"e{i}", "run_id": "r1", "session_id": "s1", "event_type": "info",
                                     "execution_order": 10 - i} for i in range(10)]))
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT id, seq FROM execution_events ORDER BY seq")).all()
    assert [r[0] for r in rows] == [f"e{i}" for i in range(10)]
    assert store.max_seq() == rows[-1][1]


def test_explain_uses_run_order_index_on_sqlite(store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    with store.engine.connect() as conn:
        plan = " ".join(str(r) for r in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT * FROM execution_events WHERE run_id = 'r' ORDER BY execution_order")))
    assert "idx_events_run_order" in plan


def test_models_module_is_the_event_table():
    assert ExecutionEvent.__tablename__ == "execution_events"
