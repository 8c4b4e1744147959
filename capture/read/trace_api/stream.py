"""Following a run's events as they are stored: the cursor behind ``GET /api/runs/{id}/stream`` (SSE).

Each :meth:`RunFollower.poll` returns the events stored since the last poll (``seq`` above the cursor) in ``seq``
order, events whose status or completion changed since they were sent (an ``agent_call`` written as running and
completed later), and the run's status when it changed. Because PostgreSQL assigns ``seq`` at insert but makes it
visible at commit, a transaction that commits late can surface a lower ``seq`` after a higher one: the follower
re-reads the last ``late_window`` seconds of seqs and sends what it has not sent yet, so such events still arrive.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from capture.core.payload import dumps
from capture.read.queries import EVENTS, RUNS, row_dict

POLL_INTERVAL_S = 0.1
HEARTBEAT_S = 15.0
LATE_WINDOW_S = 2.0
OPEN_STATUSES = frozenset({"pending", "running"})
EVENT_FIELDS = ("event_type", "event_subtype", "agent_name", "timestamp", "execution_order", "depth")
TIMELINE_FIELDS = ("seq", "parent_event_id", "status", "started_at", "completed_at", "duration_ms",
                   "error_message")


def event_captured(event: dict[str, Any]) -> dict[str, Any]:
    """The reference's ``WebSocketEvent`` envelope around ``EventCapturedData`` (plus the timeline's fields)."""
    data = {"event_id": event["id"], "node_id": event.get("node_id"),
            **{k: event.get(k) for k in EVENT_FIELDS}, **{k: event.get(k) for k in TIMELINE_FIELDS}}
    return {"event_type": "event_captured", "timestamp": event.get("timestamp"), "run_id": event["run_id"],
            "session_id": event["session_id"], "data": data}


def sse_message(kind: str, payload: dict[str, Any], ident: int | None = None) -> bytes:
    """One Server-Sent Events message (``id:`` lets EventSource resume with ``Last-Event-ID``)."""
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {kind}\ndata: {dumps(payload)}\n\n".encode()


@dataclass
class RunFollower:
    """A cursor over one run's events: what was sent, what is still open, and the run's last status."""

    engine: Engine
    run_id: str
    after_seq: int = 0
    late_window: float = LATE_WINDOW_S
    clock: Callable[[], float] = time.monotonic
    run_status: str | None = None
    _recent: dict[int, float] = field(default_factory=dict)  # seq -> when sent, for the late window
    _open: dict[str, tuple[str, Any]] = field(default_factory=dict)  # event id -> (status, completed_at)

    @property
    def cursor(self) -> int:
        """The highest seq sent (what a client passes back as ``Last-Event-ID``)."""
        return max(self.after_seq, max(self._recent, default=0))

    def poll(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
        """(new events in seq order, changed open events, new run status or ``None``)."""
        now = self.clock()
        horizon = self.after_seq
        for seq, sent_at in list(self._recent.items()):
            if now - sent_at > self.late_window:
                horizon = max(horizon, seq)
                del self._recent[seq]
        self.after_seq = horizon
        with self.engine.connect() as conn:
            seqs = conn.execute(select(EVENTS.c.seq).where(EVENTS.c.run_id == self.run_id,
                                                           EVENTS.c.seq > horizon)).scalars().all()
            fresh = sorted(s for s in seqs if s not in self._recent)
            new = ([row_dict(r) for r in conn.execute(select(EVENTS).where(EVENTS.c.seq.in_(fresh))
                                                      .order_by(EVENTS.c.seq))] if fresh else [])
            changed = self._changed(conn) if self._open else []
            status = conn.execute(select(RUNS.c.status).where(RUNS.c.id == self.run_id)).scalar()
        for event in new:
            self._recent[event["seq"]] = now
            self._track(event)
        new_status = status if status != self.run_status else None
        self.run_status = status
        return new, changed, new_status

    def _track(self, event: dict[str, Any]) -> None:
        if event.get("status") in OPEN_STATUSES:
            self._open[event["id"]] = (event.get("status"), event.get("completed_at"))
        else:
            self._open.pop(event["id"], None)

    def _changed(self, conn: Any) -> list[dict[str, Any]]:
        rows = [row_dict(r) for r in conn.execute(select(EVENTS).where(EVENTS.c.id.in_(list(self._open))))]
        changed = [r for r in rows if (r.get("status"), r.get("completed_at")) != self._open[r["id"]]]
        for event in changed:
            self._track(event)
        return changed
