"""The recorder: a cheap hot path in front of a background writer thread, a spool and the capture store.

Hot path (the agent's thread): append one ``(kind, fields)`` tuple to a bounded in-memory deque. Events, span
completions and messages travel as flat tuples with a raw timestamp (:func:`stamp`: ``time.time_ns()``, or the
simulated clock's datetime when one is active); their row dicts, datetimes and ``messages`` rows are built on the
writer thread. Nothing is encoded, redacted or written on the caller's thread.

Writer (one daemon thread): every ``flush_interval_s`` or ``batch_size`` items it drains the deque, coalesces an
event's start and its completion into one insert when both are in the batch, encodes payloads
(:func:`capture.core.payload.encode_payload`) and masks secrets (:mod:`capture.core.redaction`), then calls
:meth:`CaptureStore.write_batch`. A batch the database cannot take (down, locked, disk error) goes to the
:class:`~capture.sinks.spool.Spool`, which is replayed, oldest first, before anything newer is written once writes
succeed again. A :class:`~capture.store.records.BadRecord`, or a value the database refuses (integrity or data error),
costs only its own row: the rest of the batch is written.

Exit: ``atexit`` and a chained SIGTERM handler flush everything queued (to the database or the spool) before the
process ends. Nothing here ever raises into the caller: failures are counted in :meth:`Recorder.stats` and logged
once per kind.
"""

import atexit
import itertools
import logging
import os
import random
import signal
import threading
import time
import uuid
import weakref
from collections import deque
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from capture.core import clock
from capture.core.context import RunState, SpanState
from capture.core.payload import dumps, encode_payload
from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings
from capture.core.vocabulary import NEVER_SAMPLED, normalise_event
from capture.sinks.spool import BATCH_KEYS, Spool, batch_size
from capture.store.capture_store import DEFAULT_SESSION_ID, Batch, CaptureStore
from capture.store.db import StoreError
from capture.store.records import BadRecord, message_addressing

log = logging.getLogger("capture.recorder")

# Queue item kinds. EVENT, END and MESSAGE carry the tuples documented at Recorder.event/end_span/message; the
# others carry row dicts (column names of capture.models).
RUN, NODE, EDGE, EVENT, END, FILE, MESSAGE, COST, FLUSH = range(9)
_FINISHED = frozenset({"completed", "failed"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_PAYLOAD_FIELDS = ("inputs", "outputs", "meta")
_TEXT_FIELDS = ("error_message", "content", "task_description")
# DB-API 2.0 exception names, shared by SQLAlchemy's wrappers and every driver's own exceptions.
_REFUSAL_NAMES = frozenset({"IntegrityError", "DataError"})
_UNAVAILABLE_NAMES = frozenset({"OperationalError", "InterfaceError", "DatabaseError", "InternalError",
                                "ProgrammingError", "NotSupportedError", "SQLAlchemyError"})


def _refused(exc: BaseException) -> bool:
    """Was it the data, not the database? Then a retry row by row isolates the bad rows (a value the database
    refuses, or one that trips the store's own code). The database being unreachable, locked, out of disk or not
    migrated keeps the whole batch in the spool for later."""
    if isinstance(exc, BadRecord):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    if names & _REFUSAL_NAMES:
        return True
    return not (isinstance(exc, (OSError, StoreError)) or names & _UNAVAILABLE_NAMES)


BLOCK_WAIT_S = 0.05
RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
EXIT_FLUSH_TIMEOUT_S = 10.0


@lru_cache(maxsize=256)
def _never_sampled(event_type: str) -> bool:
    try:
        return normalise_event(event_type, strict=False).event_type in NEVER_SAMPLED
    except ValueError:
        return True


class _Ids:
    """UUID-shaped ids, unique per process, ~10x cheaper than ``uuid.uuid4()``: a random prefix + a counter."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        raw = uuid.uuid4().hex
        self.prefix = f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-{'89ab'[int(raw[16], 16) % 4]}{raw[17:20]}-"
        self.counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):012x}"


IDS = _Ids()


def new_id() -> str:
    """A fresh UUID-shaped id for an event, node or run."""
    return IDS.new()


# The real clock is the common case; reading the clock module's two slots directly avoids a datetime per event.
_REAL_NOW = clock._real_now
_CLOCK_VAR = clock._clock
_PROCESS_CLOCK = clock._process_clock


def stamp() -> int | datetime:
    """Now, cheaply: ``time.time_ns()`` on the real clock, the simulated clock's datetime when one is active
    (see :mod:`capture.core.clock`); :func:`as_datetime` turns either into a UTC datetime on the writer thread."""
    if _CLOCK_VAR.get() is _REAL_NOW and _PROCESS_CLOCK[0] is _REAL_NOW:
        return time.time_ns()
    return clock.now()


def as_datetime(value: int | datetime) -> datetime:
    """A :func:`stamp` as a timezone-aware UTC datetime (microsecond precision, like ``datetime.now``)."""
    return _EPOCH + timedelta(microseconds=value // 1000) if type(value) is int else value


def elapsed_ms(started: int | datetime, ended: int | datetime) -> int:
    """Whole milliseconds between two stamps."""
    if type(started) is int and type(ended) is int:
        return (ended - started) // 1_000_000
    return int((as_datetime(ended) - as_datetime(started)).total_seconds() * 1000)


class Recorder:
    """One per process (see :func:`capture.api.configure`); thread-safe."""

    def __init__(self, settings: CaptureSettings | None = None, *, store: CaptureStore | None = None,
                 install_exit_handlers: bool = True) -> None:
        self.settings = settings or CaptureSettings.from_env()
        self.enabled = bool(self.settings.enabled)
        self._q: deque[tuple[int, Any]] = deque()
        self._limit = int(self.settings.queue_size)
        self._batch = int(self.settings.batch_size)
        self._wake_depth = self._batch - 1  # put() wakes the writer when its append makes a full batch
        self._sample_rate = float(self.settings.sample_rate)
        self.sampling = self._sample_rate < 1.0  # callers skip sampled_out() entirely when False
        self._redactor = Redactor(self.settings.redact_patterns)
        self._store = store
        self._owns_store = store is None
        self._spool = Spool(self.settings.spool_dir)
        self._wake = threading.Event()
        self._woken = False
        self._stopping = False
        self._closed = False
        self._stats_lock = threading.Lock()
        self._counts = {"dequeued": 0, "written": 0, "spooled": 0, "replayed": 0, "sampled_out": 0, "errors": 0,
                        "bad_records": 0, "caller_spilled": 0, "dropped": 0}
        self._latencies: deque[float] = deque(maxlen=1000)
        self._recent: deque[tuple[float, int]] = deque()
        self._warned: set[str] = set()
        self._down_until = 0.0
        self._failures = 0
        self._replay_due = True
        self._spill_newer = False
        self._implicit: RunState | None = None
        self._implicit_lock = threading.Lock()
        self.open_spans: dict[str, SpanState] = {}
        self._thread: threading.Thread | None = None
        self._previous_sigterm: Any = None
        if self.enabled:
            self._start_thread()
            os.register_at_fork(after_in_child=_after_fork_hook(weakref.ref(self)))
            if install_exit_handlers:
                atexit.register(self.close)
                self._install_sigterm()

    # -- hot path -------------------------------------------------------------------------------------------

    def put(self, kind: int, row: Any) -> None:
        """Enqueue one record (the hot path)."""
        q = self._q
        depth = len(q)
        if depth >= self._limit:
            self._overflow(kind, row)
            return
        q.append((kind, row))
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

    def _overflow(self, kind: int, row: Any) -> None:
        if self.settings.full_policy == "block":
            deadline = time.monotonic() + BLOCK_WAIT_S
            self._wake.set()
            while time.monotonic() < deadline:
                time.sleep(0.001)
                if len(self._q) < self._limit:
                    self._q.append((kind, row))
                    return
        try:
            batch = self._prepare([(kind, row)])
            batch["_items"] = 1
            self._spill_newer = True
            count = self._spool.append(batch)
        except Exception:
            self._count("dropped", 1)
            raise
        with self._stats_lock:
            self._counts["caller_spilled"] += 1
            self._counts["spooled"] += count

    # -- explicit recording API (the context-var layer lives in capture.api) -----------------------------------

    def implicit_run(self) -> RunState:
        """The run that events recorded outside any ``capture.run()`` belong to (one per process, lazily)."""
        if self._implicit is None:
            with self._implicit_lock:
                if self._implicit is None:
                    run = RunState(id=new_id(), session_id=DEFAULT_SESSION_ID)
                    now = clock.now()
                    self.put(RUN, {"id": run.id, "session_id": run.session_id, "status": "executing",
                                   "started_at": now, "meta": {"implicit": True, "pid": os.getpid()}})
                    self._implicit = run
        return self._implicit

    def open_run(self, *, run_id: str | None = None, session_id: str | None = None, name: str | None = None,
                 mode: str | None = None, task: str | None = None, meta: dict | None = None,
                 parent_run_id: str | None = None, agent: str | None = None, model: str | None = None) -> RunState:
        """Record a run start (status ``executing``) and return its state."""
        run = RunState(id=run_id or new_id(), session_id=session_id or DEFAULT_SESSION_ID)
        row: dict[str, Any] = {"id": run.id, "session_id": run.session_id, "status": "executing",
                               "started_at": clock.now(), "meta": {**(meta or {}), **({"name": name} if name else {})}}
        for column, value in (("mode", mode), ("task_description", task), ("parent_run_id", parent_run_id),
                              ("agent", agent), ("model", model)):
            if value is not None:
                row[column] = value
        self.put(RUN, row)
        return run

    def close_run(self, run: RunState, *, status: str = "completed", meta: dict | None = None) -> None:
        """Record a run's end."""
        row: dict[str, Any] = {"id": run.id, "session_id": run.session_id, "status": status,
                               "completed_at": clock.now()}
        if meta is not None:
            row["meta"] = meta
        self.put(RUN, row)

    def open_node(self, run: RunState, name: str, *, agent: str | None = None, node_type: str = "agent",
                  node_id: str | None = None, meta: dict | None = None, parent_node_id: str | None = None,
                  depth: int = 0) -> tuple[str, dict[str, Any]]:
        """Record a DAG node start (status ``running``), linked by an edge from the previous sibling node."""
        nid = node_id or new_id()
        node_meta = {**(meta or {}), "id": name, "started_at": clock.now().isoformat()}
        self.put(NODE, {"id": nid, "run_id": run.id, "session_id": run.session_id, "node_type": node_type,
                        "agent": agent, "status": "running", "order_index": next(run.node_order),
                        "parent_node_id": parent_node_id, "depth": depth, "meta": node_meta})
        previous = run.last_node.get(parent_node_id)
        run.last_node[parent_node_id] = nid
        if previous is not None:
            self.put(EDGE, {"from_node_id": previous, "to_node_id": nid, "dependency_type": "sequential"})
        return nid, node_meta

    def close_node(self, run: RunState, node_id: str, *, status: str, meta: dict[str, Any]) -> None:
        """Record a node's end (``meta`` is the node's full, merged meta)."""
        self.put(NODE, {"id": node_id, "run_id": run.id, "session_id": run.session_id, "status": status,
                        "meta": {**meta, "completed_at": clock.now().isoformat()}})

    def event(self, run: RunState, event_type: str, subtype: str | None, node_id: str | None,
              parent_event_id: str | None, depth: int, agent_name: str | None, inputs: Any, outputs: Any, meta: Any,
              status: str, error_message: str | None, duration_ms: float | None, at: int | datetime) -> str:
        """Enqueue one event (positional, it is the hot path); returns its new id.

        ``at`` is a :func:`stamp`: the start of a running span, else the event's end (a finished event with a
        ``duration_ms`` began that much earlier). The row is built by :meth:`_event_row` on the writer thread.
        """
        eid = IDS.new()
        self.put(EVENT, (eid, run, node_id, parent_event_id, depth, next(run.order), event_type, subtype, agent_name,
                         inputs, outputs, meta, status, error_message, duration_ms, at))
        return eid

    def end_span(self, event_id: str, started: int | datetime, failed: bool, outputs: Any, meta: Any,
                 error_message: str | None) -> None:
        """Enqueue a span's completion (``outputs``/``meta`` ``None``: unchanged); merged into its start row when
        both are in one batch, else written as an update of the stored event."""
        self.put(END, (event_id, started, stamp(), failed, outputs, meta, error_message))

    def message(self, run: RunState, node_id: str | None, parent_event_id: str | None, depth: int, sender: str,
                recipient: str | list[str] | None, content: Any, tokens: int | None, silent: bool, meta: Any) -> str:
        """Enqueue a ``message`` event and its ``messages`` row as one item; returns the event id.

        A list of recipients is one silent group fan-out (a ``broadcast``, see :func:`_message_rows`)."""
        eid = IDS.new()
        self.put(MESSAGE, (eid, run, node_id, parent_event_id, depth, next(run.order), sender, recipient, content,
                           tokens, silent, meta, stamp()))
        return eid

    def artefact(self, kind: int, row: dict[str, Any]) -> None:
        """Enqueue a ``files`` (``FILE``) or ``cost_records`` (``COST``) row."""
        self.put(kind, row)

    # -- failures --------------------------------------------------------------------------------------------

    def _count(self, name: str, n: int) -> None:
        with self._stats_lock:
            self._counts[name] += n

    def error(self, kind: str, exc: BaseException | str) -> None:
        """Count a capture-internal failure and log it once per kind."""
        with self._stats_lock:
            self._counts["errors"] += 1
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("skillmine capture: %s failed (counted in stats; the workflow is not affected): %s",
                        kind, exc)

    # -- writer thread --------------------------------------------------------------------------------------

    def after_fork_in_child(self) -> None:
        """A forked child starts clean: the parent keeps (and writes) what was queued before the fork; the child
        gets its own spool file, a fresh database connection pool and its own writer thread."""
        self._q = deque()
        self._spool.forget()
        self._spool = Spool(self.settings.spool_dir)
        if self._store is not None:
            self._store.engine.dispose(close=False)
        with self._stats_lock:
            self._counts = dict.fromkeys(self._counts, 0)
        self._implicit = None
        if self.enabled and not self._closed:
            self._start_thread()

    def _start_thread(self) -> None:
        self._thread = threading.Thread(target=self._run_writer, name="skillmine-writer", daemon=True)
        self._thread.start()

    def _run_writer(self) -> None:
        interval = float(self.settings.flush_interval_s)
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            self._woken = False
            try:
                self._drain()
                if not self._q and (self._replay_due or self._spool.pending_records) \
                        and time.monotonic() >= self._down_until:
                    self._write_pending_spool()
            except Exception as exc:  # noqa: BLE001 - the writer must survive anything
                self.error("writer", exc)
            if self._stopping and not self._q:
                return

    def _drain(self) -> None:
        q = self._q
        while q:
            items: list[tuple[int, Any]] = []
            markers: list[threading.Event] = []
            while q and len(items) < self._batch:
                kind, row = q.popleft()
                if kind == FLUSH:
                    markers.append(row)
                    break
                items.append((kind, row))
            if items:
                with self._stats_lock:
                    self._counts["dequeued"] += len(items)
                self._write_items(items)
            for marker in markers:
                marker.set()

    def _write_items(self, items: list[tuple[int, Any]]) -> None:
        try:
            batch = self._prepare(items)
        except Exception as exc:  # noqa: BLE001 - a capture bug must not cost the batch silently
            self.error("prepare", exc)
            self._count("dropped", len(items))
            return
        batch["_items"] = len(items)
        self._durable_write(batch)

    def _durable_write(self, batch: dict[str, Any]) -> None:
        """Write to the database, or spool; the spool is always replayed before anything newer is written."""
        n = batch_size(batch)
        # Spooled batches the writer could not write are older than the queue: replay them first. Records a caller
        # spilled because the queue was full are newer than the queue: they wait until the queue is drained.
        older = not self._spill_newer
        if older and time.monotonic() >= self._down_until and (self._spool.pending_records or self._replay_due):
            self._write_pending_spool()
        if time.monotonic() < self._down_until or (older and self._spool.pending_records):
            self._spool_batch(batch, n)
            return
        try:
            self._store_write(batch)
        except Exception as exc:  # noqa: BLE001 - DB down, locked, disk error: keep it in the spool
            self._mark_down(exc)
            if isinstance(exc, _PartialWrite):
                batch = {**exc.rest, "_items": n}
            self._spool_batch(batch, n)
            return
        self._failures = 0
        with self._stats_lock:
            self._counts["written"] += n

    def _spool_batch(self, batch: dict[str, Any], n: int) -> None:
        try:
            spooled = self._spool.append(batch)
        except Exception as exc:  # noqa: BLE001 - disk full too: nothing left to do but count it
            self.error("spool", exc)
            self._count("dropped", n)
            return
        with self._stats_lock:
            self._counts["spooled"] += spooled

    def _write_pending_spool(self) -> None:
        try:
            replayed = self._spool.replay(self._store_write)
        except Exception as exc:  # noqa: BLE001 - still down: try again after a back-off
            self._mark_down(exc)
            return
        self._replay_due = False
        self._spill_newer = False
        self._failures = 0
        self._down_until = 0.0
        if replayed:
            with self._stats_lock:
                self._counts["replayed"] += replayed

    def _mark_down(self, exc: BaseException) -> None:
        self._failures += 1
        self._down_until = time.monotonic() + RETRY_BACKOFF_S[min(self._failures, len(RETRY_BACKOFF_S)) - 1]
        self._replay_due = True
        self.error("database write", exc)
        if self._owns_store and self._store is not None and self._failures >= 3:
            store, self._store = self._store, None  # reopen from scratch on the next attempt
            try:
                store.close()
            except Exception as close_exc:  # noqa: BLE001 - a dead pool may not close cleanly
                self.error("close a failing store", close_exc)

    def _open_store(self) -> CaptureStore:
        if self._store is None:
            from capture.store.db import SchemaOutOfDate

            url = self.settings.database_url
            try:
                self._store = CaptureStore.open(url, max_payload_bytes=self.settings.max_payload_bytes)
            except SchemaOutOfDate:
                from capture.store.db import current_revision, make_engine
                from capture.store.migrate import upgrade

                engine = make_engine(url)
                try:
                    empty = current_revision(engine) is None
                finally:
                    engine.dispose()
                if not empty:
                    raise
                upgrade(url)
                self._store = CaptureStore.open(url, max_payload_bytes=self.settings.max_payload_bytes)
        return self._store

    def _store_write(self, batch: dict[str, Any]) -> None:
        """Write one prepared batch; a BadRecord costs only its own row(s)."""
        store = self._open_store()
        started = time.perf_counter()
        rows = {k: batch.get(k) or [] for k in BATCH_KEYS}
        try:
            store.write_batch(Batch(**rows))
        except Exception as exc:
            if not _refused(exc):
                raise
            self._write_one_by_one(store, rows)
        self._latencies.append((time.perf_counter() - started) * 1000)
        events = len(rows["events"])
        if events:
            now = time.monotonic()
            self._recent.append((now, events))
            while self._recent and self._recent[0][0] < now - 60:
                self._recent.popleft()

    def _write_one_by_one(self, store: CaptureStore, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Slow path after a rejected batch: each row in its own transaction, in dependency order.

        If the database fails midway, only the rows not yet written propagate (to the spool) with the error.
        """
        for position, key in enumerate(BATCH_KEYS):
            for index, row in enumerate(rows[key]):
                try:
                    store.write_batch(Batch(**{key: [row]}))
                except Exception as exc:
                    if _refused(exc):
                        self._count("bad_records", 1)
                        self.error("bad record", exc)
                        continue
                    rest = {k: rows[k] for k in BATCH_KEYS[position + 1:]}
                    rest[key] = rows[key][index:]
                    raise _PartialWrite(rest) from exc

    # -- preparation on the writer thread: coalesce, encode, redact ------------------------------------------

    def _prepare(self, items: list[tuple[int, Any]]) -> dict[str, Any]:
        runs: dict[str, dict[str, Any]] = {}
        nodes: dict[str, dict[str, Any]] = {}
        events: dict[str, dict[str, Any]] = {}
        updates: dict[str, dict[str, Any]] = {}
        lists: dict[int, list[dict[str, Any]]] = {EDGE: [], FILE: [], MESSAGE: [], COST: []}
        messages = lists[MESSAGE]
        for kind, row in items:
            if kind == EVENT:
                events[row[0]] = _event_row(row)
            elif kind == END:
                changes = _end_changes(row)
                target = events.get(row[0])
                (target if target is not None else updates.setdefault(row[0], {})).update(changes)
            elif kind == MESSAGE:
                event, message = _message_rows(row)
                events[event["id"]] = event
                messages.append(message)
            elif kind == RUN:
                runs.setdefault(row["id"], {}).update(row)
            elif kind == NODE:
                nodes.setdefault(row["id"], {}).update(row)
            elif kind == FILE:
                lists[FILE].append(self._file_row(row))
            else:
                lists[kind].append(row)
        clean = self._clean
        return {"runs": [clean(r) for r in runs.values()], "nodes": [clean(r) for r in nodes.values()],
                "edges": lists[EDGE], "events": [clean(r) for r in events.values()],
                "event_updates": [clean(r) for r in updates.values()], "files": [clean(r) for r in lists[FILE]],
                "messages": [clean(r) for r in lists[MESSAGE]], "costs": lists[COST]}

    def _clean(self, row: dict[str, Any]) -> dict[str, Any]:
        """Encode and redact a row in place (rows on the queue belong to the recorder)."""
        redact = self._redactor
        limit = self.settings.max_payload_bytes
        for field in _PAYLOAD_FIELDS:
            value = row.get(field)
            if value is not None:
                fast = redact.flat(value, limit // 4) if type(value) is dict else None
                # Redact before encoding too, so truncation can never cut a secret into an unrecognisable piece.
                row[field] = fast if fast is not None else redact.value(_encode(redact.value(value), limit))
        for field in _TEXT_FIELDS:
            value = row.get(field)
            if value is not None:
                row[field] = redact.text(value if isinstance(value, str) else dumps(_encode(value, limit)))
        return row

    @staticmethod
    def _file_row(row: dict[str, Any]) -> dict[str, Any]:
        from capture.core.files import classify_file, sha256_file

        out = dict(row)
        real = Path(out.pop("real_path"))
        if out.get("file_type") is None:
            out["file_type"] = classify_file(out["file_path"])
        if real.is_file():
            out["size_bytes"] = real.stat().st_size
            out["content_hash"] = sha256_file(real)
        else:
            out["meta"] = {**(out.get("meta") or {}), "missing_at_capture": True}
        return out

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
        """Flush, stop the writer and release the store; what could not be written in time is spooled."""
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
            self._spool.close()
            if self._owns_store and self._store is not None:
                self._store.close()
            atexit.unregister(self.close)
            self._restore_sigterm()

    def _drain_to_spool(self) -> None:
        """Last resort at exit when the writer is stuck: spool the queue from this thread."""
        items = []
        while self._q:
            kind, row = self._q.popleft()
            if kind == FLUSH:
                row.set()
            else:
                items.append((kind, row))
        if items:
            batch = self._prepare(items)
            batch["_items"] = len(items)
            self._spool_batch(batch, len(items))
            with self._stats_lock:
                self._counts["dequeued"] += len(items)

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
        database later, ``spool_pending`` have not yet), ``bad_records`` were refused row by row, ``dropped`` were
        lost because even the spool failed (disk full); ``capture_rate`` is the share of enqueued items not lost.
        """
        with self._stats_lock:
            counts = dict(self._counts)
        depth = sum(1 for kind, _ in list(self._q) if kind != FLUSH)
        enqueued = counts["dequeued"] + depth + counts["caller_spilled"]
        latencies = sorted(self._latencies)
        cutoff = time.monotonic() - 60
        recent = sum(n for t, n in list(self._recent) if t >= cutoff)
        lost = counts["bad_records"] + counts["dropped"]
        return {
            "enabled": self.enabled, "queue_depth": depth, "enqueued": enqueued, "written": counts["written"],
            "spooled": counts["spooled"], "spool_pending": self._spool.pending_records,
            "replayed": counts["replayed"], "dropped": counts["dropped"], "sampled_out": counts["sampled_out"],
            "errors": counts["errors"], "bad_records": lost,
            "write_latency_ms_p50": _percentile(latencies, 0.50), "write_latency_ms_p95": _percentile(latencies, 0.95),
            "events_last_minute": recent,
            "capture_rate": 1.0 if not enqueued else round((enqueued - lost) / enqueued, 6),
            "database_available": time.monotonic() >= self._down_until and not self._spool.pending_records,
        }


def _event_row(item: tuple) -> dict[str, Any]:
    """The ``execution_events`` row of an :meth:`Recorder.event` tuple."""
    (eid, run, node_id, parent, depth, order, event_type, subtype, agent_name, inputs, outputs, meta, status,
     error_message, duration_ms, at) = item
    now = as_datetime(at)
    finished = status in _FINISHED
    begun = now - timedelta(milliseconds=duration_ms) if duration_ms is not None and finished else now
    return {"id": eid, "run_id": run.id, "session_id": run.session_id, "node_id": node_id,
            "parent_event_id": parent, "event_type": event_type, "event_subtype": subtype, "agent_name": agent_name,
            "timestamp": begun, "started_at": begun, "completed_at": now if finished else None,
            "duration_ms": duration_ms, "inputs": inputs, "outputs": outputs, "meta": meta,
            "error_message": error_message, "execution_order": order, "depth": depth, "status": status}


def _end_changes(item: tuple) -> dict[str, Any]:
    """The lifecycle columns of a span's completion (an :meth:`Recorder.end_span` tuple)."""
    eid, started, ended, failed, outputs, meta, error_message = item
    changes: dict[str, Any] = {"id": eid, "status": "failed" if failed else "completed",
                               "event_subtype": "error" if failed else "complete", "completed_at": as_datetime(ended),
                               "duration_ms": elapsed_ms(started, ended)}
    if outputs is not None:
        changes["outputs"] = outputs
    if meta is not None:
        changes["meta"] = meta
    if failed:
        changes["error_message"] = error_message
    return changes


def _message_rows(item: tuple) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``message`` event and the ``messages`` row of a :meth:`Recorder.message` tuple.

    A list of recipients (a group fan-out) becomes one ``broadcast`` event with ``inputs.recipients``; its
    ``messages`` row holds the names joined (cut to the column) and the full list in ``meta.recipients``."""
    eid, run, node_id, parent, depth, order, sender, recipient, content, tokens, silent, meta, at = item
    now = as_datetime(at)
    event_meta = {**(meta or {}), **({"tokens": tokens} if tokens is not None else {})}
    subtype = "broadcast" if silent or type(recipient) is list else "send"
    inputs, recipient, meta = message_addressing(sender, recipient, meta)
    event = {"id": eid, "run_id": run.id, "session_id": run.session_id, "node_id": node_id, "parent_event_id": parent,
             "event_type": "message", "event_subtype": subtype, "agent_name": sender,
             "timestamp": now, "started_at": now, "completed_at": now, "duration_ms": None,
             "inputs": inputs, "outputs": None, "meta": event_meta or None,
             "error_message": None, "execution_order": order, "depth": depth, "status": "completed"}
    message = {"run_id": run.id, "session_id": run.session_id, "event_id": eid, "node_id": node_id, "sender": sender,
               "recipient": recipient, "content": content, "timestamp": now, "tokens": tokens,
               "meta": meta}
    return event, message


def _after_fork_hook(ref: "weakref.ref[Recorder]") -> Any:
    def hook() -> None:
        recorder = ref()
        if recorder is not None:
            recorder.after_fork_in_child()
    return hook


class _PartialWrite(RuntimeError):
    """The database failed during a row-by-row write; ``rest`` holds the rows not written."""

    def __init__(self, rest: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__("database failed during a row-by-row write")
        self.rest = rest


def _encode(value: Any, limit: int) -> Any:
    """encode_payload, retried once when another thread mutated the value while it was being walked."""
    try:
        return encode_payload(value, limit)
    except RuntimeError:
        try:
            return encode_payload(value, limit)
        except RuntimeError as exc:
            return {"__unserialisable__": type(value).__name__, "reason": str(exc)}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)
