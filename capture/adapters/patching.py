"""Per-instance patching that can be undone exactly, and the guard every wrapper uses.

AG2 objects are patched by setting instance attributes that shadow the class methods; the previous instance
``__dict__`` entry (if any) is remembered (in the object's own ``__dict__``, see ``_STATE``) so that :func:`restore`
puts back exactly what was there. Hooks that AG2 cannot unregister check :func:`is_active` and do nothing once the
object is uninstrumented.
"""

import functools
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("capture.adapters")

_MISSING = object()
_NO_DICT: dict[str, Any] = {}
# An instrumented object's own ``__dict__`` holds its record under this key. Not a registry keyed by ``id(obj)``
# (AG2 objects such as GroupChat, a dataclass, are unhashable): ``id()`` raises a ``builtins.id`` audit event, and
# once the tool-write audit hook is installed (adapters.common) every event calls it, which made each
# ``is_active`` check (~300 per 40-round group chat) cost a Python call.
_STATE = "_skillmine_instrumented"
_lock = threading.Lock()
_failures = {"count": 0, "warned": False}


class _Instrumented:
    """What an instrumented object carries: a weak reference to itself (a copy of the object, which copies this
    record, is not instrumented), the instance attributes its patches shadowed, and ``live``, true until
    :func:`restore` (a wrapper reads it from the record it closed over: cheaper than :func:`is_active` per call)."""

    __slots__ = ("live", "ref", "saved")

    def __init__(self, obj: Any) -> None:
        self.ref = weakref.ref(obj)
        self.saved: dict[str, Any] = {}
        self.live = True


def is_active(obj: Any) -> bool:
    """Whether ``obj`` is currently instrumented."""
    state = getattr(obj, "__dict__", _NO_DICT).get(_STATE)
    return state is not None and state.ref() is obj


def activate(obj: Any) -> bool:
    """Mark ``obj`` instrumented; False when it already was (instrumenting twice is a no-op)."""
    with _lock:
        if is_active(obj):
            return False
        obj.__dict__[_STATE] = _Instrumented(obj)
        return True


def record_reader(obj: Any) -> Callable[[], "_Instrumented | None"]:
    """A C-level callable returning ``obj``'s current record (``None`` once restored), for a hook that outlives
    patches (AG2 cannot unregister hooks) and runs too often for :func:`is_active`'s Python call: ``record.live``
    then says whether ``obj`` is instrumented. Read from ``obj``'s own ``__dict__``, so the record found is ``obj``'s."""
    return functools.partial(obj.__dict__.get, _STATE)


def record_of(obj: Any) -> _Instrumented:
    """The record of an activated ``obj``, for its wrappers: ``record_of(obj).live`` is :func:`is_active` for
    the object the wrapper was made for, as long as the record is current (wrappers are replaced with it)."""
    return obj.__dict__[_STATE]


def patch(obj: Any, name: str, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Shadow ``obj.name`` with ``make_wrapper(original)``, remembering what the instance held before; ``obj``
    must be activated first."""
    original = getattr(obj, name)
    saved = obj.__dict__[_STATE].saved
    if name not in saved:
        saved[name] = obj.__dict__.get(name, _MISSING)
    setattr(obj, name, make_wrapper(original))


def restore(obj: Any) -> bool:
    """Undo every patch on ``obj`` and mark it uninstrumented; False when it was not instrumented."""
    with _lock:
        was_active = is_active(obj)
        state = obj.__dict__.pop(_STATE, None) if was_active else None
        if state is not None:
            state.live = False
    for name, previous in (state.saved.items() if state is not None else ()):
        if previous is _MISSING:
            obj.__dict__.pop(name, None)
        else:
            obj.__dict__[name] = previous
    return was_active


def capture_failed(where: str, exc: BaseException) -> None:
    """Count a failure inside capture code (here and in the recorder's ``errors`` stat); never raise."""
    _failures["count"] += 1
    try:
        from capture.api import get_recorder

        get_recorder().error(f"ag2.{where}", exc)
    except Exception:  # noqa: BLE001 - the recorder itself is unavailable: warn once here instead
        if not _failures["warned"]:
            _failures["warned"] = True
            log.warning("skillmine AG2 capture failed in %s (counted, run continues): %r", where, exc)


def failure_count() -> int:
    """Failures inside the AG2 wrappers since the process started (capture's own bugs, never the run's)."""
    return _failures["count"]
