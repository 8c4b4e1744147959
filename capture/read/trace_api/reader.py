"""Read-only access to the capture store shaped as the trace API's JSON (``shared/reference/cmbagent.md`` §9).

Every id lookup finds the id's session first (or checks it against the requested ``session_id``) and then calls
the shared read-side functions with it, so the API serves all sessions of a store by default and one session when
asked. Missing ids raise :class:`NotFound`, bad parameters :class:`BadParameter`; both name the input.
"""

from typing import Any

from sqlalchemy import Engine, Table, case, event, func, select

from capture.read import queries, summary, trace
from capture.read.files import file_provenance
from capture.read.queries import EVENTS, NODES, RUNS, row_dict
from capture.store.db import make_engine, ping, require_current_schema
from capture.store.models import CostRecord, Session

COSTS: Table = CostRecord.__table__
SESSIONS: Table = Session.__table__
DEFAULT_RUN_LIMIT = 50
MAX_RUN_LIMIT = 1000
# What a waterfall row or a tree entry needs: the reference's tree entry (id, event_type, agent_name,
# execution_order, depth, parent_event_id) plus timing and status. Payloads come from /api/events/{id}.
LIGHT_FIELDS = ("id", "seq", "parent_event_id", "node_id", "event_type", "event_subtype", "agent_name", "status",
                "execution_order", "depth", "timestamp", "started_at", "completed_at", "duration_ms",
                "error_message")


def light(event: dict[str, Any], *extra: str) -> dict[str, Any]:
    """The event without its payloads (inputs, outputs, meta)."""
    return {k: event[k] for k in (*LIGHT_FIELDS, *extra)}


class NotFound(LookupError):
    """A requested run, node, event or file does not exist (in the requested session)."""

    def __init__(self, kind: str, ident: str, session_id: str | None = None) -> None:
        where = f" in session {session_id!r}" if session_id else ""
        super().__init__(f"{kind} {ident!r} not found{where}")
        self.kind, self.ident = kind, ident


class BadParameter(ValueError):
    """A query parameter has a value the API cannot use."""

    def __init__(self, name: str, value: Any, expected: str) -> None:
        super().__init__(f"parameter {name!r}={value!r}: expected {expected}")
        self.name = name


def _read_only(engine: Engine) -> Engine:
    """Make every pooled connection refuse writes, so the API can never hold a write lock."""
    if engine.dialect.name == "sqlite":
        def on_connect(dbapi_connection, _record) -> None:
            dbapi_connection.execute("PRAGMA query_only=ON")
    else:
        def on_connect(dbapi_connection, _record) -> None:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            dbapi_connection.commit()
    event.listen(engine, "connect", on_connect)
    return engine


def open_read_only(url: str | None = None) -> Engine:
    """A read-only engine on the store at ``url`` (default: configured), checked reachable and migrated."""
    engine = _read_only(make_engine(url))
    ping(engine)
    require_current_schema(engine)
    return engine


def parse_int(name: str, raw: str | None, default: int | None, *, minimum: int = 0,
              maximum: int | None = None) -> int | None:
    """An integer query parameter within bounds, else :class:`BadParameter`."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, raw, "an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"an integer >= {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise BadParameter(name, raw, bounds)
    return value


class TraceReader:
    """The trace API's questions, answered from a (read-only) engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- sessions ---------------------------------------------------------------------------------------

    def _session_of(self, table: Table, kind: str, ident: str, session_id: str | None) -> str:
        stmt = select(table.c.session_id).where(table.c.id == ident)
        with self.engine.connect() as conn:
            found = conn.execute(stmt).first()
        if found is None or (session_id is not None and found[0] != session_id):
            raise NotFound(kind, ident, session_id)
        return found[0]

    def run_session(self, run_id: str, session_id: str | None = None) -> str:
        """The session of a run (:class:`NotFound` if it is missing or in another session)."""
        return self._session_of(RUNS, "run", run_id, session_id)

    def sessions(self) -> list[str]:
        """Ids of every session the store has."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(SESSIONS.c.id).order_by(SESSIONS.c.id)).scalars())

    # -- runs -------------------------------------------------------------------------------------------

    def runs(self, session_id: str | None = None, limit: int = DEFAULT_RUN_LIMIT) -> dict[str, Any]:
        """Recent runs (newest first) with status, mode, event/failure counts, tokens, cost and highest seq."""
        counts = (select(EVENTS.c.run_id, func.count().label("total_events"),
                         func.sum(case((EVENTS.c.status == "failed", 1), else_=0)).label("failed_events"),
                         func.max(EVENTS.c.seq).label("max_seq"))
                  .group_by(EVENTS.c.run_id).subquery())
        costs = (select(COSTS.c.run_id, func.sum(COSTS.c.total_tokens).label("total_tokens"),
                        func.sum(COSTS.c.cost_usd).label("total_cost_usd"))
                 .group_by(COSTS.c.run_id).subquery())
        stmt = (select(RUNS.c.id, RUNS.c.session_id, RUNS.c.mode, RUNS.c.agent, RUNS.c.model, RUNS.c.status,
                       RUNS.c.started_at, RUNS.c.completed_at, RUNS.c.task_description, RUNS.c.parent_run_id,
                       func.coalesce(counts.c.total_events, 0).label("total_events"),
                       func.coalesce(counts.c.failed_events, 0).label("failed_events"),
                       func.coalesce(counts.c.max_seq, 0).label("max_seq"),
                       func.coalesce(costs.c.total_tokens, 0).label("total_tokens"),
                       func.coalesce(costs.c.total_cost_usd, 0).label("total_cost_usd"))
                .outerjoin(counts, counts.c.run_id == RUNS.c.id)
                .outerjoin(costs, costs.c.run_id == RUNS.c.id)
                .order_by(RUNS.c.started_at.desc().nulls_last(), RUNS.c.id)
                .limit(limit))
        if session_id is not None:
            stmt = stmt.where(RUNS.c.session_id == session_id)
        with self.engine.connect() as conn:
            rows = [row_dict(r) for r in conn.execute(stmt)]
        for row in rows:
            row["total_cost_usd"] = round(float(row["total_cost_usd"]), 6)
            row["total_events"], row["failed_events"] = int(row["total_events"]), int(row["failed_events"])
            row["max_seq"], row["total_tokens"] = int(row["max_seq"]), int(row["total_tokens"])
        return {"session_id": session_id, "total_runs": len(rows), "runs": rows}

    def run(self, run_id: str, session_id: str | None = None) -> dict[str, Any]:
        """A run with its nodes, edges, files, statistics and highest event ``seq`` (where a live stream starts)."""
        sid = self._session_of(RUNS, "run", run_id, session_id)
        with self.engine.connect() as conn:
            run = row_dict(conn.execute(select(RUNS).where(RUNS.c.id == run_id)).one())
            max_seq = conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))
                                   .where(EVENTS.c.run_id == run_id)).scalar_one()
        return {"run": run, "nodes": queries.list_nodes_for_run(self.engine, sid, run_id),
                "files": queries.files_for_run(self.engine, sid, run_id),
                "statistics": queries.get_event_statistics(self.engine, sid, run_id), "max_seq": int(max_seq)}

    def run_events(self, run_id: str, session_id: str | None = None, *, event_type: str | None = None,
                   agent_name: str | None = None, limit: int | None = None, payloads: bool = True
                   ) -> dict[str, Any]:
        """A run's events in execution order (ties by ``seq``), optionally by type and agent; without
        ``payloads`` each event is :func:`light` (what the timeline draws)."""
        sid = self._session_of(RUNS, "run", run_id, session_id)
        events = queries.list_events_for_run(self.engine, sid, run_id, event_type=event_type,
                                             agent_name=agent_name, limit=limit)
        return {"run_id": run_id, "total_events": len(events),
                "events": events if payloads else [light(e) for e in events]}

    def failure(self, run_id: str, session_id: str | None = None) -> dict[str, Any]:
        """The events that led to the run's first failure (``failure`` is ``None`` if nothing failed)."""
        sid = self._session_of(RUNS, "run", run_id, session_id)
        return {"run_id": run_id, "failure": trace.failure_chain(self.engine, sid, run_id)}

    # -- nodes ------------------------------------------------------------------------------------------

    def node_events(self, node_id: str, session_id: str | None = None, *,
                    event_type: str | None = None) -> dict[str, Any]:
        """``{node_id, total_events, events[]}`` as the reference's ``GET /api/nodes/{id}/events``."""
        sid = self._session_of(NODES, "node", node_id, session_id)
        events = queries.list_events_for_node(self.engine, sid, node_id, event_type=event_type)
        return {"node_id": node_id, "total_events": len(events), "events": events}

    def node_summary(self, node_id: str, session_id: str | None = None) -> dict[str, Any]:
        """The node's execution summary (computed now from its events; nothing is written)."""
        sid = self._session_of(NODES, "node", node_id, session_id)
        return summary.compute_node_summary(self.engine, sid, node_id)

    def node_files(self, node_id: str, session_id: str | None = None) -> dict[str, Any]:
        """``{node_id, total_files, files[]}`` as the reference's ``GET /api/nodes/{id}/files``."""
        sid = self._session_of(NODES, "node", node_id, session_id)
        files = queries.files_for_node(self.engine, sid, node_id)
        return {"node_id": node_id, "total_files": len(files), "files": files}

    # -- events and files -------------------------------------------------------------------------------

    def event(self, event_id: str, session_id: str | None = None) -> dict[str, Any]:
        """One event with its files and messages (the timeline's details panel)."""
        sid = self._session_of(EVENTS, "event", event_id, session_id)
        return {"event": queries.get_event(self.engine, sid, event_id),
                "files": queries.files_for_event(self.engine, sid, event_id),
                "messages": queries.messages_for_event(self.engine, sid, event_id)}

    def event_tree(self, event_id: str, session_id: str | None = None) -> dict[str, Any]:
        """``{root_event_id, total_events, tree[]}``: the event and its descendants (recursive CTE), each entry
        :func:`light` plus ``level`` (0 for the root)."""
        sid = self._session_of(EVENTS, "event", event_id, session_id)
        tree = [light(e, "level") for e in queries.get_event_tree(self.engine, sid, event_id)]
        return {"root_event_id": event_id, "total_events": len(tree), "tree": tree}

    def provenance(self, path: str | None, session_id: str | None = None, *,
                   content_hash: str | None = None) -> dict[str, Any]:
        """Which agent, event and node generated the files matching ``path`` (or ``content_hash``)."""
        if not path and not content_hash:
            raise BadParameter("path", path, "a file path (or 'sha256')")
        sessions = [session_id] if session_id is not None else self.sessions()
        matches = [m for sid in sessions
                   for m in file_provenance(self.engine, sid, path=path, content_hash=content_hash)]
        if not matches:
            raise NotFound("file", path or content_hash, session_id)
        return {"path": path, "sha256": content_hash, "total_files": len(matches), "files": matches}
