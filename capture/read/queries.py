"""The capture store's read side: events, trees, statistics, files and messages as plain JSON-friendly dicts.

Every query that the reference (``EventRepository`` and friends) isolates by session takes a ``session_id`` and
filters on it. ``source`` is a :class:`~capture.store.capture_store.CaptureStore` or an :class:`~sqlalchemy.Engine`. Times are
returned as ISO-8601 strings in UTC; events come in execution order with ties broken by ``seq`` (gaps in
``execution_order`` are normal).
"""

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, DateTime, Engine, Numeric, Select, Table, and_, func, literal, or_, select

from capture.store.models import COSTS, EDGES, EVENTS, FILES, MESSAGES, NODES, RUNS, SESSIONS

MAX_TREE_LEVELS = 64


def engine_of(source: Any) -> Engine:
    """The engine behind a store or an engine."""
    return source if isinstance(source, Engine) else source.engine


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def plain(value: Any) -> Any:
    """A JSON-friendly version of a column value."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a plain dict."""
    mapping: Mapping[str, Any] = row._mapping
    return {key: plain(value) for key, value in mapping.items()}


def _all(source: Any, stmt: Select) -> list[dict[str, Any]]:
    """Rows as dicts; only time and decimal columns need converting, so only those are touched."""
    special = [c.key for c in stmt.selected_columns if isinstance(c.type, (DateTime, Date, Numeric))]
    with engine_of(source).connect() as conn:
        rows = [dict(m) for m in conn.execute(stmt).mappings()]
    for row in rows:
        for key in special:
            value = row[key]
            if value is not None:
                row[key] = plain(value)
    return rows


def _event_order(stmt: Select) -> Select:
    return stmt.order_by(EVENTS.c.execution_order, EVENTS.c.seq)


# -- events -----------------------------------------------------------------------------------------------


def get_event(source: Any, session_id: str, event_id: str) -> dict[str, Any] | None:
    """One event by id, or ``None`` (also when it belongs to another session)."""
    rows = _all(source, select(EVENTS).where(EVENTS.c.id == event_id, EVENTS.c.session_id == session_id))
    return rows[0] if rows else None


def _filtered(stmt: Select, event_type: str | None, agent_name: str | None, limit: int | None) -> Select:
    if event_type is not None:
        stmt = stmt.where(EVENTS.c.event_type == event_type)
    if agent_name is not None:
        stmt = stmt.where(EVENTS.c.agent_name == agent_name)
    stmt = _event_order(stmt)
    return stmt.limit(limit) if limit is not None else stmt


def list_events_for_run(source: Any, session_id: str, run_id: str, *, event_type: str | None = None,
                        agent_name: str | None = None, limit: int | None = None,
                        columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Events of a run in execution order (ties by ``seq``), optionally filtered by type and agent; only
    ``columns`` when given (payload columns are the costly ones to decode)."""
    selected = [EVENTS.c[name] for name in columns] if columns else [EVENTS]
    stmt = select(*selected).where(EVENTS.c.run_id == run_id, EVENTS.c.session_id == session_id)
    return _all(source, _filtered(stmt, event_type, agent_name, limit))


def list_events_for_node(source: Any, session_id: str, node_id: str, *, event_type: str | None = None,
                         agent_name: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Events of a DAG node in execution order (ties by ``seq``), optionally filtered by type and agent."""
    stmt = select(EVENTS).where(EVENTS.c.node_id == node_id, EVENTS.c.session_id == session_id)
    return _all(source, _filtered(stmt, event_type, agent_name, limit))


def get_child_events(source: Any, session_id: str, event_id: str) -> list[dict[str, Any]]:
    """Direct children of an event, in execution order."""
    stmt = select(EVENTS).where(EVENTS.c.parent_event_id == event_id, EVENTS.c.session_id == session_id)
    return _all(source, _event_order(stmt))


def get_event_tree(source: Any, session_id: str, root_event_id: str) -> list[dict[str, Any]]:
    """The root and all its descendants via a recursive CTE, ordered by ``(level, execution_order, seq)``.

    Each step looks children up through ``idx_events_parent``.

    Each row carries ``level`` (0 for the root, relative to it) besides the stored ``depth``.
    """
    tree = (select(EVENTS.c.id.label("tree_id"), literal(0).label("level"))
            .where(EVENTS.c.id == root_event_id, EVENTS.c.session_id == session_id)
            .cte("event_tree", recursive=True))
    child = EVENTS.alias("child")
    tree = tree.union_all(
        select(child.c.id, tree.c.level + 1)
        .join(tree, child.c.parent_event_id == tree.c.tree_id)
        .where(child.c.session_id == session_id, tree.c.level < MAX_TREE_LEVELS)
    )
    stmt = (select(EVENTS, tree.c.level).join(tree, EVENTS.c.id == tree.c.tree_id)
            .order_by(tree.c.level, EVENTS.c.execution_order, EVENTS.c.seq))
    return _all(source, stmt)


def get_event_statistics(source: Any, session_id: str, run_id: str) -> dict[str, Any]:
    """Statistics of a run, as the reference's ``get_event_statistics``.

    ``agent_call_counts`` counts calls as invocations: the ``agent_call`` events per agent (an engineer
    ``agent_call`` plus an engineer ``code_exec`` is one call); ``events_by_agent`` counts every event naming the
    agent (what the reference reports under ``agent_call_counts``).
    """
    where = and_(EVENTS.c.run_id == run_id, EVENTS.c.session_id == session_id)
    with engine_of(source).connect() as conn:  # one pass: every figure is a sum over (type, agent) groups
        groups = conn.execute(
            select(EVENTS.c.event_type, EVENTS.c.agent_name, func.count(), func.sum(EVENTS.c.duration_ms),
                   func.count(EVENTS.c.duration_ms))
            .where(where).group_by(EVENTS.c.event_type, EVENTS.c.agent_name)).all()
    types: dict[str, int] = {}
    counts: dict[str, int] = {}
    invocations: dict[str, int] = {}
    total_ms = timed = 0
    for etype, agent, n, duration, n_timed in groups:
        types[etype] = types.get(etype, 0) + n
        total_ms += int(duration or 0)
        timed += int(n_timed)
        if agent is None:
            continue
        counts[agent] = counts.get(agent, 0) + n
        if etype == "agent_call":
            invocations[agent] = invocations.get(agent, 0) + n
    return {
        "total_events": sum(types.values()),
        "event_types": dict(sorted(types.items())),
        "agents_involved": sorted(counts),
        "agent_call_counts": dict(sorted(invocations.items())),
        "events_by_agent": dict(sorted(counts.items())),
        "total_duration_ms": total_ms,
        "avg_duration_ms": total_ms / timed if timed else 0.0,
        "timed_events": timed,
    }


# -- artefacts --------------------------------------------------------------------------------------------


def _in_session(table, session_id: str):
    """Artefact rows of a session (their own ``session_id`` may be NULL in imported data: use the run's)."""
    return or_(table.c.session_id == session_id,
               and_(table.c.session_id.is_(None),
                    table.c.run_id.in_(select(RUNS.c.id).where(RUNS.c.session_id == session_id))))


def _linked(source: Any, session_id: str, table: Table, column: str, value: str) -> list[dict[str, Any]]:
    """Rows of ``table`` (messages or files) linked to one event or node, oldest first."""
    order = (table.c.timestamp, table.c.id) if table is MESSAGES else (table.c.created_at, table.c.file_path)
    stmt = select(table).where(table.c[column] == value, _in_session(table, session_id)).order_by(*order)
    return _all(source, stmt)


def messages_for_event(source: Any, session_id: str, event_id: str) -> list[dict[str, Any]]:
    """Messages linked to an event, oldest first."""
    return _linked(source, session_id, MESSAGES, "event_id", event_id)


def messages_for_node(source: Any, session_id: str, node_id: str) -> list[dict[str, Any]]:
    """Messages linked to a node, oldest first."""
    return _linked(source, session_id, MESSAGES, "node_id", node_id)


def files_for_node(source: Any, session_id: str, node_id: str) -> list[dict[str, Any]]:
    """Files linked to a node, oldest first."""
    return _linked(source, session_id, FILES, "node_id", node_id)


def files_for_event(source: Any, session_id: str, event_id: str) -> list[dict[str, Any]]:
    """Files linked to an event, oldest first."""
    return _linked(source, session_id, FILES, "event_id", event_id)


def files_for_run(source: Any, session_id: str, run_id: str, *, file_type: str | None = None
                  ) -> list[dict[str, Any]]:
    """Files of a run, optionally of one type, oldest first."""
    stmt = select(FILES).where(FILES.c.run_id == run_id, _in_session(FILES, session_id))
    if file_type is not None:
        stmt = stmt.where(FILES.c.file_type == file_type)
    return _all(source, stmt.order_by(FILES.c.created_at, FILES.c.file_path))


def get_node(source: Any, session_id: str, node_id: str) -> dict[str, Any] | None:
    """A DAG node by id (or ``None``)."""
    rows = _all(source, select(NODES).where(NODES.c.id == node_id, NODES.c.session_id == session_id))
    return rows[0] if rows else None


def list_nodes_for_run(source: Any, session_id: str, run_id: str) -> list[dict[str, Any]]:
    """Nodes of a run by ``order_index``."""
    stmt = (select(NODES).where(NODES.c.run_id == run_id, NODES.c.session_id == session_id)
            .order_by(NODES.c.order_index, NODES.c.id))
    return _all(source, stmt)


# -- overview ---------------------------------------------------------------------------------------------

OVERVIEW_TABLES = (SESSIONS, RUNS, NODES, EDGES, EVENTS, FILES, MESSAGES, COSTS)


def store_overview(engine: Any) -> dict[str, Any]:
    """Row counts per table, runs per mode and the highest event ``seq`` (``skillmine db status``)."""
    with engine_of(engine).connect() as conn:
        tables = {table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
                  for table in OVERVIEW_TABLES}
        modes = conn.execute(select(RUNS.c.mode, func.count()).group_by(RUNS.c.mode)).all()
        max_seq = conn.execute(select(func.coalesce(func.max(EVENTS.c.seq), 0))).scalar_one()
    return {
        "tables": tables,
        "runs_by_mode": {str(mode) if mode is not None else "(none)": int(n)
                         for mode, n in sorted(modes, key=lambda r: str(r[0]))},
        "max_seq": int(max_seq),
    }
