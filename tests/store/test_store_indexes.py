"""The event index set (migration 0003): exactly the indexes a query needs, and every read the store's API makes on
events is served by one of them (SQLite's query plan: no full scan of execution_events)."""

import re

import pytest
from sqlalchemy import event, inspect, text

from capture.read import queries
from capture.read.summary import compute_node_summary
from capture.store.capture_store import Batch

KEPT = {"idx_events_run_order", "idx_events_node_order", "idx_events_parent"}
DROPPED = {"ix_execution_events_step_id", "ix_execution_events_agent_name", "ix_execution_events_timestamp",
           "idx_events_type_subtype", "idx_events_session_timestamp"}


def test_event_indexes_are_the_chosen_set(store):
    names = {i["name"] for i in inspect(store.engine).get_indexes("execution_events")
             if not i.get("duplicates_constraint")}  # PostgreSQL lists the unique constraint's index too
    assert names == KEPT
    unique = inspect(store.engine).get_unique_constraints("execution_events")
    assert [u["column_names"] for u in unique] == [["id"]]


def _plans(store, call):
    """SQLite query plans of every statement ``call`` runs that reads execution_events."""
    statements = []

    def remember(conn, cursor, statement, parameters, context, executemany):
        if "execution_events" in statement and statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", remember)
    try:
        call()
    finally:
        event.remove(store.engine, "before_cursor_execute", remember)
    with store.engine.connect() as conn:
        return [" | ".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                for sql, params in statements]


def test_every_event_read_of_the_api_uses_an_index(store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    nodes = [{"id": f"n{i}", "run_id": "r1", "session_id": "s1"} for i in range(2)]
    events = [{"id": "root", "run_id": "r1", "session_id": "s1", "event_type": "agent_call", "node_id": "n0"}]
    events += [{"id": f"e{i}", "run_id": "r1", "session_id": "s1", "event_type": "tool_call", "execution_order": i,
                "parent_event_id": "root", "node_id": f"n{i % 2}", "agent_name": "engineer",
                "meta": {"tokens": 3}} for i in range(1, 50)]
    # other runs hold most events, as in any real store, so that a run or a node is a small part of the table
    events += [{"id": f"x{i}", "run_id": f"other{i % 20}", "session_id": "s1", "event_type": "tool_call",
                "execution_order": i} for i in range(1000)]
    store.write_batch(Batch(nodes=nodes, events=events))
    with store.engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    reads = {
        "event by id": lambda: queries.get_event(store, "s1", "e3"),
        "events of a run": lambda: queries.list_events_for_run(store, "s1", "r1", event_type="tool_call",
                                                              agent_name="engineer"),
        "events of a node": lambda: queries.list_events_for_node(store, "s1", "n1"),
        "children": lambda: queries.get_child_events(store, "s1", "root"),
        "tree": lambda: queries.get_event_tree(store, "s1", "root"),
        "run statistics": lambda: queries.get_event_statistics(store, "s1", "r1"),
        "node summary": lambda: compute_node_summary(store, "s1", "n0"),
    }
    full_scan = re.compile(r"\bSCAN (execution_events|child)\b(?! USING)")
    for name, call in reads.items():
        plans = _plans(store, call)
        assert plans, name
        for plan in plans:
            assert not full_scan.search(plan), (name, plan)
