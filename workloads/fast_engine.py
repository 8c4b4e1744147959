"""The fast engine: a run script turned straight into capture-store rows, no AG2, for scale.

It writes what capturing the AG2 engine's play of the same script records (``capture.instrument`` on a
GroupChat per node), in the same order, nesting, times and statuses: ``_User``'s opening message and the
``chat_manager`` reply that runs the chat; per turn a speaker handoff, the speaker's ``agent_call`` with its
``llm_call`` (tokens, cost), ``tool_call`` or ``code_exec`` and their ``file_gen`` events, its message and the
manager's silent broadcast of it (one event listing its recipients); the chat's termination; approvals for
human-in-the-loop; a 429 as failed spans plus ``error`` events. Only payload texts differ (real tracebacks name
real paths). Ids derive from the run id, so the same seed writes the same rows.
"""

import hashlib
from datetime import timedelta
from typing import Any

from capture.core.files import classify_file, file_id
from capture.core.vocabulary import message_addressing
from capture.store.capture_store import Batch
from workloads.script import RATE_LIMIT_ERROR, NodeScript, RunScript, Turn

EXCERPT = 500
MANAGER = "chat_manager"
USER = "_User"
SELECTION_METHOD = "scripted_order"
RATE_LIMIT_MESSAGE = f"ScriptedLLMError: {RATE_LIMIT_ERROR}"


def _excerpt(text: str | None) -> str | None:
    return text if text is None or len(text) <= EXCERPT else text[:EXCERPT] + "…"


def tool_call_id(node: NodeScript, llm_turn: int) -> str:
    """The id of the tool call the node's ``llm_turn``-th LLM reply (from 1) makes; both engines use it."""
    return f"call_{node.name}_{llm_turn}"


class _RunRows:
    """One run's rows, a run-local clock and the per-run execution-order counter."""

    def __init__(self, script: RunScript, batch: Batch) -> None:
        self.s = script
        self.batch = batch
        self.now = script.started_at
        self.order = 0
        self.prefix = script.run_id[:24]
        self.files: dict[str, dict[str, Any]] = {}

    def advance(self, ms: int) -> None:
        self.now += timedelta(milliseconds=ms)

    def event(self, node: NodeScript, event_type: str, subtype: str | None, agent: str | None, *,
              parent: dict[str, Any] | None = None, status: str = "completed", **fields: Any) -> dict[str, Any]:
        self.order += 1
        done = status in ("completed", "failed")
        row = {"id": f"{self.prefix}{self.order:012x}", "run_id": self.s.run_id, "session_id": self.s.session_id,
               "node_id": node.node_id, "parent_event_id": parent["id"] if parent else None,
               "depth": parent["depth"] + 1 if parent else 0, "event_type": event_type, "event_subtype": subtype,
               "agent_name": agent, "timestamp": self.now, "started_at": self.now,
               "completed_at": self.now if done else None, "execution_order": self.order, "status": status,
               **fields}
        self.batch.events.append(row)
        return row

    def span(self, node: NodeScript, event_type: str, agent: str, parent: dict[str, Any] | None,
             inputs: dict[str, Any]) -> dict[str, Any]:
        return self.event(node, event_type, "start", agent, parent=parent, status="running", inputs=inputs)

    def end(self, row: dict[str, Any], *, error: str | None = None, **fields: Any) -> None:
        row.update(event_subtype="error" if error else "complete", status="failed" if error else "completed",
                   completed_at=self.now, duration_ms=int((self.now - row["started_at"]).total_seconds() * 1000),
                   **fields)
        if error:
            row["error_message"] = error

    def message(self, node: NodeScript, parent: dict[str, Any] | None, sender: str, recipient: str | list[str],
                content: str, meta: dict[str, Any]) -> None:
        """A ``message`` event and its ``messages`` row; a list of recipients is a group manager's silent round
        fan-out, one ``broadcast`` (as capture records it)."""
        inputs, column, row_meta = message_addressing(sender, recipient, meta)
        event = self.event(node, "message", "broadcast" if isinstance(recipient, list) else "send", sender,
                           parent=parent, inputs=inputs, meta=meta)
        self.batch.messages.append({"run_id": self.s.run_id, "session_id": self.s.session_id, "event_id": event["id"],
                                    "node_id": node.node_id, "sender": sender, "recipient": column,
                                    "content": content, "timestamp": self.now, "tokens": None, "meta": row_meta})

    def write_files(self, node: NodeScript, parent: dict[str, Any], agent: str, files: dict[str, bytes]) -> None:
        for path in sorted(files):
            content = files[path]
            operation = "update" if path in self.files else "create"
            event = self.event(node, "file_gen", operation, agent, parent=parent, inputs={"path": path})
            self.files[path] = {
                "id": file_id(self.s.run_id, path), "run_id": self.s.run_id, "session_id": self.s.session_id,
                "event_id": event["id"], "node_id": node.node_id, "file_path": path, "generating_agent": agent,
                "created_at": self.now, "file_type": classify_file(path), "size_bytes": len(content),
                "content_hash": hashlib.sha256(content).hexdigest(), "meta": {"operation": operation}}


def _turn(rows: _RunRows, node: NodeScript, manager: dict[str, Any], turn: Turn, previous: str, history: int,
          llm_turn: int, last_content: str) -> dict[str, Any] | None:
    """One speaker's turn; returns the meta of the message it sent, or None when it raised (a 429)."""
    rows.event(node, "handoff", "speaker_selection", turn.agent, parent=manager,
               inputs={"from": previous, "to": turn.agent}, meta={"method": SELECTION_METHOD, "manager": MANAGER})
    call = rows.span(node, "agent_call", turn.agent, manager,
                     {"sender": MANAGER, "message": {"content": _excerpt(last_content), "role": "user"}})
    send_meta: dict[str, Any] = {"silent": False}
    if turn.usage is not None:
        u = turn.usage
        llm = rows.span(node, "llm_call", turn.agent, call, {"messages": history})
        rows.advance(u.latency_ms)
        if turn.rate_limited:
            rows.event(node, "error", "llm_call", turn.agent, parent=llm, status="failed",
                       error_message=RATE_LIMIT_MESSAGE)
            rows.end(llm, error=RATE_LIMIT_MESSAGE)
            rows.event(node, "error", "agent_call", turn.agent, parent=call, status="failed",
                       error_message=RATE_LIMIT_MESSAGE)
            rows.end(call, error=RATE_LIMIT_MESSAGE)
            return None
        tools = [turn.tool_call.name] if turn.tool_call else []
        rows.end(llm, outputs={"content": _excerpt(turn.content), "tool_calls": tools},
                 meta={"model": u.model, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                       "total_tokens": u.total_tokens, "cost_usd": u.cost_usd, "cached": False})
        rows.batch.costs.append({"run_id": rows.s.run_id, "session_id": rows.s.session_id, "node_id": node.node_id,
                                 "event_id": llm["id"], "model": u.model, "agent_name": turn.agent,
                                 "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                                 "total_tokens": u.total_tokens, "cost_usd": u.cost_usd, "timestamp": rows.now})
        call["meta"] = {"llm_calls": 1, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                        "cost_usd": u.cost_usd, "model": u.model}
        if turn.tool_call:
            send_meta = {"silent": False, "tool_call_ids": [tool_call_id(node, llm_turn)], "role": "assistant"}
    if turn.executes is not None:
        tool = turn.executes
        span = rows.span(node, "tool_call", turn.agent, call,
                         {"name": tool.name, "arguments": str(tool.arguments), "call_id": tool_call_id(node, llm_turn)})
        rows.advance(tool.duration_ms)
        rows.write_files(node, span, turn.agent, tool.files)
        rows.end(span, outputs={"content": tool.result, "success": True})
        send_meta = {"silent": False, "role": "tool"}
    if turn.code is not None:
        code = turn.code
        span = rows.span(node, "code_exec", turn.agent, call,
                         {"language": code.language, "blocks": 1, "code": _excerpt(code.code)})
        rows.advance(code.duration_ms)
        if code.exit_code:
            rows.event(node, "error", "code_exec", turn.agent, parent=span, status="failed",
                       error_message=f"exit code {code.exit_code}: {code.output[:1000]}")
        rows.write_files(node, span, turn.agent, code.files)
        rows.end(span, outputs={"exit_code": code.exit_code, "output": _excerpt(code.output),
                                "code_file": code.filename},
                 error=f"exit code {code.exit_code}" if code.exit_code else None)
    rows.end(call, outputs={"reply": _excerpt(turn.content), "replied": True})
    rows.message(node, manager, turn.agent, MANAGER, turn.content, send_meta)
    return send_meta


def _chat(rows: _RunRows, node: NodeScript) -> None:
    """The node's group chat: opened by ``_User``, run inside the manager's reply."""
    agents = [USER, *dict.fromkeys(t.agent for t in node.turns)]
    rows.message(node, None, USER, MANAGER, node.description, {"silent": False})
    manager = rows.span(node, "agent_call", MANAGER, None,
                        {"sender": USER, "message": {"content": node.description, "role": "user", "name": USER}})
    speaker, content, llm_turns = USER, node.description, 0
    broadcast = {"silent": True, "role": "user"}
    for history, turn in enumerate(node.turns, start=2):
        rows.message(node, manager, MANAGER, [a for a in agents if a != speaker], content, broadcast)
        llm_turns += turn.usage is not None
        sent = _turn(rows, node, manager, turn, speaker, history, llm_turns, content)
        if sent is None:
            rows.event(node, "error", "agent_call", MANAGER, parent=manager, status="failed",
                       error_message=RATE_LIMIT_MESSAGE)
            rows.end(manager, error=RATE_LIMIT_MESSAGE)
            return
        speaker, content = turn.agent, turn.content
        broadcast = {"role": "user", **sent, "silent": True}
    rows.message(node, manager, MANAGER, [a for a in agents if a != speaker], content, broadcast)
    rows.event(node, "info", "termination", MANAGER, parent=manager,
               outputs={"reason": "No next speaker selected"}, meta={"recipient": speaker})
    rows.end(manager, outputs={"reply": None, "replied": False})


def _node(rows: _RunRows, node: NodeScript, order_index: int, failure: str | None) -> tuple[dict[str, Any], str | None]:
    meta: dict[str, Any] = {"label": node.description, "type": node.node_type, "agent": node.agent, "id": node.name,
                            "started_at": rows.now.isoformat()}
    if failure:
        meta["error"] = f"not run: {failure}"
    else:
        if node.approval:
            rows.event(node, "approval_requested", "pending", "admin", status="pending",
                       inputs={"approval_type": "plan_approval"})
            if node.approval == "approved":
                rows.advance(node.approval_wait_ms)
                rows.event(node, "approval_requested", "approved", "admin", outputs={"resolution": "approved"})
        if node.turns:
            _chat(rows, node)
        if node.status == "failed":
            meta["error"] = RATE_LIMIT_ERROR
            failure = f"rate limit in {node.name}"
    meta["completed_at"] = rows.now.isoformat()
    status = node.status if node.status == "running" or not failure else "failed"
    return ({"id": node.node_id, "run_id": rows.s.run_id, "session_id": rows.s.session_id, "node_type": node.node_type,
             "agent": node.agent, "status": status, "order_index": order_index, "parent_node_id": None, "depth": 0,
             "meta": meta}, failure)


def add_run(script: RunScript, batch: Batch) -> int:
    """Append the rows of ``script`` to ``batch``; returns how many events it added."""
    before = len(batch.events)
    rows = _RunRows(script, batch)
    previous, failure = None, None
    for order_index, node in enumerate(script.nodes):
        row, failure = _node(rows, node, order_index, failure)
        batch.nodes.append(row)
        if previous is not None:
            batch.edges.append({"from_node_id": previous, "to_node_id": node.node_id, "dependency_type": "sequential"})
        previous = node.node_id
    meta = dict(script.config)
    if failure:
        meta["error"] = failure
    batch.runs.append({"id": script.run_id, "session_id": script.session_id, "mode": script.mode,
                       "status": script.status, "started_at": script.started_at, "task_description": script.task,
                       "completed_at": None if script.status == "executing" else rows.now, "meta": meta})
    batch.files.extend(rows.files.values())
    return len(batch.events) - before
