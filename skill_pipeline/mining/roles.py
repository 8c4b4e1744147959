"""Agent roles: which agents are plumbing, who really called a tool, and what a step does.

AG2 group chats record events for agents that are machinery, not behaviour: the ``chat_manager`` that runs the
chat, the ``_Group_Tool_Executor`` that executes every tool an LLM asked for, the ``_User`` proxy that opens the
chat. A skill step is the agent that *decided* to act, so:

- plumbing agents never become steps;
- a tool (or code) execution by a plumbing agent is attributed to its caller: ``meta.caller`` when captured,
  otherwise the last non-plumbing agent whose ``agent_call`` preceded it in the run;
- each step gets an action from a small vocabulary (``plan``, ``write code``, ``record status`` ...) derived from
  its event type, agent role and tool.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .vocabulary import PLUMBING_AGENTS

# Events a plumbing agent records that carry behaviour of the agent that called it.
_ATTRIBUTED_TYPES = frozenset({"tool_call", "code_exec", "file_gen"})
# Events of plumbing agents kept as they are (failures matter to outcome statistics).
_KEPT_TYPES = frozenset({"error"})

TOOL_ACTIONS = {
    "record_status": "record status", "record_status_starter": "record status", "record_plan": "record plan",
    "record_plan_constraints": "set plan constraints", "record_review": "record review",
    "record_ideas": "save ideas", "post_execution_transfer": "route after execution",
    "terminate_session": "terminate",
}
AGENT_ACTIONS = {
    "planner": "plan", "plan_reviewer": "review plan", "plan_recorder": "record plan",
    "review_recorder": "record review", "plan_setter": "set plan constraints", "engineer": "write code",
    "installer": "install dependency", "researcher": "research", "idea_maker": "generate ideas",
    "idea_hater": "critique ideas", "idea_saver": "save ideas", "control": "coordinate",
    "control_starter": "coordinate", "terminator": "terminate", "admin": "approve", "summarizer": "summarise",
    "summariser": "summarise", "executor": "execute code",
}
FORMATTED_NOUNS = {"engineer": "code", "planner": "plan", "reviewer": "review", "plan_reviewer": "review",
                   "executor": "execution result", "researcher": "summary", "idea_hater": "critique",
                   "idea_maker": "ideas", "installer": "install command"}
EVENT_ACTIONS = {"code_exec": "execute code", "approval_requested": "approve", "error": "handle failure",
                 "file_gen": "write file", "handoff": "hand off", "state_transition": "change state"}
_FORMATTER = re.compile(r"^(?P<base>.+?)_(?:response_formatter|nest|formatter)$")


def is_plumbing(agent: Any) -> bool:
    """True for the chat machinery agents (chat manager, tool executor, user proxy)."""
    return agent is not None and str(agent).strip().lower() in PLUMBING_AGENTS


def _caller(event: Mapping[str, Any]) -> str | None:
    meta = event.get("meta")
    caller = meta.get("caller") if isinstance(meta, Mapping) else None
    return str(caller) if caller and not is_plumbing(caller) else None


def attribute_callers(ordered: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Events of one run (in execution order) without plumbing agents' own steps; tool / code / file events of a
    plumbing agent are re-attributed to their caller (``meta.caller``, else the last preceding non-plumbing
    ``agent_call``). Without any known caller the event keeps its plumbing agent."""
    out: list[Mapping[str, Any]] = []
    last_agent: str | None = None
    for ev in ordered:
        agent = ev.get("agent_name")
        etype = str(ev.get("event_type") or "")
        if not is_plumbing(agent):
            if etype == "agent_call" and agent:
                last_agent = str(agent)
            out.append(ev)
            continue
        if etype in _ATTRIBUTED_TYPES:
            caller = _caller(ev) or last_agent
            out.append({**ev, "agent_name": caller} if caller else ev)
        elif etype in _KEPT_TYPES:
            out.append(ev)
    return out


def step_action(event_type: str, agent: str, tool: str | None = None) -> str:
    """The action a step performs, from a small vocabulary: tool first, then event type, then agent role."""
    if tool:
        return TOOL_ACTIONS.get(tool, "call " + tool.replace("_", " "))
    if event_type in EVENT_ACTIONS:
        return EVENT_ACTIONS[event_type]
    name = agent.lower()
    if name in AGENT_ACTIONS:
        return AGENT_ACTIONS[name]
    formatter = _FORMATTER.match(name)
    if formatter:
        base = formatter.group("base")
        return "format " + FORMATTED_NOUNS.get(base, base.replace("_", " "))
    if name.endswith("_executor"):
        return "execute code"
    return "act as " + name.replace("_", " ")
