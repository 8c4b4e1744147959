"""Rebuild fine-grained events of one run from a transcript (chat history, session log, step chats).

:class:`RunBuilder` is fed in transcript order: each speaker change opens an ``agent_call`` (and a ``handoff``
from the previous agent), messages, tool calls, code runs and errors hang under the open call (depth 1).
Ids derive from the run id and the event's position, so the same transcript always gives the same events.
Events and messages the source gives no time get the run's start (or, when that is unknown too,
:data:`UNKNOWN_TIME`) with ``meta.no_source_time``, and no duration: nothing is invented from the import's clock.
Cost rows that a source prints per LLM call become ``llm_call`` events under the calling agent's call.
"""

import math
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from capture.importers.common import ImportReport, SourceError, canonical, member_id

# Speakers that are not LLM agents: the human/task side and AG2's tool executors.
PSEUDO_AGENTS = frozenset({"_User", "_Group_Tool_Executor", "_Swarm_Tool_Executor", "admin", "user", "assistant",
                           "chat_manager"})
EXECUTORS = frozenset({"executor", "executor_bash", "researcher_executor"})
DEPENDENCY_FIX = frozenset({"installer", "executor_bash"})
# The tool an agent calls when a log line omits it (reference §10: each recorder/control agent has one tool).
AGENT_TOOLS = {
    "control": "record_status", "control_starter": "record_status_starter", "terminator": "terminate_session",
    "plan_recorder": "record_plan", "plan_setter": "record_plan_constraints", "review_recorder": "record_review",
    "executor_response_formatter": "post_execution_transfer", "idea_saver": "record_ideas",
    "task_recorder": "record_improved_task", "aas_keyword_finder": "record_aas_keywords",
}
# The time of events whose source records none and whose run start is unknown too (flagged in their meta).
UNKNOWN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
EXIT_CODE = re.compile(r"exitcode:\s*(-?\d+)")
TRACEBACK = "Traceback (most recent call last)"


def tool_name(raw: str | None, agent: str | None) -> str | None:
    """Strip AG2's ``_closure`` suffix; fall back to the agent's known tool."""
    if raw:
        return raw.removesuffix("_closure")
    return AGENT_TOOLS.get(agent or "")


def last_error_line(text: str) -> str:
    """The exception line of a traceback (its last non-empty line)."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


# Cost reports spell agents with spaces ("executor response formatter"); names become snake_case, anything else
# is kept as recorded (and so still meets the redaction patterns).
AGENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]*$")


def as_number(value: Any) -> float:
    """A report's number; missing, unreadable or NaN (MARS writes bare ``NaN``) counts as 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return 0.0 if math.isnan(number) else number


def cost_report_row(row: Any, where: str, model: str | None = None) -> tuple[str, dict[str, Any]] | None:
    """(agent, cost meta) of one row of a CMBAgent cost report (``Agent``, ``Cost ($)``, token columns, optional
    ``Model``, else ``model``); None for the ``Total`` row, which sums the others. ``where`` names the report."""
    if not isinstance(row, dict):
        raise SourceError(f"{where}: a cost row is not an object")
    agent = str(row.get("Agent") or "").strip()
    if not agent or agent == "Total":
        return None
    named = row.get("Model") if isinstance(row.get("Model"), str) else None
    cost = {"model": named or model, "cost_usd": as_number(row.get("Cost ($)")),
            "prompt_tokens": int(as_number(row.get("Prompt Tokens"))),
            "completion_tokens": int(as_number(row.get("Completion Tokens"))),
            "total_tokens": int(as_number(row.get("Total Tokens")))}
    return ("_".join(agent.split()) if AGENT_NAME.match(agent) else agent), cost


def _duration_ms(start: datetime | None, end: datetime | None) -> int | None:
    return int((end - start).total_seconds() * 1000) if start and end else None


class RunBuilder:
    """Accumulates one run's events, messages and cost rows in order."""

    def __init__(self, run_id: str, session_id: str, report: ImportReport,
                 fallback_time: datetime | None = None) -> None:
        self.run_id = run_id
        self.fallback_time = fallback_time
        self.session_id = session_id
        self.report = report
        self.events: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.costs: list[dict[str, Any]] = []
        self.node_id: str | None = None
        self.current: dict[str, Any] | None = None
        self.last_agent: str | None = None
        self.mechanism: str | None = None

    # -- structure -------------------------------------------------------------------------------------------

    def _event(self, event_type: str, subtype: str | None, agent: str | None, at: datetime | None,
               parent: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
        etype, sub, meta = canonical(event_type, subtype, self.report, fields.pop("meta", None))
        if at is None:
            meta["no_source_time"] = True
        event = {"id": member_id(self.run_id, "event", len(self.events)), "run_id": self.run_id,
                 "session_id": self.session_id, "node_id": self.node_id, "event_type": etype,
                 "event_subtype": sub, "agent_name": agent, "timestamp": at or self.untimed(), "started_at": at,
                 "execution_order": len(self.events) + 1, "depth": 1 if parent else 0,
                 "parent_event_id": parent["id"] if parent else None, "status": "completed", "meta": meta,
                 **fields}
        self.events.append(event)
        return event

    def untimed(self) -> datetime:
        """The stand-in time of an event or message the source gives no time (see the module docstring)."""
        return self.fallback_time or UNKNOWN_TIME

    def enter_node(self, node_id: str | None) -> None:
        """Start a new chat (a step): close the open call; later events belong to ``node_id``."""
        self.close()
        self.node_id = node_id

    def close(self, at: datetime | None = None) -> None:
        """End the open agent call."""
        if self.current is not None:
            if at is not None:
                self.current["completed_at"] = at
            self.current["duration_ms"] = _duration_ms(self.current.get("started_at"),
                                                       self.current.get("completed_at"))
            self.current = None

    def transition(self, mechanism: str) -> None:
        """Remember how the next speaker change happens (``after_work``, ``reply_result`` ...)."""
        self.mechanism = mechanism

    def agent_call(self, agent: str, at: datetime | None = None, meta: dict[str, Any] | None = None,
                   *, same_call: bool = True) -> dict[str, Any] | None:
        """Open (or, with ``same_call`` and the same speaker, continue) an agent call; pseudo agents open none."""
        if agent in PSEUDO_AGENTS:
            return self.current
        if same_call and self.current is not None and self.current["agent_name"] == agent:
            self.touch(at)
            return self.current
        self.close(at)
        if self.last_agent is not None and self.last_agent != agent:
            self._event("handoff", self.mechanism or "transfer", self.last_agent, at,
                        inputs={"from_agent": self.last_agent, "to_agent": agent})
        self.mechanism = None
        meta = dict(meta or {})
        if agent in DEPENDENCY_FIX:
            meta["path"] = "dependency_fix"
        self.current = self._event("agent_call", "complete", agent, at, meta=meta, completed_at=at)
        self.last_agent = agent
        return self.current

    def touch(self, at: datetime | None) -> None:
        """Extend the open call to ``at``."""
        if self.current is not None and at is not None:
            self.current["completed_at"] = at

    # -- leaves ----------------------------------------------------------------------------------------------

    def message(self, sender: str, content: str, at: datetime | None = None,
                recipient: str | None = None) -> dict[str, Any]:
        """A message by ``sender`` (opening its agent call); executor output also becomes a ``code_exec``."""
        parent = self.agent_call(sender, at)
        event = self._event("message", "send", sender, at, parent, inputs={"content": content},
                            meta={"sender": sender, **({"recipient": recipient} if recipient else {})})
        row = {"run_id": self.run_id, "session_id": self.session_id, "event_id": event["id"],
               "node_id": self.node_id, "sender": sender, "recipient": recipient, "content": content,
               "timestamp": at or self.untimed()}
        self.messages.append(row)
        if sender in EXECUTORS:
            self.code_exec(sender, content, at)
        elif TRACEBACK in content:
            self.error("runtime_error", content, at, sender)
        return event

    def tool_call(self, tool: str | None, agent: str, arguments: Any = None, result: Any = None,
                  at: datetime | None = None) -> dict[str, Any]:
        """A tool call made by ``agent`` (executed by AG2's tool executor on its behalf)."""
        parent = self.agent_call(agent, at)
        if tool is None:
            self.report.unmapped[f"tool call of {agent} with no known tool"] += 1
        return self._event("tool_call", "complete", agent, at, parent,
                           inputs={"tool_name": tool, "arguments": arguments},
                           outputs=None if result is None else {"result": result},
                           meta={"tool_name": tool, "executed_by": "_Group_Tool_Executor"})

    def code_exec(self, agent: str, output: str, at: datetime | None = None) -> dict[str, Any]:
        """A code run whose exit code is read from ``exitcode: N`` (or inferred from a traceback)."""
        parent = self.agent_call(agent, at)
        found = EXIT_CODE.search(output)
        failed = (int(found.group(1)) != 0) if found else TRACEBACK in output
        meta = {"exit_code": int(found.group(1)) if found else None, "exit_code_source":
                "exitcode" if found else "inferred"}
        event = self._event("code_exec", "error" if failed else "complete", agent, at, parent,
                            outputs={"result": output}, status="failed" if failed else "completed", meta=meta)
        if TRACEBACK in output:
            self.error("runtime_error", output, at, agent)
        return event

    def file_gen(self, relative_path: str, size_bytes: int) -> dict[str, Any]:
        """A file the run produced (its producer is not recorded in the source, so no agent)."""
        return self._event("file_gen", "create", None, None, self.current,
                           meta={"file_path": relative_path, "size_bytes": size_bytes})

    def error(self, category: str, text: str, at: datetime | None = None, agent: str | None = None) -> None:
        """An error (a traceback, a failed run) under the open call."""
        self._event("error", category, agent or "system", at, self.current,
                    error_message=last_error_line(text), outputs={"text": text}, status="failed")

    def llm_call(self, agent: str, cost: dict[str, Any], *, aggregate: bool = False) -> dict[str, Any]:
        """An LLM call of ``agent`` (model, tokens, ``cost_usd`` in meta) under its open call, with its cost row;
        ``aggregate`` marks a row that sums several calls (a per-agent cost report)."""
        meta = {**cost, **({"aggregate": True} if aggregate else {})}
        event = self._event("llm_call", "complete", agent, None, self.current, meta=meta)
        self.cost(agent, cost.get("model"), cost.get("prompt_tokens"), cost.get("completion_tokens"),
                  cost.get("total_tokens"), cost.get("cost_usd"), event_id=event["id"])
        return event

    def cost(self, agent: str | None, model: str | None, prompt: Any, completion: Any, total: Any, usd: Any,
             event_id: str | None = None) -> None:
        """A cost row (per call when ``event_id`` is known, else per agent of the current node)."""
        self.costs.append({"run_id": self.run_id, "session_id": self.session_id, "node_id": self.node_id,
                           "event_id": event_id, "model": model, "agent_name": agent or "unattributed",
                           "prompt_tokens": int(prompt or 0), "completion_tokens": int(completion or 0),
                           "total_tokens": int(total or 0), "cost_usd": Decimal(str(usd or 0)),
                           "timestamp": self.untimed()})
