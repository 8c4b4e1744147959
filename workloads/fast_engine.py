"""The fast engine: a run script turned straight into capture-store rows, no AG2, for scale.

It emits what capturing the AG2 engine's run records, in the same order and nesting: per turn a speaker
handoff, an ``agent_call`` with its ``llm_call`` (tokens, cost), ``tool_call`` or ``code_exec`` children and their
``file_gen`` events, then the ``message`` the agent sent; node rows with sequential edges; approvals for
human-in-the-loop; a 429 as a failed ``llm_call`` plus an ``error`` event. Ids are derived from the run id, so
the same seed writes the same rows.
"""

import hashlib
from datetime import datetime, timedelta
from typing import Any

from capture.files import classify_file, file_id
from capture.store import Batch
from workloads.script import RATE_LIMIT_ERROR, NodeScript, RunScript, Turn

EXCERPT = 500
MANAGER = "chat_manager"


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


class _RunRows:
    """Accumulates one run's rows with a run-local clock and execution-order counter."""

    def __init__(self, script: RunScript, batch: Batch) -> None:
        self.s = script
        self.batch = batch
        self.now = script.started_at
        self.order = 0
        self.prefix = script.run_id[:24]
        self.file_ids: dict[str, dict[str, Any]] = {}

    def _id(self) -> str:
        self.order += 1
        return f"{self.prefix}{self.order:012x}"

    def advance(self, ms: int) -> datetime:
        self.now += timedelta(milliseconds=ms)
        return self.now

    def event(self, node: NodeScript, event_type: str, subtype: str | None, agent: str | None, *,
              parent: dict[str, Any] | None = None, status: str = "completed", **fields: Any) -> dict[str, Any]:
        row = {"id": self._id(), "run_id": self.s.run_id, "session_id": self.s.session_id, "node_id": node.node_id,
               "parent_event_id": parent["id"] if parent else None, "depth": parent["depth"] + 1 if parent else 0,
               "event_type": event_type, "event_subtype": subtype, "agent_name": agent, "timestamp": self.now,
               "execution_order": self.order, "status": status, **fields}
        self.batch.events.append(row)
        return row

    def span_end(self, row: dict[str, Any], started: datetime, *, failed: bool = False, **fields: Any) -> None:
        row.update(event_subtype="error" if failed else "complete", status="failed" if failed else "completed",
                   started_at=started, completed_at=self.now,
                   duration_ms=round((self.now - started).total_seconds() * 1000), **fields)

    def file(self, node: NodeScript, parent: dict[str, Any], agent: str, path: str, content: bytes) -> None:
        operation = "update" if path in self.file_ids else "create"
        digest = hashlib.sha256(content).hexdigest()
        event = self.event(node, "file_gen", operation, agent, parent=parent,
                           inputs={"file_path": path}, meta={"size_bytes": len(content), "content_hash": digest})
        self.file_ids[path] = {
            "id": file_id(self.s.run_id, path), "run_id": self.s.run_id, "session_id": self.s.session_id,
            "event_id": event["id"], "node_id": node.node_id, "file_path": path, "file_type": classify_file(path),
            "size_bytes": len(content), "created_at": self.now, "content_hash": digest, "generating_agent": agent,
            "workflow_phase": "planning" if node.node_type == "planning" else "execution"}


def _turn(rows: _RunRows, node: NodeScript, turn: Turn, sender: str | None) -> None:
    s = rows.s
    if sender is not None and sender != turn.agent:
        rows.event(node, "handoff", "speaker_selection", turn.agent,
                   meta={"from_agent": sender, "to_agent": turn.agent})
    started = rows.now
    call = rows.event(node, "agent_call", "start", turn.agent, status="running",
                      inputs={"sender": sender or MANAGER})
    failed = False
    if turn.usage is not None:
        u = turn.usage
        llm_started = rows.now
        llm = rows.event(node, "llm_call", "start", turn.agent, parent=call, status="running")
        rows.advance(u.latency_ms)
        usage = {"model": u.model, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                 "total_tokens": u.total_tokens, "cost_usd": u.cost_usd, "cached": False}
        if turn.rate_limited:
            failed = True
            rows.span_end(llm, llm_started, failed=True, meta={"model": u.model}, error_message=RATE_LIMIT_ERROR)
            rows.event(node, "error", "rate_limit", turn.agent, parent=llm, status="failed",
                       error_message=RATE_LIMIT_ERROR, meta={"exception": "ScriptedLLMError"})
        else:
            rows.span_end(llm, llm_started, meta=usage)
            rows.batch.costs.append({"run_id": s.run_id, "session_id": s.session_id, "node_id": node.node_id,
                                     "event_id": llm["id"], "model": u.model, "agent_name": turn.agent,
                                     "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                                     "total_tokens": u.total_tokens, "cost_usd": u.cost_usd, "timestamp": rows.now})
            call["meta"] = usage
    if turn.executes is not None:
        tool = turn.executes
        tool_started = rows.now
        span = rows.event(node, "tool_call", "start", turn.agent, parent=call, status="running",
                          inputs={"name": tool.name, "arguments": tool.arguments})
        rows.advance(tool.duration_ms)
        for path, content in tool.files.items():
            rows.file(node, span, turn.agent, path, content)
        rows.span_end(span, tool_started, outputs={"result": tool.result, "success": True},
                      meta={"tool_name": tool.name})
    if turn.code is not None:
        code = turn.code
        code_started = rows.now
        span = rows.event(node, "code_exec", "start", turn.agent, parent=call, status="running",
                          inputs={"language": code.language, "code": _excerpt(code.code)})
        rows.advance(code.duration_ms)
        for path, content in code.files.items():
            rows.file(node, span, turn.agent, path, content)
        rows.span_end(span, code_started, failed=code.exit_code != 0,
                      outputs={"exit_code": code.exit_code, "output": _excerpt(code.output)},
                      meta={"language": code.language, "exit_code": code.exit_code})
    outputs = None if failed else {"reply": _excerpt(turn.content)}
    rows.span_end(call, started, failed=failed, outputs=outputs,
                  error_message=RATE_LIMIT_ERROR if failed else None)
    if not failed:
        message = rows.event(node, "message", "send", turn.agent,
                             inputs={"sender": turn.agent, "recipient": MANAGER},
                             outputs={"content": _excerpt(turn.content)})
        tokens = turn.usage.completion_tokens if turn.usage else None
        rows.batch.messages.append({"run_id": s.run_id, "session_id": s.session_id, "event_id": message["id"],
                                    "node_id": node.node_id, "sender": turn.agent, "recipient": MANAGER,
                                    "content": turn.content, "timestamp": rows.now, "tokens": tokens})


def _node(rows: _RunRows, node: NodeScript, order_index: int) -> dict[str, Any]:
    started = rows.now
    if node.approval:
        rows.event(node, "approval_requested", "pending", "admin", status="pending",
                   inputs={"approval_type": "plan_approval"})
        if node.approval == "approved":
            rows.advance(node.approval_wait_ms)
            rows.event(node, "approval_requested", "approved", "admin", outputs={"resolution": "approved"})
    sender: str | None = None
    for turn in node.turns:
        _turn(rows, node, turn, sender)
        sender = turn.agent
    ended = node.status != "running"
    return {"id": node.node_id, "run_id": rows.s.run_id, "session_id": rows.s.session_id, "node_type": node.node_type,
            "agent": node.agent, "status": node.status, "order_index": order_index,
            "meta": {"id": node.name, "label": node.description, "type": node.node_type, "agent": node.agent,
                     "status": node.status, "started_at": started.isoformat(),
                     "completed_at": rows.now.isoformat() if ended else None}}


def add_run(script: RunScript, batch: Batch) -> int:
    """Append the rows of ``script`` to ``batch``; returns how many events it added."""
    before = len(batch.events)
    rows = _RunRows(script, batch)
    batch.runs.append({"id": script.run_id, "session_id": script.session_id, "mode": script.mode,
                       "agent": script.nodes[0].agent if script.mode == "one_shot" else "planner",
                       "model": script.config["model"], "status": "executing", "started_at": script.started_at,
                       "task_description": script.task, "meta": dict(script.config)})
    previous = None
    for order_index, node in enumerate(script.nodes):
        batch.nodes.append(_node(rows, node, order_index))
        if previous is not None:
            batch.edges.append({"from_node_id": previous, "to_node_id": node.node_id,
                                "dependency_type": "sequential"})
        previous = node.node_id
    batch.runs[-1].update(status=script.status,
                          completed_at=None if script.status == "executing" else rows.now)
    batch.files.extend(rows.file_ids.values())
    return len(batch.events) - before
