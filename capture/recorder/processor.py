"""The recorder: a cheap hot path in front of one background writer thread and a sink.

Hot path (the agent's thread): append one item, a tuple whose first field is its kind, to a bounded in-memory deque
(items: :mod:`capture.core.items`). Events, span completions and messages are plain tuples of raw values laid out
as that module's named tuples, with a :func:`~capture.core.clock.stamp` (``clock.hot_stamp``); nothing is encoded,
redacted or written on the caller's thread, except when the queue is full: then ``full_policy`` ``block`` waits up to
:data:`BLOCK_WAIT_S` for room, and the item that still finds none is handed to :meth:`Sink.spill
<capture.sinks.base.Sink.spill>` on the caller's thread (the store sink builds its rows and appends them to the spool
there).

Writer (one daemon thread): every ``flush_interval_s``, or as soon as ``batch_size`` items are queued, it drains
the deque in batches and hands each to the sink (:class:`capture.sinks.store_sink.StoreSink` unless another is
given), which owns rows, encoding, the spool, back-off and the classification of refused data. The store sink is
imported and built on the writer thread, so importing ``capture`` loads no SQLAlchemy.

Exit: ``atexit`` and a chained SIGTERM handler flush everything queued (to the database or the spool) before the
process ends; a forked child starts with an empty queue, its own writer and its own sink state. Nothing here ever
raises into the caller: failures are counted in :meth:`Recorder.stats` and logged once per kind.
"""

import atexit
import logging
import os
import random
import signal
import threading
import time
import weakref
from collections import deque
from datetime import datetime
from functools import lru_cache
from typing import Any

from capture.core import clock
from capture.core.context import DEFAULT_SESSION_ID, RunState, SpanState
from capture.core.items import EDGE, END, EVENT, FLUSH, IDS, MESSAGE, NODE, RUN
from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings
from capture.core.vocabulary import NEVER_SAMPLED, normalise_event
from capture.sinks.base import Sink, WriteResult

log = logging.getLogger("capture.recorder")

BLOCK_WAIT_S = 0.05
EXIT_FLUSH_TIMEOUT_S = 10.0


@lru_cache(maxsize=256)
def _never_sampled(event_type: str) -> bool:
    try:
        return normalise_event(event_type, strict=False).event_type in NEVER_SAMPLED
    except ValueError:
        return True


class Recorder:
    """One per process (see :func:`capture.api.configure`); thread-safe.

    ``sink`` is where batches go; by default a :class:`~capture.sinks.store_sink.StoreSink` on
    ``settings.database_url``, built on first use (normally on the writer thread).
    """

    def __init__(self, settings: CaptureSettings | None = None, *, sink: Sink | None = None,
                 install_exit_handlers: bool = True) -> None:
        self.settings = settings or CaptureSettings.from_env()
        self.enabled = bool(self.settings.enabled)
        self._q: deque[tuple] = deque()
        self._limit = int(self.settings.queue_size)
        self._batch = int(self.settings.batch_size)
        self._wake_depth = self._batch - 1  # put() wakes the writer when its append makes a full batch
        # Below this depth an append needs no check at all (no full queue, no batch to announce): the hot path.
        self._quiet_depth = min(self._wake_depth, self._limit)
        self._sample_rate = float(self.settings.sample_rate)
        self.sampling = self._sample_rate < 1.0  # callers skip sampled_out() entirely when False
        # Built here so that bad patterns fail configure() (capture then runs disabled); every sink masks with it.
        self.redactor = Redactor(self.settings.redact_patterns)
        self._sink = sink
        self._sink_lock = threading.Lock()
        self._wake = threading.Event()
        self._woken = False
        self._stopping = False
        self._closed = False
        self._stats_lock = threading.Lock()
        self._counts = {"dequeued": 0, "written": 0, "spooled": 0, "sampled_out": 0, "caller_spilled": 0,
                        "dropped": 0}
        self.error = Failures()  # shared with the sink, so the sink holds no reference back to the recorder
        self._implicit: RunState | None = None
        self._implicit_lock = threading.Lock()
        self.open_spans: dict[str, SpanState] = {}
        self._thread: threading.Thread | None = None
        self._previous_sigterm: Any = None
        if self.enabled:
            self._start_thread()
            ref = weakref.ref(self)
            os.register_at_fork(before=_before_fork_hook(ref), after_in_child=_after_fork_hook(ref))
            if install_exit_handlers:
                atexit.register(self.close)
                self._install_sigterm()

    # -- hot path -------------------------------------------------------------------------------------------

    def put(self, item: tuple) -> None:
        """Enqueue one item (kind first; the hot path). :meth:`event`, :meth:`end_span` and :meth:`message` inline
        its quiet case: a Python call is a large share of an event's cost."""
        q = self._q
        if len(q) < self._quiet_depth:
            q.append(item)
        else:
            self._put_checked(item)

    def _put_checked(self, item: tuple) -> None:
        """Enqueue at a depth where the queue may be full or a batch due: overflow, or wake the writer."""
        q = self._q
        depth = len(q)
        if depth >= self._limit:
            self._overflow(item)
            return
        q.append(item)
        if depth >= self._wake_depth and not self._woken:
            self._woken = True
            self._wake.set()

    def sampled_out(self, event_type: str) -> bool:
        """Should this event be dropped by sampling? (never ``agent_call``, ``handoff``, ``error``)."""
        if self._sample_rate >= 1.0 or _never_sampled(event_type):
            return False
        if random.random() < self._sample_rate:
            return False
        with self._stats_lock:
            self._counts["sampled_out"] += 1
        return True

    def _overflow(self, item: tuple) -> None:
        """The queue is full: wait a little for room (``block``), else spill the item on this thread."""
        if self.settings.full_policy == "block":
            deadline = time.monotonic() + BLOCK_WAIT_S
            self._wake.set()
            while time.monotonic() < deadline:
                time.sleep(0.001)
                if len(self._q) < self._limit:
                    self._q.append(item)
                    return
        try:
            result = self.sink().spill([item], newer=True)
        except Exception:
            self._count("dropped", 1)
            raise
        self._tally(result)
        self._count("caller_spilled", 1)

    # -- building records (the context-var layer lives in capture.api) ----------------------------------------

    def implicit_run(self) -> RunState:
        """The run that events recorded outside any ``capture.run()`` belong to (one per process, lazily)."""
        if self._implicit is None:
            with self._implicit_lock:
                if self._implicit is None:
                    run = RunState(id=IDS.new(), session_id=DEFAULT_SESSION_ID)
                    self.put((RUN, {"id": run.id, "session_id": run.session_id, "status": "executing",
                                    "started_at": clock.now(), "meta": {"implicit": True, "pid": os.getpid()}}))
                    self._implicit = run
        return self._implicit

    def open_run(self, *, run_id: str | None = None, session_id: str | None = None, name: str | None = None,
                 mode: str | None = None, task: str | None = None, meta: dict | None = None,
                 parent_run_id: str | None = None, agent: str | None = None, model: str | None = None) -> RunState:
        """Record a run start (status ``executing``) and return its state."""
        run = RunState(id=run_id or IDS.new(), session_id=session_id or DEFAULT_SESSION_ID)
        row: dict[str, Any] = {"id": run.id, "session_id": run.session_id, "status": "executing",
                               "started_at": clock.now(), "meta": {**(meta or {}), **({"name": name} if name else {})}}
        for column, value in (("mode", mode), ("task_description", task), ("parent_run_id", parent_run_id),
                              ("agent", agent), ("model", model)):
            if value is not None:
                row[column] = value
        self.put((RUN, row))
        return run

    def close_run(self, run: RunState, *, status: str = "completed", meta: dict | None = None) -> None:
        """Record a run's end."""
        row: dict[str, Any] = {"id": run.id, "session_id": run.session_id, "status": status,
                               "completed_at": clock.now()}
        if meta is not None:
            row["meta"] = meta
        self.put((RUN, row))

    def open_node(self, run: RunState, name: str, *, agent: str | None = None, node_type: str = "agent",
                  node_id: str | None = None, meta: dict | None = None, parent_node_id: str | None = None,
                  depth: int = 0) -> tuple[str, dict[str, Any]]:
        """Record a DAG node start (status ``running``), linked by an edge from the previous sibling node."""
        nid = node_id or IDS.new()
        node_meta = {**(meta or {}), "id": name, "started_at": clock.now().isoformat()}
        self.put((NODE, {"id": nid, "run_id": run.id, "session_id": run.session_id, "node_type": node_type,
                         "agent": agent, "status": "running", "order_index": next(run.node_order),
                         "parent_node_id": parent_node_id, "depth": depth, "meta": node_meta}))
        previous = run.last_node.get(parent_node_id)
        run.last_node[parent_node_id] = nid
        if previous is not None:
            self.put((EDGE, {"from_node_id": previous, "to_node_id": nid, "dependency_type": "sequential"}))
        return nid, node_meta

    def close_node(self, run: RunState, node_id: str, *, status: str, meta: dict[str, Any]) -> None:
        """Record a node's end (``meta`` is the node's full, merged meta)."""
        self.put((NODE, {"id": node_id, "run_id": run.id, "session_id": run.session_id, "status": status,
                         "meta": {**meta, "completed_at": clock.now().isoformat()}}))

    def event(self, run: RunState, event_type: str, subtype: str | None, node_id: str | None,
              parent_event_id: str | None, depth: int, agent_name: str | None, inputs: Any, outputs: Any, meta: Any,
              status: str, error_message: str | None, duration_ms: float | None, at: int | datetime) -> str:
        """Enqueue one event, a tuple laid out as :data:`~capture.core.items.EventItem` (positional: it is the hot
        path); returns its id."""
        eid = f"{IDS.prefix}{next(IDS.counter):012x}"  # IDS.new(), inlined
        item = (EVENT, eid, run, node_id, parent_event_id, depth, next(run.order), event_type, subtype, agent_name,
                inputs, outputs, meta, status, error_message, duration_ms, at)
        q = self._q
        if len(q) < self._quiet_depth:
            q.append(item)
        else:
            self._put_checked(item)
        return eid

    def end_span(self, event_id: str, started: int | datetime, failed: bool, outputs: Any, meta: Any,
                 error_message: str | None) -> None:
        """Enqueue a span's completion (an :data:`~capture.core.items.EndItem`); merged into its start row when both
        are in one batch, else written as an update of the stored event."""
        item = (END, event_id, started, clock.hot_stamp(), failed, outputs, meta, error_message)
        q = self._q
        if len(q) < self._quiet_depth:
            q.append(item)
        else:
            self._put_checked(item)

    def message(self, run: RunState, node_id: str | None, parent_event_id: str | None, depth: int, sender: str,
                recipient: str | list[str] | None, content: Any, tokens: int | None, silent: bool, meta: Any) -> str:
        """Enqueue a message (a ``message`` event and its ``messages`` row), a tuple laid out as
        :data:`~capture.core.items.MessageItem`; returns the event id."""
        eid = f"{IDS.prefix}{next(IDS.counter):012x}"
        item = (MESSAGE, eid, run, node_id, parent_event_id, depth, next(run.order), sender, recipient, content,
                tokens, silent, meta, clock.hot_stamp())
        q = self._q
        if len(q) < self._quiet_depth:
            q.append(item)
        else:
            self._put_checked(item)
        return eid

    def artefact(self, kind: int, row: dict[str, Any]) -> None:
        """Enqueue a ``files`` (``FILE``) or ``cost_records`` (``COST``) row."""
        self.put((kind, row))

    # -- failures --------------------------------------------------------------------------------------------

    def _count(self, name: str, n: int) -> None:
        with self._stats_lock:
            self._counts[name] += n

    def _tally(self, result: WriteResult) -> None:
        with self._stats_lock:
            self._counts["written"] += result.written
            self._counts["spooled"] += result.spooled
            self._counts["dropped"] += result.dropped

    # -- the sink and the writer thread ----------------------------------------------------------------------

    def sink(self) -> Sink:
        """The sink, built on first use: importing it here keeps SQLAlchemy (and the OpenTelemetry SDK) out of
        ``import capture``."""
        if self._sink is None:
            with self._sink_lock:
                if self._sink is None:
                    from capture.sinks.configured import configured_sink

                    self._sink = configured_sink(self.settings, self.redactor, self.error)
        return self._sink

    def after_fork_in_child(self) -> None:
        """A forked child starts clean: the parent keeps (and writes) what was queued before the fork; the child
        gets its own queue, counters and writer thread, and the sink lets go of the parent's files and pool. Locks
        are made anew: the parent's writer may have held one at the fork (building the sink, counting a batch)."""
        self._q = deque()
        self._stats_lock = threading.Lock()
        self._sink_lock = threading.Lock()
        self._implicit_lock = threading.Lock()
        self.error.after_fork()
        if self._sink is not None:
            self._sink.after_fork()
        self._counts = dict.fromkeys(self._counts, 0)
        self._implicit = None
        if self.enabled and not self._closed:
            self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run_writer, name="skillmine-writer", daemon=True)
        self._thread.start()

    def _run_writer(self) -> None:
        interval = float(self.settings.flush_interval_s)
        try:
            self.sink()  # import and build the sink now, in the background, not when the first batch is due
        except Exception as exc:  # noqa: BLE001 - retried on the first batch
            self.error("writer", exc)
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            self._woken = False
            try:
                self._drain()
                if not self._q:
                    self.sink().idle()
            except Exception as exc:  # noqa: BLE001 - the writer must survive anything
                self.error("writer", exc)
            if self._stopping and not self._q:
                return

    def _drain(self) -> None:
        sink = self.sink()  # first, so that a sink that cannot be built leaves the queue untouched for a retry
        q = self._q
        while q:
            items: list[tuple] = []
            markers: list[threading.Event] = []
            while q and len(items) < self._batch:
                item = q.popleft()
                if item[0] == FLUSH:
                    markers.append(item[1])
                    break
                items.append(item)
            if items:
                self._count("dequeued", len(items))
                self._tally(sink.write(items))
            for marker in markers:
                marker.set()

    # -- flush, close, signals ------------------------------------------------------------------------------

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Block until everything enqueued so far is durable (database or spool)."""
        if not self.enabled:
            return True
        if self._thread is None or not self._thread.is_alive():
            if self._closed:
                self._drain_to_spool()
                return not self._q
            self._start_thread()
        marker = threading.Event()
        self._q.append((FLUSH, marker))
        self._wake.set()
        return marker.wait(timeout)

    def close(self, timeout: float = EXIT_FLUSH_TIMEOUT_S) -> None:
        """Flush, stop the writer and close the sink; what could not be written in time is spooled."""
        if self._closed or not self.enabled:
            return
        try:
            if self._implicit is not None:
                self.close_run(self._implicit)
            flushed = self.flush(timeout)
            self._stopping = True
            self._closed = True
            self._wake.set()
            if not flushed:
                self._drain_to_spool()
            if self._thread is not None:
                self._thread.join(timeout)
        except Exception as exc:  # noqa: BLE001
            self.error("close", exc)
        finally:
            if self._sink is not None:
                self._sink.close()
            atexit.unregister(self.close)
            self._restore_sigterm()

    def _drain_to_spool(self) -> None:
        """Last resort at exit when the writer is stuck: spill the queue from this thread."""
        items = []
        while self._q:
            item = self._q.popleft()
            if item[0] == FLUSH:
                item[1].set()
            else:
                items.append(item)
        if items:
            self._count("dequeued", len(items))
            self._tally(self.sink().spill(items, newer=False))

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        except (ValueError, OSError) as exc:
            self.error("install SIGTERM handler", exc)

    def _restore_sigterm(self) -> None:
        if self._previous_sigterm is None or threading.current_thread() is not threading.main_thread():
            return
        try:
            if signal.getsignal(signal.SIGTERM) == self._on_sigterm:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
        except (ValueError, OSError):
            pass
        self._previous_sigterm = None

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        """Make everything queued durable, then behave as before we were installed."""
        previous = self._previous_sigterm
        if previous in (signal.SIG_DFL, None):  # the process is about to die: close, then die the usual way
            self.close()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.flush(EXIT_FLUSH_TIMEOUT_S)  # the previous handler (or SIG_IGN) decides; capture keeps running
        if callable(previous):
            previous(signum, frame)

    # -- health ---------------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters and health, in recorder items (a span is two: start and completion).

        ``written`` went straight to the database, ``spooled`` to the spool (``replayed`` of those reached the
        database later, ``spool_pending`` have not yet), ``bad_records`` were refused row by row or lost
        (``dropped``: even the spool failed, e.g. disk full); ``capture_rate`` is the share of enqueued items not
        lost. Write latency, recent throughput and availability come from the sink, and so does every other figure
        the sink reports, under its own name (the spool's ``spool_torn_lines``, the OTLP sink's ``otlp_*``).
        """
        with self._stats_lock:
            counts = dict(self._counts)
        sink = self._sink.stats() if self._sink is not None else {}
        depth = sum(1 for item in list(self._q) if item[0] != FLUSH)
        enqueued = counts["dequeued"] + depth + counts["caller_spilled"]
        lost = sink.get("bad_records", 0) + counts["dropped"]
        return {
            **sink,  # the sink's own figures under their names (the OTLP sink's otlp_*, the spool's torn lines)
            "enabled": self.enabled, "queue_depth": depth, "enqueued": enqueued, "written": counts["written"],
            "spooled": counts["spooled"], "spool_pending": sink.get("spool_pending", 0),
            "replayed": sink.get("replayed", 0), "dropped": counts["dropped"], "sampled_out": counts["sampled_out"],
            "errors": self.error.count, "bad_records": lost,
            "write_latency_ms_p50": sink.get("write_latency_ms_p50"),
            "write_latency_ms_p95": sink.get("write_latency_ms_p95"),
            "events_last_minute": sink.get("events_last_minute", 0),
            "capture_rate": 1.0 if not enqueued else round((enqueued - lost) / enqueued, 6),
            "database_available": sink.get("database_available", True),
        }


class Failures:
    """Counts capture-internal failures and logs each kind once; called as ``failures(kind, exc)`` by the recorder
    and its sink (a separate object, so that the sink's callback keeps no reference cycle through the recorder)."""

    def __init__(self) -> None:
        self.count = 0
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def after_fork(self) -> None:
        """In a forked child: zero the count and take a fresh lock (the parent may have held it at the fork)."""
        self._lock = threading.Lock()
        self.count = 0

    def __call__(self, kind: str, exc: BaseException | str) -> None:
        with self._lock:
            self.count += 1
            first = kind not in self._warned
            self._warned.add(kind)
        if first:
            log.warning("skillmine capture: %s failed (counted in stats; the workflow is not affected): %s",
                        kind, exc)


def _before_fork_hook(ref: "weakref.ref[Recorder]") -> Any:
    def hook() -> None:
        """Build the sink before forking: a fork while the writer imports it would leave the child a half-imported
        module (and a held lock) for good."""
        recorder = ref()
        if recorder is not None and not recorder._closed:
            try:
                recorder.sink()
            except Exception as exc:  # noqa: BLE001 - never break the fork; the child retries on its first batch
                recorder.error("build the sink before fork", exc)
    return hook


def _after_fork_hook(ref: "weakref.ref[Recorder]") -> Any:
    def hook() -> None:
        recorder = ref()
        if recorder is not None:
            recorder.after_fork_in_child()
    return hook
