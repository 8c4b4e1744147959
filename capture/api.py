"""The manual capture API: runs, nodes, spans and point events for any code (AG2 instrumentation included).

Every function and context manager here is safe to call from a workflow: a failure inside capture is counted in
``stats()["errors"]`` and logged once as a warning, never raised. Exceptions raised by the workflow itself inside a
``run``/``node``/``span`` block are recorded (status ``failed``) and propagate unchanged.

Nesting follows the context (see :mod:`capture.core.context`): a span's parent is the innermost open span of the
current context unless ``parent_event_id`` names one; events outside any ``run()`` go to one implicit run per
process.
"""

import logging
import threading
from contextvars import Token
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from capture.core import clock
from capture.core.clock import stamp
from capture.core.context import (
    RunState,
    SpanState,
    current_node_id,
    current_node_var,
    current_run_id,
    current_run_var,
    current_span_id,
    current_span_var,
)
from capture.core.items import COST, FILE
from capture.core.settings import CaptureSettings
from capture.recorder.processor import Recorder

log = logging.getLogger("capture")

_recorder: Recorder | None = None
_lock = threading.Lock()
_run_notes: dict[str, dict[str, Any]] = {}  # run id -> meta added by annotate_run, merged when the run closes
_notes_lock = threading.Lock()


def configure(settings: CaptureSettings | None = None, **overrides: Any) -> Recorder:
    """(Re)create the process recorder from ``settings`` (default: the environment) plus ``overrides``.

    Invalid settings do not raise: they are logged and capture is switched off (``stats()["errors"] == 1``).
    """
    global _recorder
    with _lock:
        previous, _recorder = _recorder, None
        if previous is not None:
            previous.close()
        try:
            base = settings if settings is not None else CaptureSettings.from_env()
            chosen = base.with_overrides(**overrides) if overrides else base
            _recorder = Recorder(chosen)
        except Exception as exc:  # noqa: BLE001 - capture must never stop the workflow
            log.warning("skillmine capture disabled: invalid configuration: %s", exc)
            _recorder = Recorder(CaptureSettings(enabled=False, database_url="sqlite://"))
            _recorder.error("configure", exc)
        return _recorder


def shutdown(timeout: float = 10.0) -> None:
    """Flush and stop the process recorder (the next capture call creates a fresh one from the environment)."""
    global _recorder
    with _lock:
        previous, _recorder = _recorder, None
    if previous is not None:
        previous.close(timeout)


def get_recorder() -> Recorder:
    """The process recorder, created from the environment on first use."""
    recorder = _recorder
    if recorder is None:
        with _lock:
            recorder = _recorder
        if recorder is None:
            return configure()
    return recorder


def _resolve(parent_event_id: str | None, recorder: Recorder) -> tuple[RunState, str | None, str | None, int]:
    """(run, node id, parent event id, depth) for a new event under the explicit or current parent."""
    parent: SpanState | None
    if parent_event_id is not None:
        parent = recorder.open_spans.get(parent_event_id)
        if parent is None:
            current = current_span_var.get()
            run = current.run if current is not None else (current_run_var.get() or recorder.implicit_run())
            depth = current.depth + 1 if current is not None else 1
            return run, current_node_id(), parent_event_id, depth
    else:
        parent = current_span_var.get()
    if parent is not None:
        node = current_node_var.get()
        return parent.run, node[0] if node is not None else parent.node_id, parent.id, parent.depth + 1
    run = current_run_var.get() or recorder.implicit_run()
    return run, current_node_id(), None, 0


class _Handle:
    """What run and node handles share: a failure mark and metadata added while they are open."""

    _failed: str | None
    _meta: dict[str, Any]

    def fail(self, message: str) -> None:
        """Mark it failed without raising."""
        self._failed = message

    def set_meta(self, **values: Any) -> None:
        """Add to its ``meta``."""
        self._meta.update(values)


class RunHandle(_Handle):
    """An open run: ``id``, ``session_id``; ``fail(message)`` and ``set_meta(**kw)`` before it closes."""

    def __init__(self, recorder: Recorder, kwargs: dict[str, Any]) -> None:
        self._recorder = recorder
        self._kwargs = kwargs
        self._state: RunState | None = None
        self._tokens: tuple[Token, Token, Token] | None = None
        self._failed: str | None = None
        self._meta: dict[str, Any] = dict(kwargs.get("meta") or {})
        self.id: str | None = None
        self.session_id: str | None = None

    def __enter__(self) -> Self:
        recorder = self._recorder
        if not recorder.enabled:
            return self
        try:
            outer = current_run_var.get()
            kwargs = dict(self._kwargs)
            if outer is not None:
                kwargs.setdefault("parent_run_id", outer.id)
                if kwargs.get("session_id") is None:
                    kwargs["session_id"] = outer.session_id
            self._state = recorder.open_run(**kwargs)
            self.id, self.session_id = self._state.id, self._state.session_id
            self._tokens = (current_run_var.set(self._state), current_node_var.set(None),
                            current_span_var.set(None))
        except Exception as exc:  # noqa: BLE001
            recorder.error("run start", exc)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._state is None:
            return
        try:
            failed = exc is not None or self._failed is not None
            meta = dict(self._meta)
            with _notes_lock:
                meta.update(_run_notes.pop(self._state.id, {}))
            if self._kwargs.get("name"):
                meta["name"] = self._kwargs["name"]
            if failed:
                meta["error"] = self._failed if exc is None else f"{type(exc).__name__}: {exc}"
            self._recorder.close_run(self._state, status="failed" if failed else "completed", meta=meta)
        except Exception as error:  # noqa: BLE001
            self._recorder.error("run end", error)
        _reset((current_run_var, current_node_var, current_span_var), self._tokens)


class NodeHandle(_Handle):
    """An open DAG node: ``id``; ``fail(message)`` and ``set_meta(**kw)`` before it closes."""

    def __init__(self, recorder: Recorder, name: str, kwargs: dict[str, Any]) -> None:
        self._recorder = recorder
        self._name = name
        self._kwargs = kwargs
        self._run: RunState | None = None
        self._meta: dict[str, Any] = {}
        self._token: Token | None = None
        self._failed: str | None = None
        self.id: str | None = None

    def __enter__(self) -> Self:
        recorder = self._recorder
        if not recorder.enabled:
            return self
        try:
            self._run = current_run_var.get() or recorder.implicit_run()
            outer = current_node_var.get()
            self.id, self._meta = recorder.open_node(
                self._run, self._name, parent_node_id=outer[0] if outer else None,
                depth=outer[1] + 1 if outer else 0, **self._kwargs)
            self._token = current_node_var.set((self.id, outer[1] + 1 if outer else 0))
        except Exception as exc:  # noqa: BLE001
            recorder.error("node start", exc)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._run is None or self.id is None:
            return
        try:
            failed = exc is not None or self._failed is not None
            if failed:
                self._meta["error"] = self._failed if exc is None else f"{type(exc).__name__}: {exc}"
            self._recorder.close_node(self._run, self.id, status="failed" if failed else "completed",
                                      meta=self._meta)
        except Exception as error:  # noqa: BLE001
            self._recorder.error("node end", error)
        _reset((current_node_var,), (self._token,) if self._token is not None else None)


class Span(SpanState):
    """An open call-like event (``agent_call``, ``llm_call``, ``tool_call``, ``code_exec``).

    ``id`` is ``None`` when the span was sampled out or capture is off (its children then attach to its parent).
    Entering and leaving never raise (a failure inside capture is counted). An entered span is its own
    :class:`~capture.core.context.SpanState` (the current span its children read), one object per span.
    """

    __slots__ = (
        "_agent",
        "_copies",
        "_event_type",
        "_failed",
        "_inputs",
        "_meta",
        "_meta_changed",
        "_outputs",
        "_parent",
        "_recorder",
        "_started",
        "_subtype",
        "_token",
    )

    def __init__(self, recorder: Recorder, event_type: str, agent_name: str | None, inputs: dict | None,
                 meta: dict | None, subtype_start: str, parent_event_id: str | None, copies: bool = True) -> None:
        self._recorder = recorder
        self._event_type = event_type
        self._agent = agent_name
        self._inputs = inputs
        self._meta = meta
        self._subtype = subtype_start
        self._parent = parent_event_id
        self._copies = copies  # False: the payloads were handed over (span(owned=True)), no copy needed
        self._token: Token | None = None
        self._outputs: dict | None = None
        self._meta_changed = False
        self._failed: str | None = None
        self.id: str | None = None
        self.run: RunState | None = None  # set once entered and recorded

    def __enter__(self) -> Self:
        recorder = self._recorder
        if not recorder.enabled or (recorder.sampling and recorder.sampled_out(self._event_type)):
            return self
        try:
            outer = current_span_var.get() if self._parent is None else None
            if outer is not None:  # _resolve's common case, inlined: a span inside a span
                node = current_node_var.get()
                run, parent, depth = outer.run, outer.id, outer.depth + 1
                node_id = node[0] if node is not None else outer.node_id
            else:
                run, node_id, parent, depth = _resolve(self._parent, recorder)
            inputs, meta = self._inputs, self._meta
            if self._copies:
                inputs, meta = _snapshot(inputs), _snapshot(meta)
            self._started = started = clock.hot_stamp()
            self.id = eid = recorder.event(run, self._event_type, self._subtype, node_id, parent, depth, self._agent,
                                           inputs, None, meta, "running", None, None, started)
            self.node_id, self.depth, self.run = node_id, depth, run
            recorder.open_spans[eid] = self
            self._token = current_span_var.set(self)
        except Exception as exc:  # noqa: BLE001
            recorder.error("span start", exc)
        return self

    def set_outputs(self, outputs: dict) -> None:
        """The span's outputs (recorded when it closes)."""
        self._outputs = outputs

    def set_meta(self, **values: Any) -> None:
        """Add to the span's ``meta`` (merged into the stored meta when it closes)."""
        self._meta = {**self._meta, **values} if self._meta else values
        self._meta_changed = True

    def fail(self, message: str) -> None:
        """Mark the span failed without raising."""
        self._failed = message

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.run is None:
            return
        recorder = self._recorder
        try:
            failed = exc is not None or self._failed is not None
            outputs = self._outputs
            recorder.end_span(self.id, self._started, failed, _snapshot(outputs) if self._copies else outputs,
                              self._meta if self._meta_changed else None,
                              (self._failed if exc is None else f"{type(exc).__name__}: {exc}") if failed else None)
            recorder.open_spans.pop(self.id, None)
        except Exception as error:  # noqa: BLE001
            recorder.error("span end", error)
        token = self._token
        if token is not None:
            try:
                current_span_var.reset(token)
            except ValueError:  # exited in another context than it was entered in
                _reset((current_span_var,), (token,))


def _snapshot(value: Any) -> Any:
    """A shallow copy of a dict or list payload: the caller may keep mutating it after the event is queued
    (AG2 appends to its message lists), and encoding happens later on the writer thread."""
    kind = type(value)
    return dict(value) if kind is dict else list(value) if kind is list else value


def _reset(variables: tuple, tokens: tuple | None) -> None:
    """Restore context variables; a token from another context (exited elsewhere) falls back to ``set``."""
    if tokens is None:
        return
    for variable, token in zip(variables, tokens):
        try:
            variable.reset(token)
        except ValueError:
            variable.set(token.old_value if token.old_value is not Token.MISSING else None)


def run(name: str | None = None, *, mode: str | None = None, task: str | None = None, run_id: str | None = None,
        session_id: str | None = None, meta: dict | None = None) -> RunHandle:
    """Open a ``workflow_runs`` row for the ``with`` block (status executing → completed / failed)."""
    return RunHandle(get_recorder(), {"name": name, "mode": mode, "task": task, "run_id": run_id,
                                      "session_id": session_id, "meta": meta})


def annotate_run(**values: Any) -> bool:
    """Add ``values`` to the ``meta`` of the run open in this context, written when its ``run()`` block closes
    (e.g. which skill steered a chat); ``False`` when no ``run()`` is open here (nothing is recorded then)."""
    run = current_run_var.get()
    if run is None:
        return False
    with _notes_lock:
        _run_notes.setdefault(run.id, {}).update(values)
    return True


def node(name: str, *, agent: str | None = None, node_type: str = "agent", node_id: str | None = None,
         meta: dict | None = None) -> NodeHandle:
    """Open a ``dag_nodes`` row in the current run for the ``with`` block (edge from the previous node)."""
    return NodeHandle(get_recorder(), name, {"agent": agent, "node_type": node_type, "node_id": node_id,
                                             "meta": meta})


def span(event_type: str, *, agent_name: str | None = None, inputs: dict | None = None, meta: dict | None = None,
         subtype_start: str = "start", parent_event_id: str | None = None, owned: bool = False) -> Span:
    """A call-like event around the ``with`` block, the current parent for events inside it.

    ``parent_event_id`` makes the parent explicit (for threads that did not inherit the context). Payloads are
    copied, since the caller may change them after they are queued; ``owned=True`` says the caller built them for
    capture and never touches them again (instrumentation code on its hot path), so they are not.
    """
    return Span(_recorder or get_recorder(), event_type, agent_name, inputs, meta, subtype_start, parent_event_id,
                not owned)


def record_event(event_type: str, subtype: str | None = None, *, agent_name: str | None = None,
                 inputs: Any = None, outputs: Any = None, meta: Any = None, status: str = "completed",
                 error_message: str | None = None, duration_ms: float | None = None,
                 parent_event_id: str | None = None, owned: bool = False) -> str | None:
    """A point event (handoff, message, file_gen, error, info, state_transition, approval_requested).

    Returns its id, or ``None`` when sampled out, capture is off or capture failed. ``owned``: as for :func:`span`.
    """
    recorder = _recorder or get_recorder()
    try:
        if not recorder.enabled or (recorder.sampling and recorder.sampled_out(event_type)):
            return None
        run_state, node_id, parent, depth = _resolve(parent_event_id, recorder)
        if not owned:
            inputs, outputs, meta = _snapshot(inputs), _snapshot(outputs), _snapshot(meta)
        return recorder.event(run_state, event_type, subtype, node_id, parent, depth, agent_name, inputs, outputs,
                              meta, status, error_message, duration_ms, clock.hot_stamp())
    except Exception as exc:  # noqa: BLE001
        recorder.error("record_event", exc)
        return None


def record_message(sender: str, recipient: str | None, content: Any, *, tokens: int | None = None,
                   silent: bool = False, meta: dict | None = None, owned: bool = False) -> str | None:
    """A ``message`` event (subtype ``send``, or ``broadcast`` when silent) plus its ``messages`` row. ``owned``: as
    for :func:`span`."""
    return _message(sender, recipient, content, tokens, silent, meta, owned)


def record_broadcast(sender: str, recipients: list[str], content: Any, *, tokens: int | None = None,
                     meta: dict | None = None, owned: bool = False) -> str | None:
    """One silent group fan-out: a single ``message``/``broadcast`` event whose ``inputs`` list the recipients,
    plus one ``messages`` row (``recipient``: the names joined with ", ", cut to the column's width;
    ``meta.recipients``: the full list). Recording one row per recipient instead multiplies a group chat's
    events by its size. ``owned``: as for :func:`span` (``recipients`` too is then kept as given)."""
    return _message(sender, recipients if owned else list(recipients), content, tokens, True, meta, owned)


def _message(sender: str, recipient: str | list[str] | None, content: Any, tokens: int | None,
             silent: bool, meta: dict | None, owned: bool) -> str | None:
    """Enqueue a message for :func:`record_message` / :func:`record_broadcast` (a list of recipients: a
    broadcast)."""
    recorder = _recorder or get_recorder()
    try:
        if not recorder.enabled or (recorder.sampling and recorder.sampled_out("message")):
            return None
        run_state, node_id, parent, depth = _resolve(None, recorder)
        if not owned:
            content, meta = _snapshot(content), _snapshot(meta)
        return recorder.message(run_state, node_id, parent, depth, sender, recipient, content, tokens, silent, meta)
    except Exception as exc:  # noqa: BLE001
        recorder.error("record_message", exc)
        return None


def record_file(path: str | Path, *, event_id: str | None = None, root: str | Path | None = None,
                agent_name: str | None = None, operation: str = "create") -> str | None:
    """A ``file_gen`` event (subtype create/update/delete) plus its ``files`` row; returns the event id.

    ``event_id`` names the event that produced the file (e.g. a ``code_exec``); it becomes the ``file_gen``
    event's parent (default: the current span). The ``files`` row links to the ``file_gen`` event. Size, sha256
    and type are computed on the writer thread.
    """
    recorder = get_recorder()
    try:
        if not recorder.enabled or recorder.sampled_out("file_gen"):
            return None
        from capture.core.files import file_id, stored_path

        run_state, node_id, parent, depth = _resolve(event_id, recorder)
        rel = stored_path(path, root)
        real = Path(path) if root is None or Path(path).is_absolute() else Path(root) / path
        gen_id = recorder.event(run_state, "file_gen", operation, node_id, parent, depth, agent_name,
                                {"path": rel}, None, None, "completed", None, None, stamp())
        recorder.artefact(FILE, {"id": file_id(run_state.id, rel), "run_id": run_state.id,
                                 "session_id": run_state.session_id, "event_id": gen_id, "node_id": node_id,
                                 "file_path": rel, "generating_agent": agent_name, "created_at": clock.now(),
                                 "real_path": str(real), "meta": {"operation": operation}})
        return gen_id
    except Exception as exc:  # noqa: BLE001
        recorder.error("record_file", exc)
        return None


def record_cost(*, agent_name: str | None, model: str | None, prompt_tokens: int, completion_tokens: int,
                cost_usd: float, event_id: str | None = None) -> None:
    """A ``cost_records`` row in the current run and node.

    The store keeps one cost row per ``event_id`` (replay safety), so link each cost to its own ``llm_call``.
    """
    recorder = _recorder or get_recorder()
    try:
        if not recorder.enabled:
            return
        run_state = current_run_var.get() or recorder.implicit_run()
        recorder.artefact(COST, {"run_id": run_state.id, "session_id": run_state.session_id,
                                 "node_id": current_node_id(), "event_id": event_id, "model": model,
                                 "agent_name": agent_name, "prompt_tokens": int(prompt_tokens),
                                 "completion_tokens": int(completion_tokens),
                                 "total_tokens": int(prompt_tokens) + int(completion_tokens),
                                 "cost_usd": float(cost_usd), "timestamp": clock.hot_stamp()})
    except Exception as exc:  # noqa: BLE001
        recorder.error("record_cost", exc)


def flush(timeout: float | None = 10.0) -> bool:
    """Block until everything recorded so far is durable (database or spool); ``False`` on timeout."""
    recorder = get_recorder()
    try:
        return recorder.flush(timeout)
    except Exception as exc:  # noqa: BLE001
        recorder.error("flush", exc)
        return False


def stats() -> dict[str, Any]:
    """Recorder health: queue_depth, enqueued, written, spooled, replayed, dropped, sampled_out, errors, ..."""
    recorder = get_recorder()
    try:
        return recorder.stats()
    except Exception as exc:  # noqa: BLE001
        recorder.error("stats", exc)
        return {"errors": 1}


__all__ = ["NodeHandle", "RunHandle", "Span", "configure", "current_node_id", "current_run_id", "current_span_id",
           "flush", "get_recorder", "node", "record_broadcast", "record_cost", "record_event", "record_file",
           "record_message", "run", "shutdown", "span", "stats"]
