"""What both AG2 adapters (Classic and v1) record the same way: files written by tools, and human input
(:class:`HumanInput`).

Files written by a tool are seen through a Python audit hook (``sys.addaudithook``, PEP 578): every ``open`` /
``os.open`` raises an ``open`` audit event with the path and the mode or flags. The hook is installed once per
process (audit hooks cannot be removed) and does nothing unless a tool call is being watched in the current context
(:func:`watch_writes`), so it costs one string comparison per audit event elsewhere. Writes made by a subprocess the
tool starts, or on a thread that does not carry the tool's context, are not seen; writes inside
:func:`recorded_by_caller` are left to the tool, which records them itself.
"""

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from capture import api
from capture.adapters.guarded import attempt
from capture.core import clock

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_IGNORED_SUFFIXES = (".pyc", ".pyo")

# The paths written (absolute path -> existed before the first write) by the tool call watched in this context.
_writes: ContextVar[dict[str, bool] | None] = ContextVar("skillmine_tool_writes", default=None)
_hook_lock = threading.Lock()
_hook_installed = False


def _audit(event: str, args: tuple) -> None:
    if event != "open":
        return
    written = _writes.get()
    if written is None:
        return
    path, mode, flags = args
    if isinstance(path, int) or path is None:
        return
    if mode is not None:
        if not any(c in mode for c in "wax+"):
            return
    elif not (flags or 0) & _WRITE_FLAGS:
        return
    name = os.path.abspath(os.fsdecode(path))
    if name not in written and not name.endswith(_IGNORED_SUFFIXES) and "__pycache__" not in name:
        written[name] = os.path.exists(name)


def _install_hook() -> None:
    global _hook_installed
    if _hook_installed:  # every tool call passes here: no lock once installed
        return
    with _hook_lock:
        if not _hook_installed:
            sys.addaudithook(_audit)
            _hook_installed = True


class WriteWatch:
    """Collect into ``written`` (a new dict by default) the files opened for writing in this context between
    ``__enter__`` (which returns the dict) and ``__exit__``, as {absolute path: existed before}; nested watches collect
    apart. A slotted class, not a generator context manager: it wraps every tool call."""

    __slots__ = ("token", "written")

    def __init__(self, written: dict[str, bool] | None = None) -> None:
        self.written = {} if written is None else written
        self.token: Token | None = None

    def __enter__(self) -> dict[str, bool]:
        _install_hook()
        self.token = _writes.set(self.written)
        return self.written

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if self.token is not None:
            _writes.reset(self.token)
            self.token = None
        return False


def watch_writes(written: dict[str, bool] | None = None) -> WriteWatch:
    """A :class:`WriteWatch` (``with watch_writes() as written:``)."""
    return WriteWatch(written)


@contextmanager
def recorded_by_caller() -> Iterator[None]:
    """Files written inside the block are not detected: for a tool that records what it writes itself (with
    ``capture.record_file``), so that each file gets one ``file_gen``."""
    token = _writes.set(None)
    try:
        yield
    finally:
        _writes.reset(token)


def record_written_files(written: dict[str, bool], event_id: str | None, agent_name: str | None,
                         root: str | Path | None) -> int:
    """One ``file_gen`` per file still present after the tool returned (``create`` when it did not exist before its
    first write, else ``update``), linked to the tool call ``event_id``; returns how many were recorded."""
    count = 0
    for path, existed in written.items():
        if os.path.isfile(path):
            api.record_file(path, event_id=event_id, root=root, agent_name=agent_name,
                                operation="update" if existed else "create")
            count += 1
    return count


def human_input_resolution(answer: Any) -> str:
    """The ``approval_requested`` subtype of a human answer: an empty answer lets the agent go on (``approved``),
    ``exit`` stops it (``rejected``), anything else is the human's own text (``modified``)."""
    text = answer.strip() if isinstance(answer, str) else ""
    if not text:
        return "approved"
    return "rejected" if text.lower() == "exit" else "modified"


class HumanInput:
    """Around a human-input request: one ``approval_requested`` event when it ends, with the prompt, the answer (set
    ``answer`` inside the block) and the time the agent waited (``duration_ms`` and ``meta.wait_ms``); a request
    that raised is recorded as failed (``rejected``) and the exception propagates. Recording never raises."""

    __slots__ = ("agent_name", "answer", "mechanism", "prompt", "started")

    def __init__(self, agent_name: str | None, prompt: Any, mechanism: str) -> None:
        self.agent_name, self.prompt, self.mechanism = agent_name, prompt, mechanism
        self.answer: Any = None
        self.started: Any = None

    def __enter__(self) -> Self:
        self.started = clock.stamp()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
                 ) -> bool:
        attempt("human_input", self._record, exc)
        return False

    def _record(self, error: BaseException | None) -> None:
        wait_ms = clock.elapsed_ms(self.started, clock.stamp())
        meta = {"wait_ms": wait_ms, "mechanism": self.mechanism}
        if error is not None:
            api.record_event("approval_requested", "rejected", agent_name=self.agent_name,
                             inputs={"prompt": self.prompt}, status="failed", duration_ms=wait_ms,
                             error_message=f"{type(error).__name__}: {error}", meta=meta)
        else:
            api.record_event("approval_requested", human_input_resolution(self.answer), agent_name=self.agent_name,
                             inputs={"prompt": self.prompt}, outputs={"answer": self.answer}, duration_ms=wait_ms,
                             meta=meta)
