"""Read back a run's captured rows in an engine-neutral, id-free form, to compare engines and seeds."""

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine, select

from capture.store.capture_store import COSTS, EVENTS, FILES, MESSAGES, NODES, RUNS


def _time(value: Any) -> Any:
    """UTC without tzinfo (SQLite returns naive UTC, PostgreSQL aware)."""
    if isinstance(value, datetime) and value.tzinfo:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def run_rows(url: str, run_id: str) -> dict[str, list[tuple]]:
    """Events (order, type, subtype, agent, depth, parent's order, status, node, times, duration; a message's
    addressing inputs), files, messages, costs, nodes and the run, with store ids replaced by positions."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            events = conn.execute(select(EVENTS).where(EVENTS.c.run_id == run_id)
                                  .order_by(EVENTS.c.execution_order)).mappings().all()
            nodes = conn.execute(select(NODES).where(NODES.c.run_id == run_id)
                                 .order_by(NODES.c.order_index)).mappings().all()
            files = conn.execute(select(FILES).where(FILES.c.run_id == run_id)
                                 .order_by(FILES.c.file_path)).mappings().all()
            messages = conn.execute(select(MESSAGES).where(MESSAGES.c.run_id == run_id)
                                    .order_by(MESSAGES.c.id)).mappings().all()
            costs = conn.execute(select(COSTS).where(COSTS.c.run_id == run_id).order_by(COSTS.c.id)).mappings().all()
            run = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).mappings().one()
    finally:
        engine.dispose()
    order = {e["id"]: e["execution_order"] for e in events}
    node_name = {n["id"]: n["meta"]["id"] for n in nodes}
    return {
        "events": [(e["execution_order"], e["event_type"], e["event_subtype"], e["agent_name"], e["depth"],
                    order.get(e["parent_event_id"]), e["status"], node_name.get(e["node_id"]), _time(e["timestamp"]),
                    _time(e["started_at"]), _time(e["completed_at"]), e["duration_ms"],
                    e["inputs"] if e["event_type"] == "message" else None) for e in events],
        "files": [(f["file_path"], f["file_type"], f["size_bytes"], f["content_hash"], f["generating_agent"],
                   order.get(f["event_id"]), node_name.get(f["node_id"]), _time(f["created_at"]), f["meta"])
                  for f in files],
        "messages": [(m["sender"], m["recipient"], order.get(m["event_id"]), node_name.get(m["node_id"]),
                      _time(m["timestamp"]), m["meta"]) for m in messages],
        "costs": [(c["agent_name"], c["model"], c["prompt_tokens"], c["completion_tokens"], c["total_tokens"],
                   float(c["cost_usd"]), order.get(c["event_id"]), node_name.get(c["node_id"]), _time(c["timestamp"]))
                  for c in costs],
        "nodes": [(n["meta"]["id"], n["node_type"], n["agent"], n["status"], n["order_index"], n["meta"])
                  for n in nodes],
        "run": [(run["mode"], run["status"], run["task_description"], _time(run["started_at"]),
                 _time(run["completed_at"]), run["meta"])],
    }


def stored_occurrences(url: str, needles: set[str]) -> list[tuple[str, str]]:
    """(table, needle) for every needle found anywhere in any row of any table of the store."""
    from sqlalchemy import MetaData

    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    found = []
    try:
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                for row in conn.execute(select(table)):
                    blob = repr(tuple(row))
                    found += [(table.name, needle) for needle in needles if needle in blob]
    finally:
        engine.dispose()
    return found


def attempts(url: str, run_id: str) -> tuple[int, int]:
    """(engineer agent calls, failed code executions) of a run."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            calls = conn.execute(select(EVENTS.c.id).where(EVENTS.c.run_id == run_id,
                                                           EVENTS.c.event_type == "agent_call",
                                                           EVENTS.c.agent_name == "engineer")).all()
            failed = conn.execute(select(EVENTS.c.id).where(EVENTS.c.run_id == run_id,
                                                            EVENTS.c.event_type == "code_exec",
                                                            EVENTS.c.status == "failed")).all()
    finally:
        engine.dispose()
    return len(calls), len(failed)
