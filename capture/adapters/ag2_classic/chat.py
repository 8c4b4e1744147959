"""Chat boundaries: an automatic run (and node) when a chat starts outside any ``capture.run()``, the IOStream tee,
and speaker transitions in group chats."""

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from capture import api
from capture.adapters.ag2_classic.stream import CaptureTee
from capture.adapters.ag2_classic.threads import ChatState, adopt, chat_var, take_over
from capture.adapters.guarded import Guarded, message_text, name_of
from capture.core.context import current_run_var

TASK_CHARS = 500


@contextmanager
def _chat_state() -> Iterator[None]:
    from autogen.io import IOStream

    state = ChatState()
    token = chat_var.set(state)
    try:
        with IOStream.set_default(CaptureTee(IOStream.get_default(), state)):
            yield
    finally:
        chat_var.reset(token)


def chat_scope(initiator: Any, recipient: Any, message: Any, *, entry: str) -> ExitStack:
    """Everything a starting chat needs, as one stack to enter around the original call.

    Inside a run (or a context handed over from the caller's thread) the chat's events join it; otherwise a run
    and a node named after the recipient are opened and closed with the chat. The tee is installed once per chat
    tree (nested chats share it).
    """
    stack = ExitStack()
    if current_run_var.get() is None:
        handed = take_over(initiator) or take_over(recipient)
        if handed is not None:
            stack.enter_context(adopt(handed))
        else:
            task = message_text(message)[:TASK_CHARS] if message is not None else None
            who = name_of(recipient)
            stack.enter_context(Guarded("chat.run", lambda: api.run(
                f"{name_of(initiator)} -> {who}", task=task, meta={"source": "ag2", "entry": entry})))
            stack.enter_context(Guarded("chat.node", lambda: api.node(who or "chat", agent=who)))
    if chat_var.get() is None:
        stack.enter_context(Guarded("chat.tee", _chat_state))
    return stack


_manager_class: list[type] = []


def is_manager(agent: Any) -> bool:
    """Whether ``agent`` is a GroupChatManager (its ``generate_reply`` calls mark speaker transitions)."""
    if not _manager_class:
        from autogen import GroupChatManager

        _manager_class.append(GroupChatManager)
    return isinstance(agent, _manager_class[0])


def record_transition(speaker: Any, name: str, manager: Any) -> None:
    """``manager`` asked ``speaker`` (named ``name``) to reply: one speaker transition, unless an AG2 handoff event
    announced it. Called inside the reply's own guard, on every reply of a group chat (hence the plain attribute
    reads)."""
    chat = chat_var.get()
    if chat is not None and chat.pending_targets:
        mechanism = chat.pending_targets.pop(name, None)
        chat.pending_targets.clear()
        if mechanism is not None:
            return
    previous = getattr(manager, "_last_speaker", None)
    method = getattr(getattr(manager, "groupchat", None), "speaker_selection_method", None)
    api.record_event("handoff", "speaker_selection", agent_name=name,
                     inputs={"from": previous if previous is None else name_of(previous), "to": name},
                     meta={"method": method if isinstance(method, str) else getattr(method, "__name__", "custom"),
                           "manager": manager.name}, owned=True)
