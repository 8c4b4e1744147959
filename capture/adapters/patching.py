"""Per-instance patching that can be undone exactly, and the guard every wrapper uses.

AG2 objects are patched by setting instance attributes that shadow the class methods; the previous instance
``__dict__`` entry (if any) is remembered so that :func:`restore` puts back exactly what was there. Hooks that AG2
cannot unregister check :func:`is_active` and do nothing once the object is uninstrumented.
"""

import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger("capture.adapters")

_MISSING = object()
# Keyed by id() with a weak reference that removes the entry when the object dies: AG2 objects such as GroupChat
# (a dataclass) are unhashable.
_patches: dict[int, dict[str, Any]] = {}
_active: dict[int, weakref.ref] = {}
_lock = threading.Lock()
_failures = {"count": 0, "warned": False}


def is_active(obj: Any) -> bool:
    """Whether ``obj`` is currently instrumented."""
    ref = _active.get(id(obj))
    return ref is not None and ref() is obj


def _forget(key: int) -> None:
    with _lock:
        _active.pop(key, None)
        _patches.pop(key, None)


def activate(obj: Any) -> bool:
    """Mark ``obj`` instrumented; False when it already was (instrumenting twice is a no-op)."""
    key = id(obj)
    with _lock:
        if is_active(obj):
            return False
        _active[key] = weakref.ref(obj, lambda _, key=key: _forget(key))
        return True


def patch(obj: Any, name: str, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Shadow ``obj.name`` with ``make_wrapper(original)``, remembering what the instance held before."""
    original = getattr(obj, name)
    saved = _patches.setdefault(id(obj), {})
    if name not in saved:
        saved[name] = obj.__dict__.get(name, _MISSING)
    setattr(obj, name, make_wrapper(original))


def restore(obj: Any) -> bool:
    """Undo every patch on ``obj`` and mark it uninstrumented; False when it was not instrumented."""
    with _lock:
        was_active = is_active(obj)
        _active.pop(id(obj), None)
        saved = _patches.pop(id(obj), {})
    for name, previous in saved.items():
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
