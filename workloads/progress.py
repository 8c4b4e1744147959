"""Progress of a long simulation on a terminal: runs done, events per second, time left.

Silent when the stream is not a terminal (pipes, logs, CI) or when asked to be quiet.
"""

import sys
import time
from typing import TextIO


class Progress:
    """Redraws one status line at most every ``interval`` seconds."""

    def __init__(self, total: int, *, stream: TextIO | None = None, quiet: bool = False,
                 interval: float = 0.25) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.enabled = not quiet and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, runs: int, events: int, *, force: bool = False) -> None:
        """Report ``runs`` finished runs and ``events`` written so far."""
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        self.stream.write("\r" + self.line(runs, events, now - self.started))
        self.stream.flush()

    def line(self, runs: int, events: int, elapsed: float) -> str:
        """The status text for ``runs``/``events`` after ``elapsed`` seconds."""
        rate = events / elapsed if elapsed > 0 else 0.0
        left = (self.total - runs) * elapsed / runs if runs else 0.0
        return (f"runs {runs:,}/{self.total:,}  events {events:,} ({rate:,.0f}/s)  "
                f"time left {int(left) // 60}:{int(left) % 60:02d} ")

    def close(self) -> None:
        """End the status line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
