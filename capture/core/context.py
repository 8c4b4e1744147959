"""Where am I? The current run, node and parent span, held in ContextVars.

ContextVars give the right nesting under ``asyncio``: every task created by ``asyncio.gather`` or
``create_task`` starts with a copy of its creator's context, so concurrent child spans each see the span that was
current when they were created, never each other.

Threads are different: a new ``threading.Thread`` (or a pool worker) starts with an EMPTY context, so spans opened
there would not know their run or parent. Wrap the callable with :func:`bind` (or run it inside
:func:`copy_context`) to carry the caller's run/node/span across, or pass ``parent_event_id=`` explicitly to
``capture.span`` / ``capture.record_event`` — an open span's id is enough to find its run, node and depth.

``execution_order`` comes from one counter per run (``itertools.count``: ``next()`` is atomic in CPython), so
events of a run are numbered uniquely even when threads and tasks record concurrently.
"""

import itertools
from collections.abc import Callable
from contextvars import ContextVar, copy_context
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

# The session of runs opened without one (the store creates its row on first use).
DEFAULT_SESSION_ID = "default"

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(eq=False)
class RunState:
    """A run open in this process: its ids and per-run counters."""

    id: str
    session_id: str
    order: Any = field(default_factory=lambda: itertools.count(1))
    node_order: Any = field(default_factory=lambda: itertools.count(0))
    last_node: dict[str | None, str] = field(default_factory=dict)


class SpanState:
    """An open span: what its children need to know (a plain slotted class: built on every span, so it must be
    cheaper than a frozen dataclass; treat it as read-only). ``capture.api.Span`` is one, so that a span needs no
    second object to be the current span."""

    __slots__ = ("depth", "id", "node_id", "run")

    def __init__(self, id: str, run: RunState, node_id: str | None, depth: int) -> None:
        self.id = id
        self.run = run
        self.node_id = node_id
        self.depth = depth


current_run_var: ContextVar[RunState | None] = ContextVar("skillmine_run", default=None)
current_node_var: ContextVar[tuple[str, int] | None] = ContextVar("skillmine_node", default=None)  # (id, depth)
current_span_var: ContextVar[SpanState | None] = ContextVar("skillmine_span", default=None)


def current_run_id() -> str | None:
    """The id of the run open in this context, if any."""
    run = current_run_var.get()
    return run.id if run is not None else None


def current_node_id() -> str | None:
    """The id of the DAG node open in this context, if any."""
    node = current_node_var.get()
    return node[0] if node is not None else None


def current_span_id() -> str | None:
    """The id of the innermost open span in this context, if any."""
    span = current_span_var.get()
    return span.id if span is not None else None


def bind(fn: Callable[P, R]) -> Callable[P, R]:
    """``fn`` wrapped to run in a copy of the caller's current context (for threads and executors)."""
    context = copy_context()

    def bound(*args: P.args, **kwargs: P.kwargs) -> R:
        return context.copy().run(fn, *args, **kwargs)

    bound.__wrapped__ = fn  # type: ignore[attr-defined]
    bound.__name__ = getattr(fn, "__name__", "bound")
    return bound


__all__ = [
    "RunState",
    "SpanState",
    "bind",
    "copy_context",
    "current_node_id",
    "current_node_var",
    "current_run_id",
    "current_run_var",
    "current_span_id",
    "current_span_var",
]
