"""The capture store's write side: idempotent batched writes of runs, nodes, events and artefacts.

:meth:`CaptureStore.write_batch` is what the recorder's background writer, the importers and the simulator all
call: one transaction, parents before children, replay-safe (an event id already stored is skipped, so a spool
replayed twice changes nothing), and tolerant of references to things that are not there (a missing session or
run is created, a missing parent event or node is unlinked and noted in ``meta``), so one bad reference never
costs a whole batch.
"""

import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from capture.core.context import DEFAULT_SESSION_ID
from capture.core.payload import DEFAULT_MAX_PAYLOAD_BYTES, dumps
from capture.store.db import make_engine, ping
from capture.store.migrate import migrate_new_sqlite, require_current_schema
from capture.store.models import COSTS, EDGES, EVENTS, FILES, MESSAGES, NODES, RUNS, SESSIONS
from capture.store.records import (
    EDGE_COLUMNS,
    BadRecord,
    new_id,
    prepare_cost,
    prepare_event,
    prepare_file,
    prepare_generic,
    prepare_message,
    prepare_node,
    prepare_run,
)


@dataclass
class Batch:
    """Everything one transaction writes. Runs and nodes are upserts; events are insert-once by id."""

    runs: list[dict[str, Any]] = field(default_factory=list)
    nodes: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    event_updates: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    costs: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(rows) for rows in (self.runs, self.nodes, self.edges, self.events, self.event_updates,
                                          self.files, self.messages, self.costs))


@dataclass
class BatchResult:
    """What a :meth:`CaptureStore.write_batch` call wrote and what it had to repair."""

    events_inserted: int = 0
    events_skipped: int = 0
    events_updated: int = 0
    runs_written: int = 0
    nodes_written: int = 0
    files_written: int = 0
    messages_written: int = 0
    costs_written: int = 0
    repaired: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _dialect_insert(conn: Connection, table: Table):
    return (postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table))


def _group_by_keys(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """executemany needs one key set per statement."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    return groups


def _existing(conn: Connection, column, values: Iterable[Any]) -> set[Any]:
    wanted = list({v for v in values if v is not None})
    found: set[Any] = set()
    for start in range(0, len(wanted), 900):
        chunk = wanted[start:start + 900]
        found.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def _parents_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order a batch so that an event's parent, when in the batch, is inserted before it."""
    position = {e["id"]: i for i, e in enumerate(events)}
    if all(position.get(e.get("parent_event_id"), -1) < i for i, e in enumerate(events)):
        return events  # already parents first (the usual case)
    by_id = {e["id"]: e for e in events}
    placed: set[str] = set()
    ordered: list[dict[str, Any]] = []
    for event in events:
        chain = []
        current: dict[str, Any] | None = event
        while current is not None and current["id"] not in placed and current not in chain:
            chain.append(current)
            parent = current.get("parent_event_id")
            current = by_id.get(parent) if parent else None
        for item in reversed(chain):
            placed.add(item["id"])
            ordered.append(item)
    return ordered


class _WriteContext:
    """Per-attempt state of one write_batch: the result, ids learned, and whether remembered ids were trusted."""

    def __init__(self, memory: dict[str, set[str]] | None, lock: Any = None) -> None:
        self.memory = memory
        self.lock = lock or threading.Lock()
        self.used_memory = False
        self.result = BatchResult()
        self.learned: dict[str, set[str]] = {"sessions": set(), "runs": set(), "nodes": set(), "events": set()}

    def known(self, conn: Connection, kind: str, column, ids: Iterable[Any]) -> set[Any]:
        """Which of ``ids`` exist: learned in this batch, remembered, or found by one query."""
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return set()
        found = wanted & self.learned[kind]
        if self.memory is not None:
            with self.lock:
                remembered = {i for i in wanted if i in self.memory[kind]}
            if remembered:
                self.used_memory = True
                found |= remembered
        rest = wanted - found
        if rest:
            hits = _existing(conn, column, rest)
            found |= hits
            self.learned[kind].update(hits)
        return found


def _meta_with(meta: Any, key: str, value: Any) -> str:
    """Add a repair note to an event's meta, which is JSON text in the bulk path."""
    decoded = json.loads(meta) if isinstance(meta, str) else meta
    if not isinstance(decoded, dict):
        decoded = {} if decoded is None else {"value": decoded}
    return dumps({**decoded, key: value})


EVENT_INSERT_ORDER: tuple[str, ...] = tuple(c.name for c in EVENTS.columns if c.name != "seq")
_TIME_COLUMNS = frozenset({"timestamp", "started_at", "completed_at"})


def _sqlite_time(value: datetime | None) -> str | None:
    """SQLAlchemy's SQLite DATETIME storage format (UTC, always with microseconds)."""
    if value is None:
        return None
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def bulk_insert_events(conn: Connection, events: list[dict[str, Any]]) -> int:
    """Insert prepared events (payloads already JSON text) through the DB-API; skip ids already stored.

    SQLite: one ``executemany`` of ``INSERT ... ON CONFLICT (id) DO NOTHING``. PostgreSQL: ``COPY`` inside a
    savepoint (the fast path); if an id is already stored (a replay) the savepoint is rolled back and the rows go
    through ``INSERT ... ON CONFLICT (id) DO NOTHING``. Both bypass per-value SQLAlchemy type processing.
    Returns the number of rows inserted; database integrity errors surface as SQLAlchemy ``IntegrityError``.
    """
    if not events:
        return 0
    names = EVENT_INSERT_ORDER
    columns_sql = ", ".join(names)
    dbapi = conn.dialect.dbapi
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        if conn.dialect.name == "sqlite":
            times = [i for i, n in enumerate(names) if n in _TIME_COLUMNS]
            rows = []
            for event in events:
                row = [event.get(n) for n in names]
                for i in times:
                    if row[i] is not None:
                        row[i] = _sqlite_time(row[i])
                rows.append(row)
            sql = (f"INSERT INTO execution_events ({columns_sql}) VALUES ({', '.join('?' * len(names))}) "
                   "ON CONFLICT (id) DO NOTHING")
            cursor.executemany(sql, rows)
            return max(cursor.rowcount, 0)
        from psycopg import errors as pg_errors  # the only PostgreSQL driver we accept

        rows = [[event.get(n) for n in names] for event in events]
        cursor.execute("SAVEPOINT skillmine_copy")
        try:
            with cursor.copy(f"COPY execution_events ({columns_sql}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        except pg_errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT skillmine_copy")
            sql = (f"INSERT INTO execution_events ({columns_sql}) VALUES ({', '.join(['%s'] * len(names))}) "
                   "ON CONFLICT (id) DO NOTHING")
            cursor.executemany(sql, rows)
            return max(cursor.rowcount, 0)
        cursor.execute("RELEASE SAVEPOINT skillmine_copy")
        return len(rows)
    except dbapi.IntegrityError as exc:
        raise IntegrityError("bulk insert into execution_events", None, exc) from exc
    finally:
        cursor.close()


class CaptureStore:
    """Write access to a capture store; the read side lives in :mod:`capture.read.queries`.

    Ids of sessions, runs, nodes and events this store has seen committed are remembered (bounded), so a
    steady stream of batches costs one bulk ``INSERT`` per batch and no look-ups. If a remembered id has been
    deleted meanwhile, the batch fails on a foreign key, the memory is dropped and the batch is retried once
    with full checks.
    """

    KNOWN_LIMIT = 200_000

    def __init__(self, engine: Engine, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.engine = engine
        self.max_payload_bytes = max_payload_bytes
        self._known: dict[str, set[str]] = {"sessions": set(), "runs": set(), "nodes": set(), "events": set()}
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
        prepared = self._prepare(batch)
        ctx = _WriteContext(self._known, self._known_lock)
        try:
            with self.engine.begin() as conn:
                self._write_prepared(conn, prepared, ctx)
        except IntegrityError:
            if not ctx.used_memory:
                raise
            self.forget_known()
            prepared = self._prepare(batch)
            ctx = _WriteContext(None)
            with self.engine.begin() as conn:
                self._write_prepared(conn, prepared, ctx)
        self._remember(ctx.learned)
        return ctx.result

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

    def _prepare(self, batch: Batch) -> Batch:
        limit = self.max_payload_bytes
        return Batch(
            runs=[prepare_run(r) for r in batch.runs],
            nodes=[prepare_node(r) for r in batch.nodes],
            edges=[prepare_generic(r, EDGE_COLUMNS, "edge", payload_fields=(), assign_id=False)
                   for r in batch.edges],
            events=[prepare_event(r, max_payload_bytes=limit, payload_as_json=True) for r in batch.events],
            event_updates=[self._prepare_update(r) for r in batch.event_updates],
            files=[prepare_file(r) for r in batch.files],
            messages=[prepare_message(r) for r in batch.messages],
            costs=[prepare_cost(r) for r in batch.costs],
        )

    def _prepare_update(self, row: Mapping[str, Any]) -> dict[str, Any]:
        if not row.get("id"):
            raise BadRecord("event update: missing 'id'")
        changes = {k: v for k, v in row.items() if k not in {"id", "run_id", "session_id", "event_type"}}
        prepared = prepare_event({"id": row["id"], "run_id": "-", "session_id": "-", "event_type": "info",
                                  **changes}, max_payload_bytes=self.max_payload_bytes)
        return {"id": row["id"], **{k: prepared[k] for k in changes}}

    def _write_prepared(self, conn: Connection, batch: Batch, ctx: "_WriteContext") -> None:
        self._ensure_sessions(conn, batch, ctx)
        self._upsert(conn, RUNS, batch.runs)
        ctx.result.runs_written = len(batch.runs)
        ctx.learned["runs"].update(r["id"] for r in batch.runs)
        self._ensure_runs(conn, batch, ctx)
        self._upsert(conn, NODES, batch.nodes)
        ctx.result.nodes_written = len(batch.nodes)
        ctx.learned["nodes"].update(r["id"] for r in batch.nodes)
        if batch.edges:
            conn.execute(insert(EDGES), batch.edges)
        self._insert_events(conn, batch.events, ctx)
        self._apply_updates(conn, batch.event_updates, ctx.result)
        self._insert_artefacts(conn, batch, ctx)

    def _ensure_sessions(self, conn: Connection, batch: Batch, ctx: "_WriteContext") -> None:
        wanted = {r.get("session_id") for rows in (batch.runs, batch.nodes, batch.events, batch.files,
                                                   batch.messages, batch.costs) for r in rows}
        wanted.discard(None)
        missing = wanted - ctx.known(conn, "sessions", SESSIONS.c.id, wanted)
        if missing:
            self._create_sessions(conn, missing, ctx)
            ctx.result.repaired["sessions_created"] += len(missing)

    def _ensure_runs(self, conn: Connection, batch: Batch, ctx: "_WriteContext") -> None:
        sessions: dict[str, str] = {}
        for row in (*batch.nodes, *batch.events):
            sessions.setdefault(row["run_id"], row["session_id"])
        for row in (*batch.files, *batch.messages, *batch.costs):
            if row.get("session_id"):
                sessions.setdefault(row["run_id"], row["session_id"])
        for row in (*batch.files, *batch.messages, *batch.costs):
            sessions.setdefault(row["run_id"], DEFAULT_SESSION_ID)
        missing = set(sessions) - ctx.known(conn, "runs", RUNS.c.id, sessions)
        if missing:
            orphan_sessions = {sessions[r] for r in missing} - ctx.known(conn, "sessions", SESSIONS.c.id,
                                                                         {sessions[r] for r in missing})
            if orphan_sessions:
                self._create_sessions(conn, orphan_sessions, ctx)
            conn.execute(_dialect_insert(conn, RUNS).on_conflict_do_nothing(index_elements=["id"]), [
                {"id": run, "session_id": sessions[run], "status": "executing", "is_branch": False,
                 "branch_depth": 0, "meta": {"auto_created": True}} for run in sorted(missing)])
            ctx.result.repaired["runs_created"] += len(missing)
            ctx.learned["runs"].update(missing)

    @staticmethod
    def _create_sessions(conn: Connection, sessions: set[str], ctx: "_WriteContext") -> None:
        """Create sessions that another writer may be creating at the same moment (conflicts are fine)."""
        now = datetime.now(UTC)
        conn.execute(_dialect_insert(conn, SESSIONS).on_conflict_do_nothing(index_elements=["id"]),
                     [{"id": s, "name": s, "created_at": now, "status": "active"} for s in sorted(sessions)])
        ctx.learned["sessions"].update(sessions)

    def _upsert(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        for keys, group in _group_by_keys(rows).items():
            stmt = _dialect_insert(conn, table)
            updatable = {k: stmt.excluded[k] for k in keys if k != "id"}
            stmt = (stmt.on_conflict_do_update(index_elements=["id"], set_=updatable) if updatable
                    else stmt.on_conflict_do_nothing(index_elements=["id"]))
            conn.execute(stmt, group)

    def _insert_events(self, conn: Connection, events: list[dict[str, Any]], ctx: "_WriteContext") -> None:
        if not events:
            return
        ids = {e["id"] for e in events}
        parents = {e["parent_event_id"] for e in events if e.get("parent_event_id")}
        known_parents = ids | ctx.known(conn, "events", EVENTS.c.id, parents - ids)
        nodes = {e["node_id"] for e in events if e.get("node_id")}
        known_nodes = ctx.known(conn, "nodes", NODES.c.id, nodes)
        for event in events:
            parent = event.get("parent_event_id")
            if parent and parent not in known_parents:
                event["meta"] = _meta_with(event.get("meta"), "missing_parent_event_id", parent)
                event["parent_event_id"] = None
                ctx.result.repaired["parents_unlinked"] += 1
            node = event.get("node_id")
            if node and node not in known_nodes:
                event["meta"] = _meta_with(event.get("meta"), "missing_node_id", node)
                event["node_id"] = None
                ctx.result.repaired["nodes_unlinked"] += 1
        inserted = bulk_insert_events(conn, _parents_first(events))
        ctx.result.events_inserted = inserted
        ctx.result.events_skipped = len(events) - inserted
        ctx.learned["events"].update(ids)

    def _apply_updates(self, conn: Connection, updates: list[dict[str, Any]], result: BatchResult) -> None:
        for keys, group in _group_by_keys(updates).items():
            values = {k: bindparam(f"v_{k}") for k in keys if k != "id"}
            if not values:
                continue
            stmt = update(EVENTS).where(EVENTS.c.id == bindparam("v_id")).values(**values)
            conn.execute(stmt, [{f"v_{k}": v for k, v in row.items()} for row in group])
            result.events_updated += len(group)

    def _insert_artefacts(self, conn: Connection, batch: Batch, ctx: "_WriteContext") -> None:
        artefacts = (batch.files, batch.messages, batch.costs)
        if not any(artefacts):
            return
        event_ids = {r.get("event_id") for rows in artefacts for r in rows}
        known_events = ctx.known(conn, "events", EVENTS.c.id, event_ids)
        known_nodes = ctx.known(conn, "nodes", NODES.c.id, {r.get("node_id") for rows in artefacts for r in rows})
        for rows in artefacts:
            for row in rows:
                if row.get("event_id") and row["event_id"] not in known_events:
                    row["event_id"] = None
                    ctx.result.repaired["artefact_events_unlinked"] += 1
                if row.get("node_id") and row["node_id"] not in known_nodes:
                    row["node_id"] = None
                    ctx.result.repaired["artefact_nodes_unlinked"] += 1
        if batch.files:
            self._upsert(conn, FILES, batch.files)
            ctx.result.files_written = len(batch.files)
        ctx.result.messages_written = self._insert_once_per_event(conn, MESSAGES, batch.messages)
        ctx.result.costs_written = self._insert_once_per_event(conn, COSTS, batch.costs)

    @staticmethod
    def _insert_once_per_event(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
        """Messages and cost rows tied to an event are written once per event (replay-safe)."""
        if not rows:
            return 0
        seen = _existing(conn, table.c.event_id, {r.get("event_id") for r in rows})
        fresh, batch_seen = [], set()
        for row in rows:
            key = row.get("event_id")
            if key is not None and (key in seen or key in batch_seen):
                continue
            if key is not None:
                batch_seen.add(key)
            fresh.append(row)
        for group in _group_by_keys(fresh).values():
            conn.execute(insert(table), group)
        return len(fresh)

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
