"""One shared change feed behind every live stream (``GET /api/runs/{id}/stream``, Server-Sent Events).

A single background thread polls the store for the runs that have at least one subscriber: new events (``seq``
above the run's horizon), events still open when sent whose status or completion changed, and run status changes.
It hands each change to the subscribers of its run, so N streams cost one query per poll instead of N. A new
subscriber first reads its own catch-up (events after its ``Last-Event-ID``) once, then receives the feed's changes,
skipping any event the catch-up already sent. Horizons are per run: the first subscriber of a run starts it at its
own cursor (its catch-up counts as sent), so an event committed while a run is being joined cannot fall behind a
horizon that other runs' events moved on.

Because PostgreSQL assigns ``seq`` at insert but makes it visible at commit, a transaction that commits late can
surface a lower ``seq`` after a higher one: the feed re-reads the last ``late_window`` seconds of seqs and sends
what it has not sent yet, so such events still arrive. SQLite cannot commit out of seq order (one writer holds the
write lock from the insert that takes a seq to its commit), so there the window is 0 and each poll reads only the
new seqs (at 2,000 events/s a 2 s window re-read 4,000 seqs per poll).
"""

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, and_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from capture.core.payload import dumps
from capture.read.queries import EVENTS, RUNS, row_dict
from capture.read.questions import event_usage

POLL_INTERVAL_S = 0.1
HEARTBEAT_S = 15.0
LATE_WINDOW_S = 2.0
MAX_BACKLOG = 600  # polls queued for one slow subscriber before its stream is closed (it resumes by id)
OPEN_STATUSES = frozenset({"pending", "running"})
EVENT_FIELDS = ("event_type", "event_subtype", "agent_name", "timestamp", "execution_order", "depth")
TIMELINE_FIELDS = ("seq", "parent_event_id", "status", "started_at", "completed_at", "duration_ms",
                   "error_message")
STORE_ERROR = {"error": "the capture store cannot be read now"}


def event_captured(event: dict[str, Any]) -> dict[str, Any]:
    """The reference's ``WebSocketEvent`` envelope around ``EventCapturedData`` (plus the timeline's fields, and
    the tokens and cost the event carries)."""
    data = {"event_id": event["id"], "node_id": event.get("node_id"),
            **{k: event.get(k) for k in EVENT_FIELDS}, **{k: event.get(k) for k in TIMELINE_FIELDS},
            **event_usage(event)}
    return {"event_type": "event_captured", "timestamp": event.get("timestamp"), "run_id": event["run_id"],
            "session_id": event["session_id"], "data": data}


def sse_message(kind: str, payload: dict[str, Any] | bytes, ident: int | None = None) -> bytes:
    """One Server-Sent Events message (``id:`` lets EventSource resume with ``Last-Event-ID``); ``payload`` may
    come JSON-encoded already (the feed encodes each change once for all its streams)."""
    head = f"id: {ident}\n" if ident is not None else ""
    data = payload if isinstance(payload, bytes) else dumps(payload).encode()
    return b"%sevent: %s\ndata: %s\n\n" % (head.encode(), kind.encode(), data)


@dataclass(frozen=True)
class Change:
    """One change, encoded once for every stream: ``kind`` (``event_captured``, ``event_updated``, ``run_status``,
    ``error_occurred``), the event's ``seq`` (0 for the others), the JSON ``payload`` and the whole SSE
    ``message`` (for ``event_captured`` with ``id:`` = its seq, what a stream sends when nothing came out of
    order)."""

    kind: str
    seq: int
    payload: bytes
    message: bytes


def change(kind: str, payload: dict[str, Any], seq: int = 0) -> Change:
    """A change with its payload and message encoded once."""
    data = dumps(payload).encode()
    return Change(kind, seq, data, sse_message(kind, data, seq if kind == "event_captured" else None))


# What a subscriber's queue holds: the changes of one poll for its run, or None when the stream must end
# (shutdown, or the subscriber fell behind by more than MAX_BACKLOG polls).
Delivery = list[Change] | None


@dataclass(eq=False)
class Subscriber:
    """One live stream's end of the feed: a queue filled from the feed's thread, read on the event loop."""

    run_id: str
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    closed: bool = False
    released: bool = False

    def put(self, item: Delivery) -> None:
        """Queue one poll's changes (called on the event loop); past :data:`MAX_BACKLOG` the stream is ended."""
        if self.closed:
            return
        if item is not None and self.queue.qsize() >= MAX_BACKLOG:
            self.closed, item = True, None
        self.queue.put_nowait(item)


@dataclass
class CatchUp:
    """What a new subscriber sends first: the run's status and its events after the subscriber's cursor."""

    status: str | None
    events: list[dict[str, Any]]


class ChangeFeed:
    """The one poller shared by every stream of a server (see the module docstring)."""

    def __init__(self, engine: Engine, *, poll_interval: float = POLL_INTERVAL_S,
                 late_window: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.poll_interval, self.clock = engine, poll_interval, clock
        self.late_window = late_window if late_window is not None else (
            0.0 if engine.dialect.name == "sqlite" else LATE_WINDOW_S)
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._horizons: dict[str, int] = {}  # run id -> every seq up to it has been sent (or was before a cursor)
        self._recent: dict[int, tuple[str, float]] = {}  # seq -> (run id, when sent), for the late window
        self._open: dict[str, tuple[str, str | None, Any]] = {}  # event id -> (run id, status, completed_at)
        self._status: dict[str, str | None] = {}  # run id -> last status sent
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.polls = 0

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> "ChangeFeed":
        """Start polling (runs are polled once they have a subscriber)."""
        self._thread = threading.Thread(target=self._run, name="trace-change-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling and end every open stream."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            subscribers = [s for group in self._subscribers.values() for s in group]
            self._subscribers.clear()
        for sub in subscribers:
            sub.loop.call_soon_threadsafe(sub.put, None)

    @property
    def streams(self) -> int:
        """How many subscribers are attached now."""
        with self._lock:
            return sum(len(group) for group in self._subscribers.values())

    # -- subscribers ------------------------------------------------------------------------------------

    def subscribe(self, sub: Subscriber, after_seq: int) -> CatchUp:
        """Attach ``sub`` and read its catch-up (call from a worker thread: it queries the store).

        Attaching comes first, so an event committed during the catch-up read reaches the subscriber either way;
        the stream skips what the catch-up already sent (see :meth:`horizon`).
        """
        with self._lock:
            self._subscribers.setdefault(sub.run_id, set()).add(sub)
        with self.engine.connect() as conn:
            status = conn.execute(select(RUNS.c.status).where(RUNS.c.id == sub.run_id)).scalar()
            events = [row_dict(r) for r in conn.execute(
                select(EVENTS).where(EVENTS.c.run_id == sub.run_id, EVENTS.c.seq > after_seq)
                .order_by(EVENTS.c.seq))]
        now = self.clock()
        with self._lock:
            if sub.run_id not in self._horizons:  # the run's first subscriber: its catch-up is what was sent
                self._horizons[sub.run_id] = after_seq
                for event in events:
                    self._recent[event["seq"]] = (sub.run_id, now)
            self._status.setdefault(sub.run_id, status)
            for event in events:
                self._track(event)
        return CatchUp(status, events)

    def horizon(self, run_id: str) -> int:
        """The run's horizon: the feed will never hand out an event of the run at or below it."""
        with self._lock:
            return self._horizons.get(run_id, 0)

    def unsubscribe(self, sub: Subscriber) -> None:
        """Detach ``sub``; a run nobody follows any more is no longer polled."""
        with self._lock:
            group = self._subscribers.get(sub.run_id)
            if group is not None:
                group.discard(sub)
                if not group:
                    del self._subscribers[sub.run_id]
                    self._status.pop(sub.run_id, None)
                    self._horizons.pop(sub.run_id, None)
                    self._open = {k: v for k, v in self._open.items() if v[0] != sub.run_id}
                    self._recent = {k: v for k, v in self._recent.items() if v[0] != sub.run_id}

    # -- polling ----------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.wait(self.poll_interval):
            with self._lock:
                runs = list(self._subscribers)
            if not runs:
                continue
            try:
                changes = self.poll(runs)
            except SQLAlchemyError:
                changes = [(run_id, change("error_occurred", STORE_ERROR)) for run_id in runs]
            self._publish(changes)

    def poll(self, runs: list[str]) -> list[tuple[str, Change]]:
        """One poll over ``runs``: ``(run id, change)`` pairs, new events in seq order."""
        self.polls += 1
        now = self.clock()
        with self._lock:
            for seq, (run_id, sent_at) in list(self._recent.items()):
                if now - sent_at > self.late_window:
                    if run_id in self._horizons:
                        self._horizons[run_id] = max(self._horizons[run_id], seq)
                    del self._recent[seq]
            bounds = {r: self._horizons[r] for r in runs if r in self._horizons}
            recent, opened = set(self._recent), dict(self._open)
        if not bounds:
            return []
        with self.engine.connect() as conn:
            seqs = conn.execute(select(EVENTS.c.seq).where(or_(*(
                and_(EVENTS.c.run_id == run_id, EVENTS.c.seq > horizon) for run_id, horizon in bounds.items())))
                                ).scalars().all()
            fresh = sorted(s for s in seqs if s not in recent)
            new = [row_dict(r) for r in conn.execute(select(EVENTS).where(EVENTS.c.seq.in_(fresh))
                                                     .order_by(EVENTS.c.seq))] if fresh else []
            updated = [row_dict(r) for r in conn.execute(select(EVENTS).where(EVENTS.c.id.in_(list(opened))))
                       ] if opened else []
            statuses = conn.execute(select(RUNS.c.id, RUNS.c.status).where(RUNS.c.id.in_(runs))).all()
        changes: list[tuple[str, Change]] = []
        with self._lock:
            for event in new:
                self._recent[event["seq"]] = (event["run_id"], now)
                self._track(event)
                changes.append((event["run_id"], change("event_captured", event_captured(event), event["seq"])))
            for event in updated:  # compared with what was open before this poll: a catch-up may have sent it
                known = opened[event["id"]]
                if (event.get("status"), event.get("completed_at")) != known[1:]:
                    self._track(event)
                    changes.append((event["run_id"], change("event_updated", event_captured(event))))
            for run_id, status in statuses:
                if run_id in self._status and self._status[run_id] != status:
                    self._status[run_id] = status
                    changes.append((run_id, change("run_status", {"run_id": run_id, "status": status})))
        return changes

    def _track(self, event: dict[str, Any]) -> None:
        if event.get("status") in OPEN_STATUSES:
            self._open[event["id"]] = (event["run_id"], event.get("status"), event.get("completed_at"))
        else:
            self._open.pop(event["id"], None)

    def _publish(self, changes: list[tuple[str, Change]]) -> None:
        """Hand each subscriber one list: this poll's changes of its run (one queue item per poll, not per event)."""
        per_run: dict[str, list[Change]] = {}
        for run_id, item in changes:
            per_run.setdefault(run_id, []).append(item)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Subscriber, Delivery]]] = {}
        with self._lock:
            for run_id, items in per_run.items():
                for sub in self._subscribers.get(run_id, ()):
                    by_loop.setdefault(sub.loop, []).append((sub, items))
        for loop, deliveries in by_loop.items():
            loop.call_soon_threadsafe(_deliver, deliveries)


def _deliver(deliveries: list[tuple[Subscriber, Delivery]]) -> None:
    for sub, items in deliveries:
        sub.put(items)
