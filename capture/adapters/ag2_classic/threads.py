"""Carry the capture context (run, node, span, chat) across the thread hops AG2 makes.

ContextVars do not cross ``run_in_executor`` (the async LLM path), ``_run_async_in_thread`` (async tools in a sync
chat) or the worker threads of ``run()`` / ``run_group_chat()``. Each agent therefore remembers the context of its
open replies (and of its last activity); a wrapper entered with no run adopts it for the duration of the call.
"""

import threading
import weakref
from contextvars import Context, ContextVar, Token, copy_context
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from capture.core.context import current_node_var, current_run_var, current_span_var


@dataclass
class ChatState:
    """One captured chat: handoff mechanisms announced by AG2 events, waiting for the speaker change they cause."""

    pending_targets: dict[str, str] = field(default_factory=dict)


chat_var: ContextVar[ChatState | None] = ContextVar("skillmine_ag2_chat", default=None)


class ReplyFrame:
    """An open ``agent_call``: its span, the context it runs in (a ``contextvars`` copy: one C call per reply, and
    read only when a call hops to a thread without a run) and the LLM usage summed into it."""

    __slots__ = ("completion_tokens", "context", "cost_usd", "llm_calls", "model", "prompt_tokens", "span")

    def __init__(self, span: Any, context: Context) -> None:
        self.span = span
        self.context = context
        self.llm_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd = 0.0
        self.model: str | None = None


def snapshot() -> Context:
    """The current capture context (a copy of the whole ``contextvars`` context)."""
    return copy_context()


# Keyed by the agent itself (hashable, as the weak-keyed maps here and in agent.py already require), not by id():
# a weak-keyed dict costs a new weakref per look-up, and id() raises an audit event (see adapters.patching). An
# agent's entry is removed when its last open reply closes (replies always close, see ReplyScope.__exit__), so the
# strong reference lasts no longer than a reply the agent is running.
_open_replies: dict[Any, list[ReplyFrame]] = {}
_handed_over: "weakref.WeakKeyDictionary[Any, Context]" = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def push_reply(agent: Any, frame: ReplyFrame) -> None:
    """Register ``frame`` as ``agent``'s innermost open reply."""
    with _lock:
        frames = _open_replies.get(agent)
        if frames is None:
            _open_replies[agent] = [frame]
        else:
            frames.append(frame)


def pop_reply(agent: Any, frame: ReplyFrame) -> None:
    """Forget ``frame`` (whatever its position: concurrent async replies may close out of order)."""
    with _lock:
        frames = _open_replies.get(agent)
        if frames and frame in frames:
            frames.remove(frame)
            if not frames:
                del _open_replies[agent]


def open_reply(agent: Any) -> ReplyFrame | None:
    """``agent``'s innermost open reply, if any."""
    frames = _open_replies.get(agent) if agent is not None else None
    return frames[-1] if frames else None


def hand_over(agent: Any, snap: Context) -> None:
    """Leave ``snap`` for the chat ``agent`` is about to start on another thread (``run()``)."""
    if snap.get(current_run_var) is not None:
        _handed_over[agent] = snap


def take_over(agent: Any) -> Context | None:
    """The context handed over for ``agent``'s chat, once."""
    with _lock:
        return _handed_over.pop(agent, None) if agent is not None else None


def stashed(agent: Any) -> Context | None:
    """The context of ``agent``'s innermost open reply (for work it runs on another thread)."""
    frame = open_reply(agent)
    return frame.context if frame is not None else None


class _Adopted:
    """The context manager behind :func:`adopt` (a slotted class: it wraps every LLM and tool call, and a
    generator-based context manager costs several times more)."""

    __slots__ = ("snap", "tokens")

    def __init__(self, snap: Context | None) -> None:
        self.snap = snap
        self.tokens: tuple[Token, Token, Token, Token] | None = None

    def __enter__(self) -> bool:
        snap = self.snap
        if snap is None or current_run_var.get() is not None:
            return False
        run = snap.get(current_run_var)
        if run is None:
            return False
        self.tokens = (current_run_var.set(run), current_node_var.set(snap.get(current_node_var)),
                       current_span_var.set(snap.get(current_span_var)), chat_var.set(snap.get(chat_var)))
        return True

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        tokens = self.tokens
        if tokens is not None:
            self.tokens = None
            chat_var.reset(tokens[3])
            current_span_var.reset(tokens[2])
            current_node_var.reset(tokens[1])
            current_run_var.reset(tokens[0])
        return False


def adopt(snap: Context | None) -> _Adopted:
    """Enter the capture context of ``snap`` when this thread has no run of its own; ``with`` gives whether it
    did."""
    return _Adopted(snap)
