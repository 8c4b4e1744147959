"""The canonical event vocabulary and the alias map that folds other sources onto it.

Sources disagree on spellings (see ``shared/reference/cmbagent.md`` §3); importers and the recorder call
:func:`normalise_event` so that the store only ever holds canonical pairs, with the original pair kept in
``meta.source_type`` when it changed. :func:`message_addressing` is how a message names its recipient(s).
"""

from dataclasses import dataclass
from typing import Any

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "agent_call",
        "llm_call",
        "tool_call",
        "code_exec",
        "file_gen",
        "handoff",
        "message",
        "approval_requested",
        "state_transition",
        "error",
        "info",
    }
)

CALL_LIKE_TYPES: frozenset[str] = frozenset({"agent_call", "llm_call", "tool_call", "code_exec"})
CALL_SUBTYPES: frozenset[str] = frozenset({"start", "complete", "error"})
EVENT_STATUSES: frozenset[str] = frozenset({"pending", "running", "completed", "failed", "skipped"})
HANDOFF_MECHANISMS: frozenset[str] = frozenset(
    {"speaker_selection", "after_work", "llm_condition", "context_condition", "reply_result", "transfer"}
)

# Event types that sampling must never drop.
NEVER_SAMPLED: frozenset[str] = frozenset({"agent_call", "handoff", "error"})

MODE_ALIASES: dict[str, str] = {
    "one-shot": "one_shot",
    "oneshot": "one_shot",
    "planning-control": "planning_and_control",
    "planning_control": "planning_and_control",
    "planning-and-control": "planning_and_control",
    "planning_and_control_context_carryover": "planning_and_control",
    "idea-generation": "idea_generation",
    "hitl-interactive": "human_in_the_loop",
    "hitl_interactive": "human_in_the_loop",
    "human-in-the-loop": "human_in_the_loop",
}

# (type, subtype) -> (type, subtype); ``None`` as subtype in a key matches any subtype.
_PAIR_ALIASES: dict[tuple[str, str | None], tuple[str, str | None]] = {
    ("agent_call", "execution"): ("state_transition", "node"),
    ("agent_call", "message"): ("message", "send"),
    ("agent_call", "invoked"): ("agent_call", "start"),
    ("tool_call", "execute"): ("tool_call", "complete"),
    ("tool_call", "invoked"): ("tool_call", "complete"),
    ("tool_call", "result"): ("tool_call", "complete"),
    ("tool_call", "executed"): ("tool_call", "complete"),
    ("code_exec", "submit"): ("code_exec", "start"),
    ("code_exec", "running"): ("code_exec", "start"),
    ("code_exec", "executed"): ("code_exec", "complete"),
    ("code_exec", "execute"): ("code_exec", "complete"),
    ("file_gen", "created"): ("file_gen", "create"),
    ("file_gen", "complete"): ("file_gen", "create"),
    ("file_gen", "error"): ("error", "file_gen"),
    ("handoff", "initiate"): ("handoff", "transfer"),
    ("handoff", "accept"): ("handoff", "transfer"),
    ("handoff", "reject"): ("handoff", "transfer"),
    ("handoff", "complete"): ("handoff", "transfer"),
    ("handoff", "pending"): ("handoff", "transfer"),
}

_TYPE_ALIASES: dict[str, str] = {
    "execution": "agent_call",
    "invoked": "agent_call",
    "agent_message": "message",
    "executed": "code_exec",
    "execute": "code_exec",
    "code_execution": "code_exec",
    "transfer": "handoff",
    "create": "file_gen",
    "created": "file_gen",
    "file_generation": "file_gen",
    "llm": "llm_call",
    "tool": "tool_call",
    "function_call": "tool_call",
    "approval": "approval_requested",
    "state_change": "state_transition",
}


class UnknownEventType(ValueError):
    """An event type that is neither canonical nor a known alias."""


@dataclass(frozen=True)
class Normalised:
    """A canonical (type, subtype) pair, and the source pair when it differed."""

    event_type: str
    event_subtype: str | None
    source_type: str | None


def normalise_mode(mode: str | None) -> str | None:
    """Fold mode spellings (``one-shot`` and ``one_shot`` are the same mode)."""
    if mode is None:
        return None
    key = mode.strip().lower()
    return MODE_ALIASES.get(key, key.replace("-", "_"))


def normalise_event(
    event_type: str, event_subtype: str | None = None, *, meta: dict | None = None, strict: bool = True
) -> Normalised:
    """Map a source (type, subtype) onto the canonical vocabulary.

    ``strict`` rejects unknown types with :class:`UnknownEventType`; otherwise they become ``info`` with the
    original pair in ``source_type`` so that nothing is lost.
    """
    if not isinstance(event_type, str) or not event_type.strip():
        raise UnknownEventType(f"event_type must be a non-empty string, got {event_type!r}")
    source = f"{event_type}/{event_subtype}" if event_subtype else event_type
    etype = event_type.strip().lower()
    sub = event_subtype.strip().lower() if isinstance(event_subtype, str) and event_subtype.strip() else None
    etype = _TYPE_ALIASES.get(etype, etype)
    if (etype, sub) in _PAIR_ALIASES:
        etype, sub = _PAIR_ALIASES[(etype, sub)]
    if etype == "handoff" and sub == "transfer" and meta and meta.get("reason") == "group_chat_selection":
        sub = "speaker_selection"
    if etype == "state_transition" and sub == "complete" and meta and meta.get("transition_type"):
        sub = str(meta["transition_type"])
    if etype not in EVENT_TYPES:
        if strict:
            raise UnknownEventType(
                f"unknown event type {event_type!r}; expected one of {sorted(EVENT_TYPES)} or a known alias"
            )
        return Normalised("info", "unmapped", source)
    canonical = f"{etype}/{sub}" if sub else etype
    return Normalised(etype, sub, None if canonical == source else source)


# Width of ``messages.recipient``; a broadcast's joined recipient names are cut to it.
RECIPIENT_CHARS = 100


def message_addressing(sender: str | None, recipient: str | list[str] | None,
                       meta: dict[str, Any] | None) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
    """A message's ``inputs``, ``messages.recipient`` and ``messages.meta``.

    A list of recipients is one silent group fan-out (a ``broadcast``): ``inputs.recipients`` lists them, the
    ``recipient`` column holds the names joined with ", " and cut to its width, ``meta.recipients`` the full list.
    """
    if type(recipient) is not list:
        return {"sender": sender, "recipient": recipient}, recipient, meta
    return ({"sender": sender, "recipients": recipient}, ", ".join(map(str, recipient))[:RECIPIENT_CHARS],
            {**(meta or {}), "recipients": recipient})
