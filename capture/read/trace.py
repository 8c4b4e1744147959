"""Trace questions over the capture store, as functions returning plain data.

- :func:`node_execution_flow` — what was the execution flow within node X? (ordered events, nested)
- :func:`agent_call_count` — how many times was agent A called in run R?
- :func:`failure_chain` — what sequence of events led to the failure in run R?
- :func:`file_generated_by` — which agent generated file F?
"""

from typing import Any

from sqlalchemy import and_, func, or_, select

from capture.read.files import file_provenance
from capture.read.queries import EVENTS, engine_of, get_event, get_node, list_events_for_node, row_dict

FAILURE_PRECEDING_LIMIT = 20


def node_execution_flow(source: Any, session_id: str, node_id: str) -> list[dict[str, Any]]:
    """The node's events in execution order, nested: each event dict gains ``children`` (same order).

    Events whose parent is outside the node (or missing) are roots of the flow.
    """
    events = list_events_for_node(source, session_id, node_id)
    by_id = {e["id"]: e for e in events}
    roots: list[dict[str, Any]] = []
    for event in events:
        event["children"] = []
    for event in events:
        parent = by_id.get(event.get("parent_event_id"))
        (parent["children"] if parent is not None else roots).append(event)
    return roots


def flatten_flow(flow: list[dict[str, Any]], level: int = 0) -> list[tuple[int, dict[str, Any]]]:
    """(level, event) pairs of a nested flow in display order."""
    out: list[tuple[int, dict[str, Any]]] = []
    for event in flow:
        out.append((level, event))
        out.extend(flatten_flow(event["children"], level + 1))
    return out


def agent_call_count(source: Any, session_id: str, run_id: str, agent_name: str) -> int:
    """How many ``agent_call`` events agent ``agent_name`` has in the run."""
    stmt = select(func.count()).where(EVENTS.c.run_id == run_id, EVENTS.c.session_id == session_id,
                                      EVENTS.c.event_type == "agent_call", EVENTS.c.agent_name == agent_name)
    with engine_of(source).connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def _is_failure():
    return or_(EVENTS.c.status == "failed", EVENTS.c.event_type == "error", EVENTS.c.event_subtype == "error")


def failure_chain(source: Any, session_id: str, run_id: str, *,
                  preceding_limit: int = FAILURE_PRECEDING_LIMIT) -> dict[str, Any] | None:
    """The first failed/error event of a run and what led to it, or ``None`` if nothing failed.

    Returns ``failed_event``; ``ancestors`` (root first, the chain of ``parent_event_id``); ``preceding`` (up to
    ``preceding_limit`` events of the same node — of the run when the event has no node — that came before it,
    oldest first); ``node`` (the failing node: the event's, else the nearest ancestor's); ``sequence`` (the
    ``type:agent`` tokens of preceding + failed, for reading at a glance).
    """
    with engine_of(source).connect() as conn:
        first = conn.execute(
            select(EVENTS).where(EVENTS.c.run_id == run_id, EVENTS.c.session_id == session_id, _is_failure())
            .order_by(EVENTS.c.execution_order, EVENTS.c.seq).limit(1)).first()
        if first is None:
            return None
        failed = row_dict(first)
        ancestors: list[dict[str, Any]] = []
        seen = {failed["id"]}
        parent_id = failed.get("parent_event_id")
        while parent_id and parent_id not in seen:
            seen.add(parent_id)
            parent = get_event(conn.engine, session_id, parent_id)
            if parent is None:
                break
            ancestors.insert(0, parent)
            parent_id = parent.get("parent_event_id")
        node_id = failed.get("node_id") or next((a["node_id"] for a in reversed(ancestors) if a.get("node_id")),
                                                None)
        scope = EVENTS.c.node_id == node_id if node_id else EVENTS.c.run_id == run_id
        before = or_(EVENTS.c.execution_order < failed["execution_order"],
                     and_(EVENTS.c.execution_order == failed["execution_order"], EVENTS.c.seq < failed["seq"]))
        rows = conn.execute(
            select(EVENTS).where(scope, EVENTS.c.run_id == run_id, EVENTS.c.session_id == session_id, before)
            .order_by(EVENTS.c.execution_order.desc(), EVENTS.c.seq.desc()).limit(preceding_limit)).all()
    preceding = [row_dict(r) for r in reversed(rows)]
    node = get_node(source, session_id, node_id) if node_id else None
    return {
        "failed_event": failed,
        "ancestors": ancestors,
        "preceding": preceding,
        "node": node,
        "sequence": [f"{e['event_type']}:{e.get('agent_name') or 'system'}" for e in (*preceding, failed)],
    }


def file_generated_by(source: Any, session_id: str, file: str) -> str | None:
    """The agent that generated file ``file`` (a stored path, a path ending, or a sha256), else ``None``."""
    is_hash = len(file) == 64 and all(c in "0123456789abcdefABCDEF" for c in file)
    matches = file_provenance(source, session_id, content_hash=file) if is_hash else []
    if not matches:
        matches = file_provenance(source, session_id, path=file)
    return next((m["agent"] for m in matches if m["agent"]), None)
