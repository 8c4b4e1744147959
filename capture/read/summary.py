"""Node execution summaries (``dag_nodes.meta["execution_summary"]``), with the reference's keys exactly.

Counts, durations and times come from SQL aggregates; only the ``meta`` of events that carry one is read into
Python (tokens and cost live inside JSON whose shape varies by source). Token sources, in order: ``meta.tokens``
(int), ``meta.total_tokens``, ``meta.prompt_tokens + meta.completion_tokens``; cost from ``meta.cost_usd``. When a
node has ``llm_call`` events with tokens only those count (their parent ``agent_call`` often repeats the sum);
when no event carries tokens the node's ``cost_records`` are used.
"""

import math
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, case, func, or_, select, update

from capture.read.queries import EVENTS, FILES, MESSAGES, NODES, as_utc, engine_of
from capture.store.models import COSTS

CALL_TYPES = ("agent_call", "llm_call", "tool_call", "code_exec")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def tokens_of(meta: Any) -> int:
    """Tokens recorded in an event's meta (0 when none)."""
    if not isinstance(meta, dict):
        return 0
    for key in ("tokens", "total_tokens"):
        value = _number(meta.get(key))
        if value is not None:
            return int(value)
    prompt, completion = _number(meta.get("prompt_tokens")), _number(meta.get("completion_tokens"))
    if prompt is not None or completion is not None:
        return int((prompt or 0) + (completion or 0))
    return 0


def cost_of(meta: Any) -> float:
    """USD cost recorded in an event's meta (0.0 when none)."""
    value = _number(meta.get("cost_usd")) if isinstance(meta, dict) else None
    return value or 0.0


class _NodeRows(NamedTuple):
    """What one node's summary is computed from, read in one connection."""

    groups: list[Any]  # (event_type, agent, status, errors, count, summed duration_ms)
    started: Any
    completed: Any
    files: list[Any]  # (file_type, count)
    messages: int
    metas: list[Any]  # (event_type, agent, meta) of events with a meta
    calls: list[Any]  # (event_type, agent, status, subtype) of call-like events, in order
    cost_rows: list[Any] | None  # (agent, tokens, cost) from cost_records when no event carries tokens or cost


class _EventCounts(NamedTuple):
    total: int
    completed: int
    failed: int
    errors: int
    event_types: dict[str, int]
    agents: set[str]
    agent_calls: dict[str, int]
    agent_time: dict[str, float]


def _read_node(source: Any, session_id: str, node_id: str) -> _NodeRows:
    """SQL aggregates of the node's events, files, messages and (when needed) cost records."""
    where = and_(EVENTS.c.node_id == node_id, EVENTS.c.session_id == session_id)
    is_error = or_(EVENTS.c.event_type == "error", EVENTS.c.event_subtype == "error")
    with engine_of(source).connect() as conn:
        groups = conn.execute(
            select(EVENTS.c.event_type, EVENTS.c.agent_name, EVENTS.c.status,
                   func.sum(case((is_error, 1), else_=0)), func.count(), func.sum(EVENTS.c.duration_ms))
            .where(where).group_by(EVENTS.c.event_type, EVENTS.c.agent_name, EVENTS.c.status)).all()
        started, completed = conn.execute(
            select(func.min(func.coalesce(EVENTS.c.started_at, EVENTS.c.timestamp)),
                   func.max(func.coalesce(EVENTS.c.completed_at, EVENTS.c.timestamp))).where(where)).one()
        files = conn.execute(select(FILES.c.file_type, func.count()).where(FILES.c.node_id == node_id)
                             .group_by(FILES.c.file_type)).all()
        messages = conn.execute(select(func.count()).select_from(MESSAGES)
                                .where(MESSAGES.c.node_id == node_id)).scalar_one()
        metas = conn.execute(select(EVENTS.c.event_type, EVENTS.c.agent_name, EVENTS.c.meta)
                             .where(where, EVENTS.c.meta.is_not(None))).all()
        calls = conn.execute(
            select(EVENTS.c.event_type, EVENTS.c.agent_name, EVENTS.c.status, EVENTS.c.event_subtype)
            .where(where, EVENTS.c.event_type.in_(CALL_TYPES))
            .order_by(EVENTS.c.execution_order, EVENTS.c.seq)).all()
        cost_rows = None
        if not any(tokens_of(m) or cost_of(m) for _, _, m in metas):
            cost_rows = conn.execute(
                select(COSTS.c.agent_name, func.sum(COSTS.c.total_tokens), func.sum(COSTS.c.cost_usd))
                .where(COSTS.c.node_id == node_id).group_by(COSTS.c.agent_name)).all()
    return _NodeRows(groups, started, completed, files, int(messages), metas, calls, cost_rows)


def _count_events(groups: list[Any]) -> _EventCounts:
    """Totals by status, event type and agent, and each agent's ``agent_call`` count and time."""
    event_types: dict[str, int] = {}
    agents: set[str] = set()
    agent_calls: dict[str, int] = {}
    agent_time: dict[str, float] = {}
    total = completed_n = failed_n = error_n = 0
    for etype, agent, status, errors, n, duration in groups:
        total += n
        event_types[etype] = event_types.get(etype, 0) + n
        error_n += int(errors or 0)
        if agent is not None:
            agents.add(agent)
        if etype == "agent_call" and agent is not None:
            agent_calls[agent] = agent_calls.get(agent, 0) + n
            agent_time[agent] = agent_time.get(agent, 0.0) + (duration or 0) / 1000.0
        if status == "completed":
            completed_n += n
        elif status == "failed":
            failed_n += n
    return _EventCounts(total, completed_n, failed_n, error_n, event_types, agents, agent_calls, agent_time)


def _cost_by_agent(metas: list[Any], cost_rows: list[Any] | None) -> dict[str, dict[str, Any]]:
    """Tokens and cost per agent: from event metas (only ``llm_call`` ones when those carry tokens), else from
    the node's cost records."""
    by_agent: dict[str, dict[str, Any]] = {}
    if cost_rows is not None:
        for agent, tokens, cost in cost_rows:
            slot = by_agent.setdefault(agent or "unknown", {"tokens": 0, "cost": 0.0})
            slot["tokens"] += int(tokens or 0)
            slot["cost"] += float(cost or 0)
    else:
        llm_has_tokens = any(t == "llm_call" and tokens_of(m) for t, _, m in metas)
        for etype, agent, meta in metas:
            if llm_has_tokens and etype != "llm_call" and tokens_of(meta):
                continue
            tokens, cost = tokens_of(meta), cost_of(meta)
            if tokens or cost:
                slot = by_agent.setdefault(agent or "unknown", {"tokens": 0, "cost": 0.0})
                slot["tokens"] += tokens
                slot["cost"] += cost
    for slot in by_agent.values():
        slot["cost"] = round(slot["cost"], 6)
    return by_agent


def compute_node_summary(source: Any, session_id: str, node_id: str) -> dict[str, Any]:
    """The execution summary of one node (not stored; see :func:`summarise_node`)."""
    rows = _read_node(source, session_id, node_id)
    counts = _count_events(rows.groups)
    by_agent = _cost_by_agent(rows.metas, rows.cost_rows)
    started_at, completed_at = as_utc(_dt(rows.started)), as_utc(_dt(rows.completed))
    duration = (completed_at - started_at).total_seconds() if started_at and completed_at else None
    return {
        "total_events": counts.total,
        "event_types": dict(sorted(counts.event_types.items())),
        "agents_involved": sorted(counts.agents),
        "agent_call_counts": dict(sorted(counts.agent_calls.items())),
        "files_generated": sum(n for _, n in rows.files),
        "files_by_type": dict(sorted((t, n) for t, n in rows.files)),
        "messages_count": rows.messages,
        "timing": {
            "started_at": started_at.isoformat() if started_at else None,
            "completed_at": completed_at.isoformat() if completed_at else None,
            "duration_seconds": duration,
            "agent_time_breakdown": {a: round(s, 3) for a, s in sorted(counts.agent_time.items())},
        },
        "cost_summary": {
            "total_tokens": sum(s["tokens"] for s in by_agent.values()),
            "total_cost_usd": round(sum(s["cost"] for s in by_agent.values()), 6),
            "by_agent": dict(sorted(by_agent.items())),
        },
        "success_metrics": {
            "completion_rate": round(counts.completed / counts.total, 4) if counts.total else 0.0,
            "error_count": counts.errors,
            "failed_count": counts.failed,
            "completed_count": counts.completed,
            "retry_count": retry_count(rows.calls),
        },
    }


def retry_count(calls: list[tuple[str, str | None, str, str | None]]) -> int:
    """Call-like events (type, agent, status, subtype in order) that repeat a call of the same kind that failed."""
    pending_failure: set[tuple[str, str | None]] = set()
    retries = 0
    for etype, agent, status, subtype in calls:
        key = (etype, agent)
        if key in pending_failure:
            retries += 1
            pending_failure.discard(key)
        if status == "failed" or subtype == "error":
            pending_failure.add(key)
    return retries


def _dt(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))  # SQLite min()/max() over a coalesce may come back as text


def summarise_node(store: Any, session_id: str, node_id: str) -> dict[str, Any]:
    """Compute a node's summary and merge it into ``dag_nodes.meta["execution_summary"]`` (other keys kept)."""
    summary = compute_node_summary(store, session_id, node_id)
    engine = engine_of(store)
    with engine.begin() as conn:
        stmt = select(NODES.c.meta).where(NODES.c.id == node_id, NODES.c.session_id == session_id)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        found = conn.execute(stmt).first()
        if found is None:
            raise KeyError(f"node {node_id!r} not found in session {session_id!r}")
        meta = dict(found[0]) if isinstance(found[0], dict) else ({} if found[0] is None else {"value": found[0]})
        meta["execution_summary"] = summary
        conn.execute(update(NODES).where(NODES.c.id == node_id).values(meta=meta))
    return summary


def summarise_run_nodes(store: Any, session_id: str, run_id: str) -> dict[str, dict[str, Any]]:
    """Summarise every node of a run; returns ``{node_id: summary}``."""
    with engine_of(store).connect() as conn:
        node_ids = conn.execute(select(NODES.c.id).where(NODES.c.run_id == run_id,
                                                         NODES.c.session_id == session_id)
                                .order_by(NODES.c.order_index, NODES.c.id)).scalars().all()
    return {node_id: summarise_node(store, session_id, node_id) for node_id in node_ids}
