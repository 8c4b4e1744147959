"""A background sender for finished spans: its own daemon thread, a bound, a back-off and counts.

Whoever builds spans (the live sink, on the recorder's writer thread) hands them to :meth:`SpanSender.put` and goes
on; a slow or dead endpoint then holds up only this thread, never the recorder's writer (nor the store sink beside
it) and never an agent. Requests carry up to ``EXPORT_BATCH`` spans. A request that fails is put back and retried
after a back-off (``RETRY_BACKOFF_S``, the transport's own retries within its timeout come first). At most
``max_pending`` spans wait; beyond that the oldest are dropped. :meth:`SpanSender.close` makes one last pass unless
the endpoint failed last, and drops what is still waiting after it. Every drop is counted.
"""

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from capture.otel.transport import OtlpTransport

EXPORT_BATCH = 512
RETRY_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)


class SpanSender:
    """Sends spans through the transport ``connect()`` makes, on its own thread (started with the first span)."""

    def __init__(self, connect: Callable[[], OtlpTransport], on_error: Callable[[str, BaseException | str], None],
                 *, max_pending: int) -> None:
        self._connect = connect
        self._on_error = on_error
        self.max_pending = max_pending
        self._reset()

    def _reset(self) -> None:
        self._transport: OtlpTransport | None = None
        self._outbox: deque[ReadableSpan] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._failures = 0
        self._down_until = 0.0
        self.counts = {"exported_spans": 0, "dropped_spans": 0, "export_failures": 0}

    @property
    def pending(self) -> int:
        """Spans waiting to be sent."""
        return len(self._outbox)

    @property
    def available(self) -> bool:
        """Whether the last request was taken (or none has failed yet)."""
        return self._failures == 0

    def put(self, spans: Sequence[ReadableSpan]) -> None:
        """Queue spans for sending (the oldest beyond ``max_pending`` are dropped) and wake the thread."""
        if not spans:
            return
        with self._lock:
            self._outbox.extend(spans)
            excess = len(self._outbox) - self.max_pending
            for _ in range(max(excess, 0)):
                self._outbox.popleft()
            self.counts["dropped_spans"] += max(excess, 0)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="skillmine-otlp", daemon=True)
            self._thread.start()
        self._wake.set()

    def close(self, timeout: float) -> None:
        """One last pass (none if the endpoint failed last), at most ``timeout`` seconds; the rest is dropped."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._lock:
            self.counts["dropped_spans"] += len(self._outbox)
            self._outbox.clear()
        if self._transport is not None:
            self._transport.close()

    def after_fork(self) -> None:
        """In a forked child: no thread, no connection and nothing of the parent's."""
        self._reset()

    def _run(self) -> None:
        while True:
            wait = self._down_until - time.monotonic()
            self._wake.wait(wait if wait > 0 else None)
            self._wake.clear()
            if self._stopping:
                if not self._failures:
                    self._send_all()
                return
            if time.monotonic() >= self._down_until:
                self._send_all()

    def _send_all(self) -> None:
        """Send what is waiting, a request at a time, until it is all sent or a request fails."""
        while self._outbox:
            with self._lock:
                chunk = [self._outbox.popleft() for _ in range(min(EXPORT_BATCH, len(self._outbox)))]
            try:
                if self._transport is None:
                    self._transport = self._connect()
                self._transport.send(chunk)
            except Exception as exc:  # noqa: BLE001 - endpoint down or refusing: keep the spans, back off
                with self._lock:
                    self._outbox.extendleft(reversed(chunk))
                self._failures += 1
                self.counts["export_failures"] += 1
                self._down_until = time.monotonic() + RETRY_BACKOFF_S[min(self._failures, len(RETRY_BACKOFF_S)) - 1]
                self._on_error("otlp export", exc)
                return
            self.counts["exported_spans"] += len(chunk)
            self._failures = 0
            self._down_until = 0.0

    def stats(self) -> dict[str, Any]:
        """Exported, dropped and waiting spans and failed requests."""
        return {**self.counts, "pending_spans": self.pending}
