"""The capture clock: real UTC time by default, a simulated clock when a workload simulator sets one.

Every timestamp and duration the recorder writes comes from :func:`now`, so a simulator can run a thousand
realistic runs in seconds while their events carry realistic times (``shared/reference/cmbagent.md`` §11).
The hot path takes a cheaper :func:`stamp` instead and turns it into a datetime later (:func:`as_datetime`).
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]


def _real_now() -> datetime:
    return datetime.now(UTC)


_clock: ContextVar[Clock] = ContextVar("skillmine_clock", default=_real_now)
_process_clock: list[Clock] = [_real_now]
# Set for good by the first use_clock: a context copied inside a block (a task) may keep its clock after the block.
_clock_swapped = [False]


def now() -> datetime:
    """The current time on the active clock (timezone-aware UTC)."""
    clock = _clock.get()
    return (_process_clock[0] if clock is _real_now else clock)()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def stamp() -> int | datetime:
    """Now, cheaply: ``time.time_ns()`` on the real clock, the simulated clock's datetime when one is active;
    :func:`as_datetime` turns either into a UTC datetime off the caller's thread. Until a :func:`use_clock` block is
    first entered in the process (an agent process never enters one) it reads no context variable."""
    if not _clock_swapped[0] or (_clock.get() is _real_now and _process_clock[0] is _real_now):
        return time.time_ns()
    return now()


# What the hot path calls, read as ``clock.hot_stamp`` at each use (never imported by name): ``time.time_ns`` itself
# until a use_clock block is first entered in the process, then stamp. A C function costs no Python frame, and an
# agent process stamps every event.
hot_stamp: Callable[[], int | datetime] = time.time_ns


def as_datetime(value: int | datetime) -> datetime:
    """A :func:`stamp` as a timezone-aware UTC datetime (microsecond precision, like ``datetime.now``)."""
    return _EPOCH + timedelta(microseconds=value // 1000) if type(value) is int else value


def elapsed_ms(started: int | datetime, ended: int | datetime) -> int:
    """Whole milliseconds between two stamps."""
    if type(started) is int and type(ended) is int:
        return (ended - started) // 1_000_000
    return int((as_datetime(ended) - as_datetime(started)).total_seconds() * 1000)


@contextmanager
def use_clock(clock: Clock, *, process_wide: bool = False) -> Iterator[None]:
    """Make ``clock`` the time source inside the block.

    ``process_wide`` also covers threads that do not inherit this context (AG2's ``run()`` worker threads).
    """
    global hot_stamp
    hot_stamp = stamp
    _clock_swapped[0] = True
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
        self._now += timedelta(milliseconds=float(milliseconds))
        return self._now
