"""AG2 Classic instrumentation: ``instrument(target)`` / ``uninstrument(target)``.

A target is an agent, a list of agents, a GroupChatManager (with its group chat's agents), a GroupChat, or a
group-chat pattern (its agents, and everything ``prepare_group_chat`` builds: manager, ``_User``,
``_Group_Tool_Executor``). Instrumenting twice is harmless; uninstrumenting restores the original attributes
exactly (the send hook AG2 cannot unregister becomes a no-op). See ``shared/reference/ag2.md`` §5.
"""

import functools
from typing import Any

from capture.adapters import patching
from capture.adapters.ag2_classic.agent import adopt_child, children_of, instrument_agent, uninstrument_agent
from capture.adapters.ag2_classic.selection import instrument_selection
from capture.adapters.guarded import attempt

__all__ = ["failure_count", "instrument", "is_instrumented", "uninstrument"]

failure_count = patching.failure_count


def is_instrumented(target: Any) -> bool:
    """Whether ``target`` itself is currently instrumented."""
    return patching.is_active(target)


def _is_pattern(target: Any) -> bool:
    return hasattr(target, "prepare_group_chat") and hasattr(target, "agents")


def _agents_in(value: Any) -> list[Any]:
    """Agents found in a ``prepare_group_chat`` result (agents, lists of agents, group chats)."""
    if hasattr(value, "register_hook"):
        return [value]
    if isinstance(value, (list, tuple)):
        return [agent for item in value for agent in _agents_in(item)]
    if hasattr(value, "agents") and hasattr(value, "speaker_selection_method"):
        return list(value.agents)
    return []


def _wrap_prepare(pattern: Any, original: Any) -> Any:
    @functools.wraps(original)
    def prepare_group_chat(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if patching.is_active(pattern):
            for agent in _agents_in(result):
                attempt("pattern.prepare", instrument_agent, agent, owner=pattern)
                if getattr(agent, "groupchat", None) is not None:
                    attempt("pattern.selection", instrument_selection, agent)
        return result

    return prepare_group_chat


def _check(target: Any) -> None:
    if not (hasattr(target, "register_hook") or _is_pattern(target) or hasattr(target, "speaker_selection_method")):
        raise TypeError(f"capture.instrument() needs an AG2 agent, a list of agents, a GroupChatManager, a GroupChat "
                        f"or a group-chat pattern; got {type(target).__name__}: {target!r:.80}")


def instrument(target: Any) -> Any:
    """Capture everything ``target`` does from now on; returns ``target``.

    Chats started by an instrumented agent also instrument their recipient (undone with the initiator).
    """
    if isinstance(target, (list, tuple)):
        for item in target:
            instrument(item)
        return target
    _check(target)
    if _is_pattern(target):
        if patching.activate(target):
            patching.patch(target, "prepare_group_chat", lambda original: _wrap_prepare(target, original))
            for agent in list(target.agents) + [a for a in (getattr(target, "user_agent", None),) if a is not None]:
                instrument_agent(agent)
                adopt_child(target, agent)
        return target
    if hasattr(target, "speaker_selection_method"):  # a GroupChat: its agents
        for agent in target.agents:
            instrument_agent(agent)
        return target
    instrument_agent(target)
    groupchat = getattr(target, "groupchat", None)
    if groupchat is not None:
        for agent in groupchat.agents:
            instrument_agent(agent)
            adopt_child(target, agent)
        instrument_selection(target)
    return target


def uninstrument(target: Any) -> Any:
    """Restore ``target`` (and what was instrumented with it) to exactly its original behaviour; returns it."""
    if isinstance(target, (list, tuple)):
        for item in target:
            uninstrument(item)
        return target
    _check(target)
    if hasattr(target, "speaker_selection_method"):
        for agent in target.agents:
            uninstrument_agent(agent)
        return target
    if _is_pattern(target):
        for child in children_of(target):
            uninstrument_agent(child)
        patching.restore(target)
        return target
    uninstrument_agent(target)
    return target
