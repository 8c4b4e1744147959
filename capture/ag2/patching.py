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

log = logging.getLogger("capture.ag2")

_MISSING = object()
_patches: "weakref.WeakKeyDictionary[Any, dict[str, Any]]" = weakref.WeakKeyDictionary()
_active: "weakref.WeakSet[Any]" = weakref.WeakSet()
_lock = threading.Lock()
_failures = {"count": 0, "warned": False}


def is_active(obj: Any) -> bool:
    """Whether ``obj`` is currently instrumented."""
    return obj in _active


def activate(obj: Any) -> bool:
    """Mark ``obj`` instrumented; False when it already was (instrumenting twice is a no-op)."""
    with _lock:
        if obj in _active:
            return False
        _active.add(obj)
        return True


def patch(obj: Any, name: str, make_wrapper: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
    """Shadow ``obj.name`` with ``make_wrapper(original)``, remembering what the instance held before."""
    original = getattr(obj, name)
    saved = _patches.setdefault(obj, {})
    if name not in saved:
        saved[name] = obj.__dict__.get(name, _MISSING)
    setattr(obj, name, make_wrapper(original))


def restore(obj: Any) -> bool:
    """Undo every patch on ``obj`` and mark it uninstrumented; False when it was not instrumented."""
    with _lock:
        was_active = obj in _active
        _active.discard(obj)
    for name, previous in _patches.pop(obj, {}).items():
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
