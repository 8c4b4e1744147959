"""The DB-API write path (capture.store.bulk) and the write API around it: rows stored exactly as SQLAlchemy stores
them, payloads encoded once, prepared batches, transactions shared with the caller's own statements."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import insert, text

from capture.core.payload import dumps
from capture.read import queries
from capture.store.capture_store import Batch, PreparedBatch
from capture.store.models import COSTS, FILES, MESSAGES, NODES, RUNS
from capture.store.records import (
    PAYLOADS_PENDING,
    encode_pending,
    prepare_cost,
    prepare_event,
    prepare_file,
    prepare_message,
    prepare_node,
    prepare_run,
)

T0 = datetime(2026, 3, 4, 5, 6, 7, 891011, tzinfo=UTC)


def _stored(store, table, key, value):
    """The row as the driver returns it (no SQLAlchemy result processing), without its store-assigned id."""
    with store.engine.connect() as conn:
        row = conn.exec_driver_sql(f"SELECT * FROM {table} WHERE {key} = '{value}'").mappings().one()
    return {k: v for k, v in row.items() if k not in ("id", key)}


@pytest.mark.parametrize(("table", "prepare", "row", "key"), [
    (RUNS, prepare_run, {"session_id": "s1", "mode": "one_shot", "started_at": T0, "meta": {"a": [1, "é"]},
                         "task_description": "plot it"}, "id"),
    (NODES, prepare_node, {"run_id": "r0", "session_id": "s1", "agent": "engineer", "meta": {"step": 2}}, "id"),
    (FILES, prepare_file, {"run_id": "r0", "session_id": "s1", "file_path": "data/x.png", "created_at": T0,
                           "is_final_output": True, "size_bytes": 12}, "id"),
    (MESSAGES, prepare_message, {"run_id": "r0", "session_id": "s1", "sender": "a", "recipient": "b",
                                 "content": "hi", "timestamp": T0, "tokens": 3, "meta": {"k": None}}, "sender"),
    (COSTS, prepare_cost, {"run_id": "r0", "session_id": "s1", "model": "gpt-4o", "prompt_tokens": 10,
                           "cost_usd": Decimal("0.012345"), "timestamp": T0}, "model"),
])
def test_bulk_rows_are_stored_as_sqlalchemy_stores_them(store, table, prepare, row, key):
    """Each table the write path covers: the same row through the store and through a SQLAlchemy Core insert (the
    ORM's way, with the models' defaults) is stored identically, column by column."""
    store.write_batch(Batch(runs=[{"id": "r0", "session_id": "s1"}]))
    bulk_row, core_row = dict(row), dict(row)
    if key == "id":
        bulk_row["id"], core_row["id"] = "bulk", "core"
    else:
        bulk_row[key], core_row[key] = "bulk", "core"
    store.write_batch(Batch(**{{RUNS: "runs", NODES: "nodes", FILES: "files", MESSAGES: "messages",
                                COSTS: "costs"}[table]: [bulk_row]}))
    with store.engine.begin() as conn:
        conn.execute(insert(table), [prepare(core_row)])
    assert _stored(store, table.name, key, "bulk") == _stored(store, table.name, key, "core")


def test_encoded_payloads_are_kept_as_given(store):
    inputs = {"messages": [{"role": "user", "content": "tab\there é \u2028"}], "n": 1.5}
    text_in = dumps(inputs)
    result = store.write_batch(Batch(encoded=True, events=[
        {"id": "e1", "run_id": "r1", "session_id": "s1", "event_type": "llm_call", "inputs": text_in,
         "outputs": dumps("just a string"), "meta": {"not": "encoded, a dict"}},
        {"id": "e2", "run_id": "r1", "session_id": "s1", "event_type": "execution", "meta": dumps({"k": 1})},
        {"id": "e3", "run_id": "r1", "session_id": "s1", "event_type": "info",
         "inputs": dumps({"big": "x" * 200_000})}]))
    assert result.events_inserted == 3
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT inputs FROM execution_events WHERE id = 'e1'").scalar()
    assert (stored if isinstance(stored, str) else dumps(stored)) == text_in
    e1 = queries.get_event(store, "s1", "e1")
    assert (e1["inputs"], e1["outputs"], e1["meta"]) == (inputs, "just a string", {"not": "encoded, a dict"})
    e2 = queries.get_event(store, "s1", "e2")  # an alias type: the source type is added to the encoded meta
    assert (e2["event_type"], e2["meta"]) == ("agent_call", {"k": 1, "source_type": "execution"})
    e3 = queries.get_event(store, "s1", "e3")  # an encoded text over the store's limit is cut as any payload
    assert e3["inputs"]["big"]["__truncated__"] is True and len(dumps(e3["inputs"])) <= store.max_payload_bytes


def test_a_prepared_batch_is_not_changed_by_writing_it(store):
    batch = Batch(events=[{"id": "e1", "run_id": "r1", "session_id": "s1", "event_type": "tool_call",
                           "parent_event_id": "ghost", "node_id": "no-node"}],
                  messages=[{"run_id": "r1", "session_id": "s1", "event_id": "nope", "content": "hi"}])
    prepared = store.prepare(batch)
    assert isinstance(prepared, PreparedBatch)
    snapshot = (dict(prepared.events[0]), dict(prepared.messages[0]))
    first = store.write_batch(prepared)
    assert first.events_inserted == 1 and first.repaired["parents_unlinked"] == 1
    assert first.repaired["artefact_events_unlinked"] == 1
    assert (prepared.events[0], prepared.messages[0]) == snapshot
    again = store.write_batch(prepared)
    assert (again.events_inserted, again.events_skipped, again.repaired["parents_unlinked"]) == (0, 1, 1)


def test_a_transaction_holds_the_callers_statements_and_the_batches(store):
    with store.transaction() as tx:
        result = tx.write(Batch(sessions=[{"id": "s9", "name": "imported", "meta": {"rank": 2}}],
                                runs=[{"id": "r9", "session_id": "s9"}],
                                events=[{"id": "a", "run_id": "r9", "session_id": "s9", "event_type": "info"}]))
        assert (result.sessions_written, result.runs_written, result.events_inserted) == (1, 1, 1)
        tx.conn.execute(text("UPDATE workflow_runs SET status = 'completed' WHERE id = 'r9'"))
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM workflow_runs WHERE id = 'r9'")).scalar() == "completed"
        assert conn.execute(text("SELECT name FROM sessions WHERE id = 's9'")).scalar() == "imported"
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.write(Batch(events=[{"id": "b", "run_id": "r9", "session_id": "s9", "event_type": "info"}]))
        raise RuntimeError("the caller fails after writing")
    assert queries.get_event(store, "s9", "b") is None  # rolled back with the caller's failure


def test_forget_known_after_deleting_in_a_transaction(store):
    store.write_batch(Batch(nodes=[{"id": "n1", "run_id": "r1", "session_id": "s1"}]))
    with store.transaction() as tx:
        tx.conn.execute(text("DELETE FROM dag_nodes WHERE id = 'n1'"))
        tx.forget_known()
    result = store.write_batch(Batch(events=[{"id": "e", "run_id": "r1", "session_id": "s1", "event_type": "info",
                                              "node_id": "n1"}]))
    assert result.repaired["nodes_unlinked"] == 1  # checked again, not trusted from memory


def test_sessions_are_upserts(store):
    store.write_batch(Batch(sessions=[{"id": "s1", "name": "first", "user_id": "u"}]))
    store.write_batch(Batch(sessions=[{"id": "s1", "name": "second"}]))
    with store.engine.connect() as conn:
        row = conn.execute(text("SELECT name, user_id, status FROM sessions WHERE id = 's1'")).one()
    assert tuple(row) == ("second", "u", "active")


def test_replayed_events_keep_the_batch_order(store):
    """Ids already stored among new ones (a spool replay): the new ones are inserted in the batch's order."""
    events = [{"id": f"e{i}", "run_id": "r1", "session_id": "s1", "event_type": "info", "execution_order": i}
              for i in range(6)]
    store.write_batch(Batch(events=events[2:4]))
    result = store.write_batch(Batch(events=events))
    assert (result.events_inserted, result.events_skipped) == (4, 2)
    with store.engine.connect() as conn:
        ids = conn.execute(text("SELECT id FROM execution_events ORDER BY seq")).scalars().all()
    assert ids == ["e2", "e3", "e0", "e1", "e4", "e5"]


def test_a_new_sqlite_store_has_large_pages_wal_and_normal_sync(store):
    if store.engine.dialect.name != "sqlite":
        pytest.skip("SQLite pragmas")
    with store.engine.connect() as conn:
        pragmas = [conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                   for name in ("page_size", "journal_mode", "synchronous", "foreign_keys")]
    assert pragmas == [16384, "wal", 1, 1]  # synchronous 1 = NORMAL


PAYLOADS = [None, "plain text", {"a": [1, 2.5, "é"], "b": None}, ["x", {"y": True}], {"big": "z" * 300_000},
            {"odd": {1, 2}}, {"when": T0}, 7]


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_payloads_encoded_as_they_stream_are_the_payloads_encoded_first(payload) -> None:
    event = {"id": "e1", "run_id": "r0", "session_id": "s1", "event_type": "tool_call", "timestamp": T0,
             "inputs": payload, "outputs": payload, "meta": payload}
    deferred = prepare_event(event, payload_as_json=True, defer_payloads=True, max_payload_bytes=65_536)
    assert deferred[PAYLOADS_PENDING] == 65_536 and deferred["meta"] is payload
    streamed = encode_pending(deferred)
    assert PAYLOADS_PENDING in deferred and PAYLOADS_PENDING not in streamed  # the prepared row is left as it was
    assert streamed == prepare_event(event, payload_as_json=True, max_payload_bytes=65_536)


def test_only_a_postgresql_write_defers_payloads(store) -> None:
    batch = Batch(events=[{"id": "e1", "run_id": "r0", "session_id": "s1", "event_type": "tool_call",
                           "inputs": {"q": 1}}])
    written = store.prepare(batch, for_writing=True).events[0]
    assert (PAYLOADS_PENDING in written) == (store.engine.dialect.name == "postgresql")
    assert PAYLOADS_PENDING not in store.prepare(batch).events[0]  # a batch prepared ahead is fully encoded
    store.write_batch(batch)
    assert queries.get_event(store, "s1", "e1")["inputs"] == {"q": 1}
