"""The trace questions' answers as terminal text (tables through :mod:`skillmine.console`)."""

from typing import Any

from capture.read.trace import flatten_flow
from capture.read.trace_api.tree_text import duration_text
from skillmine.console import console, table


def _event_text(e: dict[str, Any]) -> str:
    kind = e["event_type"] + (f"/{e['event_subtype']}" if e.get("event_subtype") else "")
    parts = [kind, e.get("agent_name") or "-", e.get("status") or "", duration_text(e.get("duration_ms"))]
    if e.get("tokens"):
        parts.append(f"{e['tokens']:,} tokens ${e['cost_usd']:.4f}")
    if e.get("error_message"):
        parts.append("error: " + e["error_message"].splitlines()[0][:120])
    return "  ".join(p for p in parts if p)


def print_file(answer: dict[str, Any]) -> None:
    """``skillmine trace file``: one block per matching file."""
    out = console()
    for f in answer["files"]:
        node, event, run = f["node"], f["event"], f["run"]
        out.print(f"{f['path']}  ({f['file_type'] or 'unknown type'}, {f['size_bytes'] or '?'} bytes)", markup=False)
        out.print(f"  agent    {f['agent'] or 'unknown'}"
                  + (f"  (from the {f['agent_source']})" if f["agent_source"] else ""), markup=False)
        out.print(f"  event    {event['id']}  {event['event_type']}  order {event['execution_order']}"
                  if event else "  event    none recorded", markup=False)
        out.print(f"  step     {node['name']}  {node['agent'] or '-'}  ({node['id']})" if node
                  else "  step     none recorded", markup=False)
        out.print(f"  run      {run['id']}  {run.get('mode') or '-'}  {run.get('status') or '-'}", markup=False)
        out.print(f"  sha256   {f['content_hash'] or 'not recorded'}", markup=False)


def print_step(answer: dict[str, Any]) -> None:
    """``skillmine trace node``: the step, its nested events, tools, files, tokens and cost."""
    out = console()
    node = answer["node"]
    out.print(f"step {answer['step']}  {node['agent'] or '-'}  {node['status']}  run {answer['run_id']}  "
              f"events {answer['total_events']}  tokens {answer['tokens']:,}  cost ${answer['cost_usd']:.4f}",
              markup=False)
    for level, e in flatten_flow(answer["flow"]):
        out.print("  " * (level + 1) + _event_text(e), markup=False)
    if answer["tools"]:
        out.print("tools: " + ", ".join(f"{t} x{n}" for t, n in answer["tools"].items()), markup=False)
    if answer["files"]:
        out.print("files: " + ", ".join(f"{f['path']} ({f['file_type']})" for f in answer["files"]), markup=False)


def print_agents(answer: dict[str, Any]) -> None:
    """``skillmine trace agents``: calls per agent."""
    out = console()
    out.print(table(["agent", "calls", "events"], [(a["agent"], a["invocations"], a["events"])
                                                   for a in answer["agents"]],
                    title=f"run {answer['run_id']}: {answer['total_invocations']} calls (agent_call events)"))


def print_failure(answer: dict[str, Any]) -> None:
    """``skillmine trace failure``: the failed event and what led to it, or the step judged failed."""
    out = console()
    failure = answer["failure"]
    if failure is None:
        out.print(f"run {answer['run_id']} ({answer['run_status']}): nothing failed", markup=False)
        return
    if failure["kind"] == "judged":
        out.print(f"run {answer['run_id']} failed: {failure['reason']}", markup=False)
        out.print("its last events:", markup=False)
        events = failure["last_events"]
    else:
        failed = failure["failed_event"]
        step = failure["node"]
        out.print(f"run {answer['run_id']} ({answer['run_status']}): {failed['event_type']} by "
                  f"{failed.get('agent_name') or 'system'}"
                  + (f" in step {(step.get('meta') or {}).get('id') or step['id']}" if step else "")
                  + (f": {failed['error_message'].splitlines()[0][:160]}" if failed.get("error_message") else ""),
                  markup=False)
        out.print("events leading to it:", markup=False)
        events = [*failure["ancestors"], *failure["preceding"], failed]
    for e in events:
        out.print(f"  {e['execution_order']:>5}  " + _event_text(e), markup=False)


def print_runs(answer: dict[str, Any]) -> None:
    """``skillmine runs search``: matching runs, newest first."""
    out = console()
    rows = [(r["id"][:8], (r["started_at"] or "")[:16].replace("T", " "), r["mode"] or "-", r["status"],
             r["total_events"], ", ".join(r["file_types"]), (r["task_description"] or "")[:70].replace("\n", " "))
            for r in answer["runs"]]
    query = " ".join(f"{k}={v!r}" for k, v in answer["query"].items()) or "all runs"
    out.print(table(["run", "started", "mode", "status", "events", "files", "task"], rows,
                    title=f"{answer['total_runs']} runs match {query}"))
