"""A run's event tree as terminal text (``skillmine trace show``): nodes, nested events, durations, files."""

from typing import Any

from capture.read.trace import flatten_flow, node_execution_flow
from capture.read.trace_api.reader import TraceReader

FAILED_MARK = "FAILED"


def duration_text(duration_ms: int | None) -> str:
    """A short human duration ('' when unknown)."""
    if duration_ms is None:
        return ""
    if duration_ms < 1000:
        return f"{duration_ms} ms"
    if duration_ms < 60_000:
        return f"{duration_ms / 1000:.2f} s"
    return f"{duration_ms / 60_000:.1f} min"


def run_tree(reader: TraceReader, run_id: str, session_id: str | None = None) -> dict[str, Any]:
    """The run, and per node its nested flow (events with ``children``); events with no node under ``None``."""
    detail = reader.run(run_id, session_id)
    sid = detail["run"]["session_id"]
    nodes = [{"node": node, "flow": node_execution_flow(reader.engine, sid, node["id"])} for node in detail["nodes"]]
    loose = [e for e in reader.run_events(run_id, sid)["events"] if e["node_id"] is None]
    if loose:
        nodes.append({"node": None, "flow": [{**e, "children": []} for e in loose]})
    return {**detail, "tree": nodes}


def _event_line(event: dict[str, Any], indent: int, files: list[dict[str, Any]]) -> str:
    status = event["status"]
    failed = status == "failed" or event["event_type"] == "error"
    parts = [" " * indent + event["event_type"] + (f"/{event['event_subtype']}" if event["event_subtype"] else ""),
             event["agent_name"] or "-", duration_text(event["duration_ms"]),
             FAILED_MARK if failed else status]
    line = "  ".join(p for p in parts if p)
    if failed and event["error_message"]:
        line += f": {event['error_message'].splitlines()[0][:120]}"
    for f in files:
        line += f"  -> {f['file_path']} ({f['file_type']})"
    return line


def render_tree(tree: dict[str, Any]) -> str:
    """The text ``skillmine trace show`` prints."""
    run, stats = tree["run"], tree["statistics"]
    files_by_event: dict[str, list[dict[str, Any]]] = {}
    for f in tree["files"]:
        files_by_event.setdefault(f["event_id"], []).append(f)
    lines = [(f"run {run['id']}  session {run['session_id']}  mode {run['mode'] or '-'}  status {run['status']}  "
              f"events {stats['total_events']}  agents {', '.join(stats['agents_involved']) or '-'}")]
    for group in tree["tree"]:
        node = group["node"]
        if node is None:
            lines.append("(events without a step)")
            pairs = [(e["depth"], e) for e in group["flow"]]
        else:
            label = (node["meta"] or {}).get("id") if isinstance(node["meta"], dict) else None
            lines.append(f"node {label or node['id']}  {node['node_type']}  {node['agent'] or '-'}  {node['status']}")
            pairs = flatten_flow(group["flow"])
        lines.extend(_event_line(e, 2 + 2 * level, files_by_event.get(e["id"], [])) for level, e in pairs)
    unlinked = files_by_event.get(None, [])
    if unlinked:
        lines.append("files without an event: " + ", ".join(f["file_path"] for f in unlinked))
    return "\n".join(lines)
