"""The capture store's write side: idempotent batched writes of sessions, runs, nodes, events and artefacts.

:meth:`CaptureStore.write_batch` is what the recorder's background writer, the importers and the simulator all
call: one transaction, parents before children, replay-safe (an event id already stored is skipped, so a spool
replayed twice changes nothing), and tolerant of references to things that are not there (a missing session or
run is created, a missing parent event or node is unlinked and noted in ``meta``), so one bad reference never
costs a whole batch. Writers that need their own statements in the same transaction (the importers' merge) use
:meth:`CaptureStore.transaction` and :meth:`StoreTransaction.write`, which give the same guarantees. Rows are
prepared by :mod:`capture.store.records` (payloads encoded to JSON text once) and written by
:mod:`capture.store.bulk` (DB-API tuples: SQLite ``executemany``, PostgreSQL ``COPY``).
"""

import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import IntegrityError

from capture.core.context import DEFAULT_SESSION_ID
from capture.core.payload import DEFAULT_MAX_PAYLOAD_BYTES, dumps
from capture.store.bulk import BulkWriter, writer_for
from capture.store.db import make_engine, ping
from capture.store.migrate import migrate_new_sqlite, require_current_schema
from capture.store.models import COSTS, EDGES, EVENTS, FILES, MESSAGES, NODES, RUNS, SESSIONS
from capture.store.records import (
    EDGE_COLUMNS,
    PAYLOADS_PENDING,
    BadRecord,
    new_id,
    prepare_cost,
    prepare_event,
    prepare_file,
    prepare_generic,
    prepare_message,
    prepare_node,
    prepare_run,
    prepare_session,
)

# The table handles are re-exported for writers that read back what they wrote (the AG2 engine, conformance).
__all__ = ["COSTS", "EDGES", "EVENTS", "FILES", "MESSAGES", "NODES", "RUNS", "SESSIONS", "Batch", "BatchResult",
           "CaptureStore", "PreparedBatch", "StoreTransaction"]


@dataclass
class Batch:
    """Everything one transaction writes. Sessions, runs, nodes and files are upserts; events are insert-once by id.

    ``encoded``: the rows' ``str`` payloads (inputs, outputs, meta, resource_limits) are JSON text already, e.g.
    from :func:`capture.core.payload.encode_payload_json`; the store keeps that text instead of encoding again
    (it only re-cuts a text over its payload limit). Other payload values are encoded as usual.
    """

    runs: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    event_updates: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)
    sessions: list[dict[str, Any]] = field(default_factory=list)
    encoded: bool = False

    def __len__(self) -> int:
        return sum(len(rows) for rows in (self.runs, self.nodes, self.edges, self.events, self.event_updates,
                                          self.files, self.messages, self.costs, self.sessions))


class PreparedBatch(Batch):
    """A batch :meth:`CaptureStore.prepare` validated and encoded: written as it is, never prepared again.

    Preparing is pure, so a producer can prepare its next batch while the previous one is written; a prepared
    batch is not changed by writing it (repairs work on copies), so it can be retried.
    """


@dataclass
class BatchResult:
    """What a :meth:`CaptureStore.write_batch` call wrote and what it had to repair."""

    events_inserted: int = 0
    events_skipped: int = 0
    events_updated: int = 0
    sessions_written: int = 0
    runs_written: int = 0
    nodes_written: int = 0
    files_written: int = 0
    messages_written: int = 0
    costs_written: int = 0
    repaired: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _parents_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order a batch so that an event's parent, when in the batch, is inserted before it."""
    position = {e["id"]: i for i, e in enumerate(events)}
    if all(position.get(e["parent_event_id"], -1) < i for i, e in enumerate(events)):
        return events  # already parents first (the usual case)
    by_id = {e["id"]: e for e in events}
    placed: set[str] = set()
    ordered: list[dict[str, Any]] = []
    for event in events:
        chain = []
        current: dict[str, Any] | None = event
        while current is not None and current["id"] not in placed and current not in chain:
            chain.append(current)
            parent = current["parent_event_id"]
            current = by_id.get(parent) if parent else None
        for item in reversed(chain):
            placed.add(item["id"])
            ordered.append(item)
    return ordered


def _with_note(event: dict[str, Any], key: str, value: Any) -> None:
    """Add a repair note to a prepared event's meta, in place (JSON text, or the value itself while the row's
    payloads wait to be encoded)."""
    meta = event["meta"]
    pending = PAYLOADS_PENDING in event
    decoded = json.loads(meta) if isinstance(meta, str) and not pending else meta
    if not isinstance(decoded, dict):
        decoded = {} if decoded is None else {"value": decoded}
    event["meta"] = {**decoded, key: value} if pending else dumps({**decoded, key: value})


# What each kind of remembered id is: its table and key column.
_KINDS = {"sessions": ("sessions", "id"), "runs": ("workflow_runs", "id"), "nodes": ("dag_nodes", "id"),
          "events": ("execution_events", "id")}
_AUTO_CREATED_RUN_META = dumps({"auto_created": True})


class StoreTransaction:
    """One open transaction on a :class:`CaptureStore`: write batches with :meth:`write` (the guarantees of
    :meth:`CaptureStore.write_batch`) and run your own statements on :attr:`conn` in between.

    Ids of what it wrote or found are remembered by the store once the transaction commits; call
    :meth:`forget_known` after deleting rows in it, so that the store checks again instead.
    """

    def __init__(self, store: "CaptureStore", conn: Connection, memory: dict[str, set[str]] | None) -> None:
        self.conn = conn
        self.store = store
        self.writer: BulkWriter = writer_for(conn)
        self.memory = memory
        self.used_memory = False
        self.invalidated = False
        self.learned: dict[str, set[str]] = {kind: set() for kind in _KINDS}

    def forget_known(self) -> None:
        """Rows were deleted in this transaction: drop the store's remembered ids when it ends."""
        self.invalidated = True

    def write(self, batch: Batch) -> BatchResult:
        """Prepare (unless it is a :class:`PreparedBatch`) and write ``batch`` in this transaction."""
        rows = batch if isinstance(batch, PreparedBatch) else self.store.prepare(batch, for_writing=True)
        result = BatchResult()
        writer = self.writer
        if rows.sessions:
            writer.upsert("sessions", rows.sessions)
            result.sessions_written = len(rows.sessions)
            self.learned["sessions"].update(r["id"] for r in rows.sessions)
        self._ensure_sessions(rows, result)
        if rows.runs:
            writer.upsert("workflow_runs", rows.runs)
            result.runs_written = len(rows.runs)
            self.learned["runs"].update(r["id"] for r in rows.runs)
        self._ensure_runs(rows, result)
        if rows.nodes:
            writer.upsert("dag_nodes", rows.nodes)
            result.nodes_written = len(rows.nodes)
            self.learned["nodes"].update(r["id"] for r in rows.nodes)
        if rows.edges:
            writer.insert("dag_edges", rows.edges)
        self._insert_events(rows.events, result)
        if rows.event_updates:
            result.events_updated = writer.update_events(rows.event_updates)
        self._insert_artefacts(rows, result)
        return result

    def known(self, kind: str, ids: Iterable[Any]) -> set[Any]:
        """Which of ``ids`` (of ``kind``: sessions, runs, nodes, events) exist: learned in this transaction,
        remembered by the store, or found by one query."""
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return set()
        found = wanted & self.learned[kind]
        if self.memory is not None:
            with self.store._known_lock:
                remembered = {i for i in wanted if i in self.memory[kind]}
            if remembered:
                self.used_memory = True
                found |= remembered
        rest = wanted - found
        if rest:
            hits = self.writer.existing(*_KINDS[kind], rest)
            found |= hits
            self.learned[kind].update(hits)
        return found

    def _ensure_sessions(self, rows: Batch, result: BatchResult) -> None:
        wanted = {r.get("session_id") for part in (rows.runs, rows.nodes, rows.events, rows.files, rows.messages,
                                                   rows.costs) for r in part}
        wanted.discard(None)
        missing = wanted - self.known("sessions", wanted)
        if missing:
            self._create_sessions(missing)
            result.repaired["sessions_created"] += len(missing)

    def _ensure_runs(self, rows: Batch, result: BatchResult) -> None:
        sessions: dict[str, str] = {}
        for row in (*rows.nodes, *rows.events):
            sessions.setdefault(row["run_id"], row["session_id"])
        for row in (*rows.files, *rows.messages, *rows.costs):
            if row.get("session_id"):
                sessions.setdefault(row["run_id"], row["session_id"])
        for row in (*rows.files, *rows.messages, *rows.costs):
            sessions.setdefault(row["run_id"], DEFAULT_SESSION_ID)
        missing = set(sessions) - self.known("runs", sessions)
        if missing:
            owners = {sessions[r] for r in missing}
            orphan_sessions = owners - self.known("sessions", owners)
            if orphan_sessions:
                self._create_sessions(orphan_sessions)
            self.writer.upsert("workflow_runs", [
                {"id": run, "session_id": sessions[run], "status": "executing", "is_branch": False,
                 "branch_depth": 0, "meta": _AUTO_CREATED_RUN_META} for run in sorted(missing)], replace=False)
            result.repaired["runs_created"] += len(missing)
            self.learned["runs"].update(missing)

    def _create_sessions(self, sessions: set[str]) -> None:
        """Create sessions that another writer may be creating at the same moment (conflicts are fine)."""
        now = datetime.now(UTC)
        self.writer.upsert("sessions", [{"id": s, "name": s, "created_at": now, "status": "active"}
                                        for s in sorted(sessions)], replace=False)
        self.learned["sessions"].update(sessions)

    def _insert_events(self, events: list[dict[str, Any]], result: BatchResult) -> None:
        if not events:
            return
        ids = {e["id"] for e in events}
        parents = {e["parent_event_id"] for e in events if e["parent_event_id"]}
        known_parents = ids | self.known("events", parents - ids)
        known_nodes = self.known("nodes", {e["node_id"] for e in events if e["node_id"]})
        repaired = events
        for index, event in enumerate(events):
            parent, node = event["parent_event_id"], event["node_id"]
            lost_parent = parent and parent not in known_parents
            lost_node = node and node not in known_nodes
            if not (lost_parent or lost_node):
                continue
            if repaired is events:
                repaired = list(events)  # a prepared batch stays as it was (it may be retried)
            event = dict(event)
            if lost_parent:
                _with_note(event, "missing_parent_event_id", parent)
                event["parent_event_id"] = None
                result.repaired["parents_unlinked"] += 1
            if lost_node:
                _with_note(event, "missing_node_id", node)
                event["node_id"] = None
                result.repaired["nodes_unlinked"] += 1
            repaired[index] = event
        inserted = self.writer.insert_events(_parents_first(repaired))
        result.events_inserted = inserted
        result.events_skipped = len(events) - inserted
        self.learned["events"].update(ids)

    def _insert_artefacts(self, rows: Batch, result: BatchResult) -> None:
        artefacts = (rows.files, rows.messages, rows.costs)
        if not any(artefacts):
            return
        known_events = self.known("events", {r.get("event_id") for part in artefacts for r in part})
        known_nodes = self.known("nodes", {r.get("node_id") for part in artefacts for r in part})
        files, messages, costs = (
            [self._linked(row, known_events, known_nodes, result) for row in part] for part in artefacts)
        if files:
            self.writer.upsert("files", files)
            result.files_written = len(files)
        result.messages_written = self._insert_once_per_event("messages", messages)
        result.costs_written = self._insert_once_per_event("cost_records", costs)

    @staticmethod
    def _linked(row: dict[str, Any], known_events: set[Any], known_nodes: set[Any],
                result: BatchResult) -> dict[str, Any]:
        """An artefact row with links to events or nodes that do not exist removed (a copy when changed)."""
        lost_event = row.get("event_id") and row["event_id"] not in known_events
        lost_node = row.get("node_id") and row["node_id"] not in known_nodes
        if not (lost_event or lost_node):
            return row
        row = dict(row)
        if lost_event:
            row["event_id"] = None
            result.repaired["artefact_events_unlinked"] += 1
        if lost_node:
            row["node_id"] = None
            result.repaired["artefact_nodes_unlinked"] += 1
        return row

    def _insert_once_per_event(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Messages and cost rows tied to an event are written once per event (replay-safe)."""
        if not rows:
            return 0
        seen = self.writer.existing(table, "event_id", {r.get("event_id") for r in rows})
        fresh, batch_seen = [], set()
        for row in rows:
            key = row.get("event_id")
            if key is not None and (key in seen or key in batch_seen):
                continue
            if key is not None:
                batch_seen.add(key)
            fresh.append(row)
        if fresh:
            self.writer.insert(table, fresh)
        return len(fresh)


class CaptureStore:
    """Write access to a capture store; the read side lives in :mod:`capture.read.queries`.

    Ids of sessions, runs, nodes and events this store has seen committed are remembered (bounded), so a
    steady stream of batches costs one bulk insert per batch and no look-ups. If a remembered id has been
    deleted meanwhile, the batch fails on a foreign key, the memory is dropped and the batch is retried once
    with full checks.
    """

    KNOWN_LIMIT = 200_000

    def __init__(self, engine: Engine, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.engine = engine
        self.max_payload_bytes = max_payload_bytes
        self._known: dict[str, set[str]] = {kind: set() for kind in _KINDS}
        self._known_lock = threading.Lock()

    @classmethod
    def open(cls, url: str | None = None, *, check_schema: bool = True, **kwargs: Any) -> "CaptureStore":
        """Open the store at ``url`` (default: configured), checking it is reachable and migrated. A new SQLite
        store is created and migrated here on first use; PostgreSQL needs ``skillmine db upgrade`` (the error says)."""
        engine = make_engine(url)
        ping(engine)
        if check_schema:
            migrate_new_sqlite(engine)
            require_current_schema(engine)
        return cls(engine, **kwargs)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # -- writes ------------------------------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> BatchResult:
        """Write ``batch`` in one transaction (see the module docstring for the guarantees)."""
        prepared = batch if isinstance(batch, PreparedBatch) else self.prepare(batch, for_writing=True)
        tx = None
        try:
            with self.transaction() as tx:
                return tx.write(prepared)
        except IntegrityError:
            if tx is None or not tx.used_memory:
                raise
        with self.transaction(trust_memory=False) as tx:  # a remembered row was deleted: check everything
            return tx.write(prepared)

    @contextmanager
    def transaction(self, *, trust_memory: bool = True) -> Iterator[StoreTransaction]:
        """A transaction to write batches into and run other statements in; commits when the block ends.

        If it fails after trusting remembered ids, the memory is dropped (a remembered row may be gone)."""
        tx = None
        try:
            with self.engine.begin() as conn:
                tx = StoreTransaction(self, conn, self._known if trust_memory else None)
                yield tx
        except BaseException:
            if tx is not None and tx.used_memory:
                self.forget_known()
            raise
        if tx.invalidated:
            self.forget_known()
        else:
            self._remember(tx.learned)

    def prepare(self, batch: Batch, *, for_writing: bool = False) -> PreparedBatch:
        """Validate and encode ``batch`` (pure: any thread, before the write); raises :class:`BadRecord`.

        ``for_writing`` (the batch is written next, on this thread): on PostgreSQL the events' payloads are encoded
        as they stream into ``COPY`` instead, so the server stores the first rows while the client encodes the
        rest (+18% events/s measured, benchmarks/RESULTS.md); validation is the same."""
        limit = self.max_payload_bytes
        encoding = {"payload_as_json": True, "encoded": batch.encoded}
        defer = for_writing and self.engine.dialect.name == "postgresql"
        return PreparedBatch(
            sessions=[prepare_session(r, **encoding) for r in batch.sessions],
            runs=[prepare_run(r, **encoding) for r in batch.runs],
            nodes=[prepare_node(r, **encoding) for r in batch.nodes],
            edges=[prepare_generic(r, EDGE_COLUMNS, "edge", payload_fields=(), assign_id=False)
                   for r in batch.edges],
            events=[prepare_event(r, max_payload_bytes=limit, defer_payloads=defer, **encoding) for r in batch.events],
            event_updates=[self._prepare_update(r, batch.encoded) for r in batch.event_updates],
            files=[prepare_file(r, **encoding) for r in batch.files],
            messages=[prepare_message(r, **encoding) for r in batch.messages],
            costs=[prepare_cost(r) for r in batch.costs],
            encoded=True,
        )

    def forget_known(self) -> None:
        """Drop the remembered ids (after deleting runs, sessions, nodes or events behind this store's back)."""
        with self._known_lock:
            for ids in self._known.values():
                ids.clear()

    def _remember(self, learned: dict[str, set[str]]) -> None:
        with self._known_lock:
            for kind, ids in learned.items():
                known = self._known[kind]
                if len(known) + len(ids) > self.KNOWN_LIMIT:
                    known.clear()
                known.update(ids)

    def _prepare_update(self, row: Mapping[str, Any], encoded: bool) -> dict[str, Any]:
        if not row.get("id"):
            raise BadRecord("event update: missing 'id'")
        changes = {k: v for k, v in row.items() if k not in {"id", "run_id", "session_id", "event_type"}}
        prepared = prepare_event({"id": row["id"], "run_id": "-", "session_id": "-", "event_type": "info",
                                  **changes}, max_payload_bytes=self.max_payload_bytes, payload_as_json=True,
                                 encoded=encoded)
        return {"id": row["id"], **{k: prepared[k] for k in changes}}

    # -- single-row conveniences (the manual API and tests) ------------------------------------------------

    def create_event(self, **fields: Any) -> str:
        """Insert one event and return its id."""
        fields.setdefault("session_id", DEFAULT_SESSION_ID)
        fields["id"] = str(fields.get("id") or new_id())
        self.write_batch(Batch(events=[fields]))
        return fields["id"]

    def update_event(self, event_id: str, **changes: Any) -> None:
        """Change fields of a stored event (lifecycle updates: status, outputs, completed_at ...)."""
        result = self.write_batch(Batch(event_updates=[{"id": event_id, **changes}]))
        if not result.events_updated:
            raise BadRecord(f"event {event_id}: nothing to update")

    def upsert_run(self, **fields: Any) -> str:
        """Insert or update a run; returns its id."""
        fields.setdefault("session_id", DEFAULT_SESSION_ID)
        run = prepare_run(fields)
        self.write_batch(Batch(runs=[run]))
        return run["id"]

    def upsert_node(self, **fields: Any) -> str:
        """Insert or update a DAG node; returns its id."""
        fields.setdefault("session_id", DEFAULT_SESSION_ID)
        node = prepare_node(fields)
        self.write_batch(Batch(nodes=[node]))
        return node["id"]

    def max_seq(self) -> int:
        """The highest event sequence number stored (0 when empty): the sensor's cheap change signal."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))).scalar_one())
