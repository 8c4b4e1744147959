"""The capture clock: real UTC time by default, a simulated clock when a workload simulator sets one.

Every timestamp and duration the recorder writes comes from :func:`now`, so a simulator can run a thousand
realistic runs in seconds while their events carry realistic times (``shared/reference/cmbagent.md`` §11).
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def _real_now() -> datetime:
    return datetime.now(UTC)


_clock: ContextVar[Clock] = ContextVar("skillmine_clock", default=_real_now)
_process_clock: list[Clock] = [_real_now]


def now() -> datetime:
    """The current time on the active clock (timezone-aware UTC)."""
    clock = _clock.get()
    return (_process_clock[0] if clock is _real_now else clock)()


@contextmanager
def use_clock(clock: Clock, *, process_wide: bool = False) -> Iterator[None]:
    """Make ``clock`` the time source inside the block.

    ``process_wide`` also covers threads that do not inherit this context (AG2's ``run()`` worker threads).
    """
    token = _clock.set(clock)
    previous = _process_clock[0]
    if process_wide:
        _process_clock[0] = clock
    try:
        yield
    finally:
        _clock.reset(token)
        _process_clock[0] = previous


class SimulatedClock:
    """A clock that only moves when told to: ``advance(ms)`` models time spent by an LLM call or code run."""

    def __init__(self, start: datetime) -> None:
        self._now = start if start.tzinfo else start.replace(tzinfo=UTC)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, milliseconds: float) -> datetime:
        """Move forward and return the new time."""
        from datetime import timedelta

        self._now += timedelta(milliseconds=float(milliseconds))
        return self._now
