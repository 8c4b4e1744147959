"""File provenance: which agent, event and node generated a file, by stored path (or a suffix) or sha256."""

from typing import Any

from sqlalchemy import or_, select

from capture.read.queries import EVENTS, FILES, NODES, _in_session, engine_of, plain


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def file_provenance(source: Any, session_id: str, *, path: str | None = None, content_hash: str | None = None,
                    run_id: str | None = None) -> list[dict[str, Any]]:
    """Which agent, event and node generated a file, by stored path (or a path ending in it) or sha256.

    One dict per matching file, oldest first: ``file`` (the row), ``agent`` (the file's generating agent, else
    the event's), ``event`` (id, type, subtype, agent, execution_order, timestamp) and ``node`` (id, short id,
    type, agent) — ``None`` when unlinked.
    """
    if not path and not content_hash:
        raise ValueError("file_provenance needs a path or a content hash")
    ev = EVENTS.alias("ev")
    nd = NODES.alias("nd")
    stmt = (select(FILES, ev.c.event_type.label("ev_type"), ev.c.event_subtype.label("ev_subtype"),
                   ev.c.agent_name.label("ev_agent"), ev.c.execution_order.label("ev_order"),
                   ev.c.timestamp.label("ev_timestamp"), ev.c.node_id.label("ev_node_id"),
                   nd.c.node_type.label("nd_type"), nd.c.agent.label("nd_agent"), nd.c.meta.label("nd_meta"),
                   nd.c.id.label("nd_id"))
            .outerjoin(ev, ev.c.id == FILES.c.event_id)
            .outerjoin(nd, nd.c.id == FILES.c.node_id)
            .where(_in_session(FILES, session_id)))
    if path:
        wanted = str(path).replace("\\", "/")
        stmt = stmt.where(or_(FILES.c.file_path == wanted,
                              FILES.c.file_path.like("%/" + _escape_like(wanted.lstrip("/")), escape="\\")))
    if content_hash:
        stmt = stmt.where(FILES.c.content_hash == content_hash.lower())
    if run_id:
        stmt = stmt.where(FILES.c.run_id == run_id)
    stmt = stmt.order_by(FILES.c.created_at, FILES.c.file_path)
    out = []
    with engine_of(source).connect() as conn:
        for row in conn.execute(stmt):
            m = row._mapping
            file_row = {c.name: plain(m[c]) for c in FILES.c}
            event = None if file_row["event_id"] is None else {
                "id": file_row["event_id"], "event_type": m["ev_type"], "event_subtype": m["ev_subtype"],
                "agent_name": m["ev_agent"], "execution_order": m["ev_order"],
                "timestamp": plain(m["ev_timestamp"])}
            node = None if m["nd_id"] is None else {
                "id": m["nd_id"], "short_id": (m["nd_meta"] or {}).get("id") if isinstance(m["nd_meta"], dict)
                else None, "node_type": m["nd_type"], "agent": m["nd_agent"]}
            out.append({"file": file_row, "agent": file_row["generating_agent"] or m["ev_agent"],
                        "event": event, "node": node})
    return out
