"""Read-only access to the capture store shaped as the trace API's JSON (``shared/reference/cmbagent.md`` §9).

Every id lookup finds the id's session first (or checks it against the requested ``session_id``) and then calls
the shared read-side functions with it, so the API serves all sessions of a store by default and one session when
asked. Missing ids raise :class:`NotFound`, bad parameters :class:`BadParameter`; both name the input.
"""

from typing import Any

from sqlalchemy import Engine, Table, case, event, func, select

from capture.read import queries, questions, summary
from capture.read.queries import EVENTS, NODES, RUNS, row_dict
from capture.read.questions import NotFound
from capture.store.db import make_engine, ping
from capture.store.migrate import require_current_schema
from capture.store.models import COSTS, SESSIONS

DEFAULT_RUN_LIMIT = 50
MAX_RUN_LIMIT = 1000
# What a waterfall row or a tree entry needs: the reference's tree entry (id, event_type, agent_name,
# execution_order, depth, parent_event_id) plus timing and status. Payloads come from /api/events/{id}.
LIGHT_FIELDS = ("id", "seq", "parent_event_id", "node_id", "event_type", "event_subtype", "agent_name", "status",
                "execution_order", "depth", "timestamp", "started_at", "completed_at", "duration_ms",
                "error_message")


def light(event: dict[str, Any], *extra: str) -> dict[str, Any]:
    """The event without its payloads (inputs, outputs, meta), with the tokens and cost its meta carries."""
    return {**{k: event[k] for k in (*LIGHT_FIELDS, *extra)}, **questions.event_usage(event)}


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

    def resolve_run(self, run_id: str, session_id: str | None = None) -> dict[str, Any]:
        """The run by id or unique id prefix (:class:`NotFound` if it is missing or in another session)."""
        return questions.resolve_run(self.engine, run_id, session_id)

    def sessions(self) -> list[str]:
        """Ids of every session the store has."""
        with self.engine.connect() as conn:
            return list(conn.execute(select(SESSIONS.c.id).order_by(SESSIONS.c.id)).scalars())

    # -- runs -------------------------------------------------------------------------------------------

    def runs(self, session_id: str | None = None, limit: int = DEFAULT_RUN_LIMIT) -> dict[str, Any]:
        """Recent runs (newest first) with status, mode, event/failure counts, tokens, cost and highest seq.

        The runs are chosen first and only their events and cost records are aggregated (through the run
        indexes), so the answer costs the same however many events the store holds.
        """
        stmt = (select(RUNS.c.id, RUNS.c.session_id, RUNS.c.mode, RUNS.c.agent, RUNS.c.model, RUNS.c.status,
                       RUNS.c.started_at, RUNS.c.completed_at, RUNS.c.task_description, RUNS.c.parent_run_id)
                .order_by(RUNS.c.started_at.desc().nulls_last(), RUNS.c.id).limit(limit))
        if session_id is not None:
            stmt = stmt.where(RUNS.c.session_id == session_id)
        with self.engine.connect() as conn:
            rows = [row_dict(r) for r in conn.execute(stmt)]
            ids = [r["id"] for r in rows]
            counts = {r[0]: r[1:] for r in conn.execute(
                select(EVENTS.c.run_id, func.count(), func.sum(case((EVENTS.c.status == "failed", 1), else_=0)),
                       func.max(EVENTS.c.seq)).where(EVENTS.c.run_id.in_(ids)).group_by(EVENTS.c.run_id))}
            costs = {r[0]: r[1:] for r in conn.execute(
                select(COSTS.c.run_id, func.sum(COSTS.c.total_tokens), func.sum(COSTS.c.cost_usd))
                .where(COSTS.c.run_id.in_(ids)).group_by(COSTS.c.run_id))}
        for row in rows:
            total, failed, max_seq = counts.get(row["id"], (0, 0, 0))
            tokens, cost = costs.get(row["id"], (0, 0))
            row.update(total_events=int(total), failed_events=int(failed or 0), max_seq=int(max_seq or 0),
                       total_tokens=int(tokens or 0), total_cost_usd=round(float(cost or 0), 6))
        return {"session_id": session_id, "total_runs": len(rows), "runs": rows}

    def run(self, run_id: str, session_id: str | None = None) -> dict[str, Any]:
        """A run with its nodes, files, statistics, tokens and cost (total and per node) and highest event ``seq``
        (where a live stream starts)."""
        run = self.resolve_run(run_id, session_id)
        rid, sid = run["id"], run["session_id"]
        with self.engine.connect() as conn:
            max_seq = conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))
                                   .where(EVENTS.c.run_id == rid)).scalar_one()
        usage = questions.run_usage(self.engine, sid, rid)
        return {"run": run, "nodes": queries.list_nodes_for_run(self.engine, sid, rid),
                "files": queries.files_for_run(self.engine, sid, rid),
                "statistics": queries.get_event_statistics(self.engine, sid, rid), "usage": usage,
                "max_seq": int(max_seq)}

    def run_events(self, run_id: str, session_id: str | None = None, *, event_type: str | None = None,
                   agent_name: str | None = None, limit: int | None = None, payloads: bool = True
                   ) -> dict[str, Any]:
        """A run's events in execution order (ties by ``seq``), optionally by type and agent, each with the
        ``tokens`` and ``cost_usd`` it carries; without ``payloads`` each event is :func:`light` (what the
        timeline draws)."""
        run = self.resolve_run(run_id, session_id)
        events = queries.list_events_for_run(self.engine, run["session_id"], run["id"], event_type=event_type,
                                             agent_name=agent_name, limit=limit,
                                             columns=None if payloads else (*LIGHT_FIELDS, "meta"))
        events = [light(e) if not payloads else {**e, **questions.event_usage(e)} for e in events]
        return {"run_id": run["id"], "total_events": len(events), "events": events}

    def failure(self, run_id: str, session_id: str | None = None) -> dict[str, Any]:
        """What led to the run's failure (:func:`capture.read.questions.run_failure`; ``failure`` is ``None``
        only for a run that did not fail)."""
        return questions.run_failure(self.engine, questions.resolve_run(self.engine, run_id, session_id))

    def agents(self, run_id: str, session_id: str | None = None) -> dict[str, Any]:
        """Calls per agent, counted as invocations."""
        return questions.agent_invocations(self.engine, questions.resolve_run(self.engine, run_id, session_id))

    def step(self, run_id: str, step: str, session_id: str | None = None) -> dict[str, Any]:
        """The execution flow within one step, by its name, number or node id."""
        return questions.step_flow(self.engine, questions.resolve_run(self.engine, run_id, session_id), step)

    def search(self, text: str | None = None, session_id: str | None = None, **filters: Any) -> dict[str, Any]:
        """Runs by task text, mode, outcome, agent and file type."""
        return questions.search_runs(self.engine, text, session_id=session_id, **filters)

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

    def provenance(self, path: str | None, session_id: str | None = None) -> dict[str, Any]:
        """Which agent, event, node and run wrote the files matching ``path`` (a path, its ending, or a sha256)."""
        if not path:
            raise BadParameter("path", path, "a file path or a sha256")
        return questions.file_answer(self.engine, [session_id] if session_id else self.sessions(), path)
