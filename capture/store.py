"""The capture store's write side: idempotent batched writes of runs, nodes, events and artefacts.

:meth:`CaptureStore.write_batch` is what the recorder's background writer, the importers and the simulator all
call: one transaction, parents before children, replay-safe (an event id already stored is skipped, so a spool
replayed twice changes nothing), and tolerant of references to things that are not there (a missing session or
run is created, a missing parent event or node is unlinked and noted in ``meta``), so one bad reference never
costs a whole batch.
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from capture.db import make_engine, ping, require_current_schema
from capture.models import CostRecord, DagEdge, DagNode, ExecutionEvent, File, Message, Session, WorkflowRun
from capture.payload import DEFAULT_MAX_PAYLOAD_BYTES
from capture.records import (
    BadRecord,
    prepare_cost,
    prepare_event,
    prepare_file,
    prepare_generic,
    prepare_message,
    prepare_node,
    prepare_run,
    EDGE_COLUMNS,
)

SESSIONS: Table = Session.__table__
RUNS: Table = WorkflowRun.__table__
NODES: Table = DagNode.__table__
EDGES: Table = DagEdge.__table__
EVENTS: Table = ExecutionEvent.__table__
FILES: Table = File.__table__
MESSAGES: Table = Message.__table__
COSTS: Table = CostRecord.__table__

DEFAULT_SESSION_ID = "default"


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


def _dialect_insert(conn: Connection, table: Table):  # noqa: ANN202 - dialect-specific Insert
    return (postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table))


def _group_by_keys(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """executemany needs one key set per statement."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(sorted(row))].append(row)
    return groups


def _existing(conn: Connection, column, values: Iterable[Any]) -> set[Any]:  # noqa: ANN001
    wanted = list({v for v in values if v is not None})
    found: set[Any] = set()
    for start in range(0, len(wanted), 900):
        chunk = wanted[start:start + 900]
        found.update(conn.execute(select(column).where(column.in_(chunk))).scalars())
    return found


def _parents_first(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Order a batch so that an event's parent, when in the batch, is inserted before it."""
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


class CaptureStore:
    """Write access to a capture store; the read side lives in :mod:`capture.queries`."""

    def __init__(self, engine: Engine, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.engine = engine
        self.max_payload_bytes = max_payload_bytes

    @classmethod
    def open(cls, url: str | None = None, *, check_schema: bool = True, **kwargs: Any) -> "CaptureStore":
        """Open the store at ``url`` (default: configured), checking it is reachable and migrated."""
        engine = make_engine(url)
        ping(engine)
        if check_schema:
            require_current_schema(engine)
        return cls(engine, **kwargs)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # -- writes ------------------------------------------------------------------------------------------

    def write_batch(self, batch: Batch) -> BatchResult:
        """Write ``batch`` in one transaction (see the module docstring for the guarantees)."""
        prepared = self._prepare(batch)
        result = BatchResult()
        with self.engine.begin() as conn:
            self._write_prepared(conn, prepared, result)
        return result

    def insert_events(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Bulk-insert events (one transaction); returns how many were new."""
        return self.write_batch(Batch(events=[dict(r) for r in rows])).events_inserted

    def _prepare(self, batch: Batch) -> Batch:
        limit = self.max_payload_bytes
        return Batch(
            runs=[prepare_run(r) for r in batch.runs],
            nodes=[prepare_node(r) for r in batch.nodes],
            edges=[prepare_generic(r, EDGE_COLUMNS, "edge", payload_fields=(), assign_id=False)
                   for r in batch.edges],
            events=[prepare_event(r, max_payload_bytes=limit) for r in batch.events],
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

    def _write_prepared(self, conn: Connection, batch: Batch, result: BatchResult) -> None:
        self._ensure_sessions(conn, batch, result)
        self._upsert(conn, RUNS, batch.runs)
        result.runs_written = len(batch.runs)
        self._ensure_runs(conn, batch, result)
        self._upsert(conn, NODES, batch.nodes)
        result.nodes_written = len(batch.nodes)
        if batch.edges:
            conn.execute(insert(EDGES), batch.edges)
        self._insert_events(conn, batch.events, result)
        self._apply_updates(conn, batch.event_updates, result)
        self._insert_artefacts(conn, batch, result)

    def _ensure_sessions(self, conn: Connection, batch: Batch, result: BatchResult) -> None:
        wanted = {r.get("session_id") for rows in (batch.runs, batch.nodes, batch.events) for r in rows}
        wanted.discard(None)
        missing = wanted - _existing(conn, SESSIONS.c.id, wanted)
        if missing:
            now = datetime.now(UTC)
            conn.execute(insert(SESSIONS), [{"id": s, "name": s, "created_at": now, "status": "active"}
                                            for s in sorted(missing)])
            result.repaired["sessions_created"] += len(missing)

    def _ensure_runs(self, conn: Connection, batch: Batch, result: BatchResult) -> None:
        sessions: dict[str, str] = {}
        for row in (*batch.nodes, *batch.events):
            sessions.setdefault(row["run_id"], row["session_id"])
        for row in (*batch.files, *batch.messages, *batch.costs):
            if row.get("session_id"):
                sessions.setdefault(row["run_id"], row["session_id"])
        missing = set(sessions) - _existing(conn, RUNS.c.id, sessions)
        if missing:
            conn.execute(insert(RUNS), [
                {"id": run, "session_id": sessions[run], "status": "executing", "is_branch": False,
                 "branch_depth": 0, "meta": {"auto_created": True}} for run in sorted(missing)])
            result.repaired["runs_created"] += len(missing)

    def _upsert(self, conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
        for keys, group in _group_by_keys(rows).items():
            stmt = _dialect_insert(conn, table)
            updatable = {k: stmt.excluded[k] for k in keys if k != "id"}
            stmt = (stmt.on_conflict_do_update(index_elements=["id"], set_=updatable) if updatable
                    else stmt.on_conflict_do_nothing(index_elements=["id"]))
            conn.execute(stmt, group)

    def _insert_events(self, conn: Connection, events: list[dict[str, Any]], result: BatchResult) -> None:
        if not events:
            return
        ids = {e["id"] for e in events}
        already = _existing(conn, EVENTS.c.id, ids)
        fresh = [e for e in events if e["id"] not in already]
        result.events_skipped = len(events) - len(fresh)
        outside_parents = {e["parent_event_id"] for e in fresh if e.get("parent_event_id")} - ids
        known_parents = _existing(conn, EVENTS.c.id, outside_parents) | ids
        nodes = {e["node_id"] for e in fresh if e.get("node_id")}
        known_nodes = _existing(conn, NODES.c.id, nodes)
        for event in fresh:
            parent = event.get("parent_event_id")
            if parent and parent not in known_parents:
                event["meta"] = {**(event.get("meta") or {}), "missing_parent_event_id": parent}
                event["parent_event_id"] = None
                result.repaired["parents_unlinked"] += 1
            node = event.get("node_id")
            if node and node not in known_nodes:
                event["meta"] = {**(event.get("meta") or {}), "missing_node_id": node}
                event["node_id"] = None
                result.repaired["nodes_unlinked"] += 1
        for group in _group_by_keys(_parents_first(fresh)).values():
            conn.execute(insert(EVENTS), group)
        result.events_inserted = len(fresh)

    def _apply_updates(self, conn: Connection, updates: list[dict[str, Any]], result: BatchResult) -> None:
        for keys, group in _group_by_keys(updates).items():
            values = {k: bindparam(f"v_{k}") for k in keys if k != "id"}
            if not values:
                continue
            stmt = update(EVENTS).where(EVENTS.c.id == bindparam("v_id")).values(**values)
            conn.execute(stmt, [{f"v_{k}": v for k, v in row.items()} for row in group])
            result.events_updated += len(group)

    def _insert_artefacts(self, conn: Connection, batch: Batch, result: BatchResult) -> None:
        event_ids = {r.get("event_id") for rows in (batch.files, batch.messages, batch.costs) for r in rows}
        known_events = _existing(conn, EVENTS.c.id, event_ids)
        known_nodes = _existing(conn, NODES.c.id,
                                {r.get("node_id") for rows in (batch.files, batch.messages, batch.costs)
                                 for r in rows})
        for rows in (batch.files, batch.messages, batch.costs):
            for row in rows:
                if row.get("event_id") and row["event_id"] not in known_events:
                    row["event_id"] = None
                    result.repaired["artefact_events_unlinked"] += 1
                if row.get("node_id") and row["node_id"] not in known_nodes:
                    row["node_id"] = None
                    result.repaired["artefact_nodes_unlinked"] += 1
        if batch.files:
            self._upsert(conn, FILES, batch.files)
            result.files_written = len(batch.files)
        result.messages_written = self._insert_once_per_event(conn, MESSAGES, batch.messages)
        result.costs_written = self._insert_once_per_event(conn, COSTS, batch.costs)

    @staticmethod
    def _insert_once_per_event(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
        """Messages and cost rows tied to an event are written once per event (replay-safe)."""
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
        event = prepare_event(fields, max_payload_bytes=self.max_payload_bytes)
        self.write_batch(Batch(events=[event]))
        return event["id"]

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
