"""Safe encoding of payloads (inputs, outputs, meta) before they reach the queue, spool or database.

AG2 payloads can hold live agents, bytes, numpy values and huge strings. :func:`encode_payload` turns any value
into JSON-serialisable data, marks what it had to change (``__unserialisable__``, ``__truncated__``) and never
raises, so a bad payload cannot surface as an exception from deep inside SQLAlchemy.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any
from uuid import UUID

DEFAULT_MAX_PAYLOAD_BYTES = 64 * 1024
_MAX_DEPTH = 20


def _scalar(value: Any) -> Any:
    """Return a JSON-native version of a scalar, or the sentinel ``NotImplemented``."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, PurePath)):
        return str(value)
    if isinstance(value, Enum):
        return _scalar(value.value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return {"__bytes__": len(raw), "preview": raw[:64].decode("utf-8", "replace")}
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item) and type(value).__module__.startswith("numpy"):
        try:
            return _scalar(item())
        except Exception:  # noqa: BLE001 - a failing item() just falls through to repr
            return NotImplemented
    return NotImplemented


def _to_jsonable(value: Any, depth: int, seen: set[int]) -> Any:
    scalar = _scalar(value)
    if scalar is not NotImplemented:
        return scalar
    if depth > _MAX_DEPTH or id(value) in seen:
        return {"__unserialisable__": type(value).__name__, "reason": "depth or cycle"}
    seen = seen | {id(value)}
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v, depth + 1, seen) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_to_jsonable(v, depth + 1, seen) for v in items]
    if is_dataclass(value) and not isinstance(value, type):
        try:
            return _to_jsonable(asdict(value), depth + 1, seen)
        except Exception:  # noqa: BLE001
            pass
    dump = getattr(value, "model_dump", None)  # pydantic models (AG2 events)
    if callable(dump):
        try:
            return _to_jsonable(dump(), depth + 1, seen)
        except Exception:  # noqa: BLE001 - e.g. events holding live agents
            pass
    tolist = getattr(value, "tolist", None)  # numpy arrays
    if callable(tolist) and type(value).__module__.startswith("numpy"):
        try:
            return _to_jsonable(tolist(), depth + 1, seen)
        except Exception:  # noqa: BLE001
            pass
    name = getattr(value, "name", None)
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    marked: dict[str, Any] = {"__unserialisable__": type(value).__name__, "repr": text[:200]}
    if isinstance(name, str):
        marked["name"] = name
    return marked


def _refuse(value: Any) -> Any:
    raise TypeError(f"not JSON data: {type(value).__name__}")


# Built once and shared: dumps runs per stored row. JSONEncoder.encode builds a new C encoder on every call (a
# third of the time of encoding a small payload), so the C encoder is made here once: compact, non-ASCII kept,
# NaN refused; without a cycle check (a cycle raises RecursionError, and no state is shared between threads).
_C_ENCODE = json.encoder.c_make_encoder(None, _refuse, json.encoder.encode_basestring, None, ":", ",", False,
                                        False, False) if json.encoder.c_make_encoder is not None else None
_FAST_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False)


def _fast_encode(value: Any) -> str:
    """Compact JSON of plain JSON data; raises TypeError, ValueError or RecursionError for anything else."""
    if _C_ENCODE is None:
        return _FAST_ENCODER.encode(value)
    if type(value) is str:  # as JSONEncoder.encode does: a bare string needs no encoder object
        return json.encoder.encode_basestring(value)
    return "".join(_C_ENCODE(value, 0))


def dumps(value: Any) -> str:
    """Compact JSON for any value; never raises (the engine's ``json_serializer``)."""
    try:
        return _fast_encode(value)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(_to_jsonable(value, 0, set()), separators=(",", ":"), ensure_ascii=False)


def encode_payload(value: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> Any:
    """Make ``value`` JSON-serialisable and at most about ``max_bytes`` when serialised.

    An oversized payload is replaced by a marked preview: ``{"__truncated__": true, "original_bytes": n,
    "preview": "..."}``; oversized string leaves inside a dict are cut one by one first, so small fields survive.
    """
    if value is None:
        return None
    clean = _to_jsonable(value, 0, set())
    text = dumps(clean)
    size = len(text.encode("utf-8"))
    if size <= max_bytes:
        return clean
    if isinstance(clean, dict):
        leaf_limit = max(256, max_bytes // max(1, 2 * len(clean)))
        clipped = {k: _clip(v, leaf_limit) for k, v in clean.items()}
        if len(dumps(clipped).encode("utf-8")) <= max_bytes:
            return clipped
    preview = text.encode("utf-8")[: max(0, max_bytes - 200)].decode("utf-8", "ignore")
    return {"__truncated__": True, "original_bytes": size, "preview": preview}


def _clip(value: Any, limit: int) -> Any:
    if isinstance(value, str) and len(value.encode("utf-8")) > limit:
        raw = value.encode("utf-8")
        return {"__truncated__": True, "original_bytes": len(raw),
                "preview": raw[:limit].decode("utf-8", "ignore")}
    if not isinstance(value, (dict, list)):
        return value
    text = dumps(value)
    size = len(text.encode("utf-8"))
    if size <= limit:
        return value
    return {"__truncated__": True, "original_bytes": size, "preview": text[:limit]}


def encode_payload_json(value: Any, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> str | None:
    """:func:`encode_payload` followed by :func:`dumps`, fast when ``value`` is already plain JSON data.

    The common case (dicts of strings and numbers under the limit) costs one C-accelerated ``json.dumps``;
    anything else takes the safe path, so the text stored is always what :func:`encode_payload` would give.
    """
    if value is None:
        return None
    try:
        text = _fast_encode(value)
    except (TypeError, ValueError, RecursionError):
        return dumps(encode_payload(value, max_bytes))
    if len(text) <= max_bytes // 4 or len(text.encode("utf-8")) <= max_bytes:
        return text
    return dumps(encode_payload(value, max_bytes))


def clip_text(text: str | None, max_bytes: int) -> str | None:
    """Cut a plain text column (error messages, message content) to about ``max_bytes``, marking the cut.

    Idempotent: a text this function already cut is returned unchanged.
    """
    if text is None or len(text) <= max_bytes // 4:
        return text
    raw = text.encode("utf-8")
    if len(raw) <= max_bytes:
        return text
    marker = f"... [truncated, {len(raw)} bytes]"
    keep = max(0, max_bytes - len(marker.encode("utf-8")))
    return raw[:keep].decode("utf-8", "ignore") + marker
