"""Row preparation: turn loosely-typed dicts from the recorder and importers into clean column values.

Everything here is pure and cheap: ids, canonical types, UTC times and safely-encoded payloads, with a clear
:class:`BadRecord` naming the field when a value cannot be used. With ``payload_as_json`` payload columns come
back as JSON text (what the store's bulk path writes); with ``encoded`` the caller's ``str`` payloads already are
JSON text (the recorder encodes them once on its side) and are kept as they are, only checked against the limit.
"""

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from capture.core.items import new_id as core_new_id
from capture.core.payload import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    clip_text,
    dumps,
    encode_payload,
    encode_payload_json,
)
from capture.core.vocabulary import EVENT_STATUSES, normalise_event, normalise_mode
from capture.store.models import (
    CostRecord,
    DagEdge,
    DagNode,
    ExecutionEvent,
    File,
    Message,
    Session,
    WorkflowRun,
)

PAYLOAD_FIELDS = ("inputs", "outputs", "meta")
MAX_TEXT_BYTES = 256 * 1024


class BadRecord(ValueError):
    """A record that cannot be stored; the message names the record kind, its id and the field."""


def columns(model: type) -> frozenset[str]:
    """Column names of a model's table."""
    return frozenset(c.name for c in model.__table__.columns)


EVENT_COLUMNS = columns(ExecutionEvent)
EVENT_INSERT_COLUMNS = EVENT_COLUMNS - {"seq"}
# The column order of the bulk event insert; a prepared event has every one of these keys.
EVENT_INSERT_ORDER: tuple[str, ...] = tuple(c.name for c in ExecutionEvent.__table__.columns if c.name != "seq")
_BLANK_EVENT = dict.fromkeys(EVENT_INSERT_ORDER)
SESSION_COLUMNS = columns(Session)
RUN_COLUMNS = columns(WorkflowRun)
NODE_COLUMNS = columns(DagNode)
EDGE_COLUMNS = columns(DagEdge)
FILE_COLUMNS = columns(File)
MESSAGE_COLUMNS = columns(Message)
COST_COLUMNS = columns(CostRecord)


def new_id() -> str:
    """A fresh UUID-shaped id, the recorder's kind: a per-process prefix and a counter, so rows given ids here
    land side by side in the id index (random UUID4s cost the SQLite write path ~40%: benchmarks/RESULTS.md)."""
    return core_new_id()


def to_utc(value: Any, *, field: str, kind: str = "record") -> datetime | None:
    """Accept a datetime, an ISO-8601 string or epoch seconds; naive times are taken as UTC, others converted."""
    if value is None or isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise BadRecord(f"{kind}: field {field!r} is not a time: {value[:60]!r}") from None
    else:
        raise BadRecord(f"{kind}: field {field!r} must be a datetime, ISO string or epoch seconds, "
                        f"got {type(value).__name__}")
    if moment is not None and moment.tzinfo is not UTC:
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment


def _unknown_fields(row: Mapping[str, Any], allowed: frozenset[str], kind: str) -> None:
    extra = set(row) - allowed
    if extra:
        raise BadRecord(f"{kind} {row.get('id', '?')}: unknown field(s) {sorted(extra)}")


# The key a prepared event row carries while its payloads wait to be encoded (prepare_event's defer_payloads): the
# payload byte limit to encode them with.
PAYLOADS_PENDING = "__payloads_pending__"

_CANONICAL_CACHE: dict[tuple[str, str | None], tuple[str, str | None, str | None]] = {}
_META_DEPENDENT = frozenset({("handoff", "transfer"), ("state_transition", "complete")})


def _canonical(event_type: Any, event_subtype: Any, meta: Any, strict: bool,
               encoded: bool = False) -> tuple[str, str | None, str | None]:
    """normalise_event with a cache for the (type, subtype) pairs whose mapping does not depend on meta (an
    ``encoded`` meta is decoded only when the mapping is not cached)."""
    key = (event_type, event_subtype)
    try:
        hit = _CANONICAL_CACHE.get(key)
    except TypeError:  # unhashable garbage: let normalise_event reject it
        hit = None
    if hit is not None:
        return hit
    meta = _payload_value(meta, encoded)
    canonical = normalise_event(event_type, event_subtype, meta=meta if isinstance(meta, dict) else None,
                                strict=strict)
    out = (canonical.event_type, canonical.event_subtype, canonical.source_type)
    if isinstance(event_type, str) and (event_subtype is None or isinstance(event_subtype, str)):
        probe = normalise_event(event_type, event_subtype, meta=None, strict=strict)
        if (probe.event_type, probe.event_subtype) not in _META_DEPENDENT and len(_CANONICAL_CACHE) < 4096:
            _CANONICAL_CACHE[key] = out
    return out


def payload_text(value: Any, max_bytes: int, *, encoded: bool = False) -> str | None:
    """A payload as the JSON text the store writes; with ``encoded`` a ``str`` already is that text and is only
    cut (decoded and re-encoded) when it is over ``max_bytes``."""
    if value is None:
        return None
    if encoded and type(value) is str:
        if len(value) <= max_bytes // 4 or len(value.encode("utf-8")) <= max_bytes:
            return value
        return encode_payload_json(json.loads(value), max_bytes)
    return encode_payload_json(value, max_bytes)


def _payload_value(value: Any, encoded: bool) -> Any:
    """A payload as Python data (an ``encoded`` str is JSON text to decode)."""
    return json.loads(value) if encoded and type(value) is str else value


def prepare_event(row: Mapping[str, Any], *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                  strict_types: bool = True, payload_as_json: bool = False, encoded: bool = False,
                  defer_payloads: bool = False) -> dict[str, Any]:
    """Validate and normalise one ``execution_events`` row (without ``seq``, which the store assigns); the row
    returned has every column of :data:`EVENT_INSERT_ORDER`.

    With ``payload_as_json`` the payload fields (inputs, outputs, meta) come back as JSON text, ready for a
    bulk insert that bypasses SQLAlchemy's JSON processing; otherwise as JSON-serialisable Python values.
    ``encoded``: ``str`` payloads are JSON text already (implies ``payload_as_json``). ``defer_payloads`` (with
    ``payload_as_json``, not ``encoded``): the payloads are left as given and the row is marked
    (:data:`PAYLOADS_PENDING`); :func:`encode_pending` makes them JSON text at the moment of writing (encoding
    cannot fail, so nothing is validated later than without it).
    """
    if not row.keys() <= EVENT_INSERT_COLUMNS:
        _unknown_fields(row, EVENT_INSERT_COLUMNS, "event")
    out = {**_BLANK_EVENT, **row}
    out["id"] = str(out["id"] or new_id())
    for required in ("run_id", "session_id", "event_type"):
        if not out[required]:
            raise BadRecord(f"event {out['id']}: missing required field {required!r}")
    meta = out["meta"]
    try:
        etype, subtype, source_type = _canonical(out["event_type"], out["event_subtype"], meta, strict_types, encoded)
    except ValueError as exc:
        raise BadRecord(f"event {out['id']}: {exc}") from None
    out["event_type"], out["event_subtype"] = etype, subtype
    if source_type:
        meta = _payload_value(meta, encoded)
        meta = dict(meta) if isinstance(meta, Mapping) else {} if meta is None else {"value": meta}
        meta.setdefault("source_type", source_type)
        out["meta"] = dumps(meta) if encoded else meta
    status = out["status"] or "completed"
    if status not in EVENT_STATUSES:
        raise BadRecord(f"event {out['id']}: status {status!r} is not one of {sorted(EVENT_STATUSES)}")
    out["status"] = status
    for field in ("timestamp", "started_at", "completed_at"):
        value = out[field]
        if value is not None and not (type(value) is datetime and value.tzinfo is UTC):
            value = to_utc(value, field=field, kind=f"event {out['id']}")
        out[field] = value
    if out["timestamp"] is None:
        out["timestamp"] = out["started_at"] or datetime.now(UTC)
    for field in ("execution_order", "depth", "duration_ms"):
        value = out[field]
        if value is not None and type(value) is not int:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise BadRecord(f"event {out['id']}: field {field!r} must be a number, got {value!r}")
            value = int(value)
        out[field] = value
    out["execution_order"] = out["execution_order"] or 0
    out["depth"] = out["depth"] or 0
    if defer_payloads and payload_as_json and not encoded:
        out[PAYLOADS_PENDING] = max_payload_bytes
    else:
        _encode_payloads(out, PAYLOAD_FIELDS, max_payload_bytes, as_json=payload_as_json or encoded,
                         encoded=encoded)
    error = out["error_message"]
    out["error_message"] = None if error is None else clip_text(_text(error), MAX_TEXT_BYTES)
    return out


def encode_pending(event: dict[str, Any]) -> dict[str, Any]:
    """A prepared event with deferred payloads (:data:`PAYLOADS_PENDING`) as one with JSON text payloads (a new
    dict; the prepared row stays as it is, so a batch can be retried); any other row as it is."""
    limit = event.get(PAYLOADS_PENDING)
    if limit is None:
        return event
    out = dict(event)
    del out[PAYLOADS_PENDING]
    _encode_payloads(out, PAYLOAD_FIELDS, limit, as_json=True, encoded=False)
    return out


def _encode_payloads(out: dict[str, Any], fields: tuple[str, ...], max_bytes: int, *, as_json: bool,
                     encoded: bool) -> None:
    """Encode the payload ``fields`` present in ``out``, in place: JSON text or JSON-ready Python values."""
    for field in fields:
        value = out.get(field)
        if value is None:
            continue
        if not as_json:
            out[field] = encode_payload(_payload_value(value, encoded), max_bytes)
        elif encoded:
            out[field] = payload_text(value, max_bytes, encoded=True)
        else:
            out[field] = encode_payload_json(value, max_bytes)


def _text(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def prepare_generic(row: Mapping[str, Any], allowed: frozenset[str], kind: str, *,
                    time_fields: tuple[str, ...] = (), payload_fields: tuple[str, ...] = ("meta",),
                    text_fields: tuple[str, ...] = (), assign_id: bool = True,
                    max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, payload_as_json: bool = False,
                    encoded: bool = False) -> dict[str, Any]:
    """Validate a session, run, node, file, message or cost row: known fields, UTC times, encoded payloads
    (``payload_as_json`` and ``encoded`` as for :func:`prepare_event`)."""
    _unknown_fields(row, allowed, kind)
    out = dict(row)
    if assign_id and not out.get("id"):
        out["id"] = new_id()
    for field in time_fields:
        if field in out:
            out[field] = to_utc(out[field], field=field, kind=f"{kind} {out.get('id', '?')}")
    _encode_payloads(out, payload_fields, max_payload_bytes, as_json=payload_as_json or encoded, encoded=encoded)
    for field in text_fields:
        if field in out:
            out[field] = clip_text(_text(out[field]), MAX_TEXT_BYTES)
    return out


def prepare_session(row: Mapping[str, Any], **encoding: bool) -> dict[str, Any]:
    """A ``sessions`` row (``encoding``: ``payload_as_json`` / ``encoded``, see :func:`prepare_generic`)."""
    out = prepare_generic(row, SESSION_COLUMNS, "session", time_fields=("created_at", "last_active_at"),
                          payload_fields=("meta", "resource_limits"), assign_id=False, **encoding)
    if not out.get("id"):
        raise BadRecord("session: missing required field 'id'")
    return out


def prepare_run(row: Mapping[str, Any], **encoding: bool) -> dict[str, Any]:
    """A ``workflow_runs`` row with the mode spelling folded."""
    out = prepare_generic(row, RUN_COLUMNS, "run",
                          time_fields=("started_at", "completed_at", "last_heartbeat_at"),
                          text_fields=("task_description",), **encoding)
    if "mode" in out:
        out["mode"] = normalise_mode(out["mode"])
    if not out.get("session_id"):
        raise BadRecord(f"run {out['id']}: missing required field 'session_id'")
    return out


def prepare_node(row: Mapping[str, Any], **encoding: bool) -> dict[str, Any]:
    """A ``dag_nodes`` row."""
    out = prepare_generic(row, NODE_COLUMNS, "node", **encoding)
    for required in ("run_id", "session_id"):
        if not out.get(required):
            raise BadRecord(f"node {out['id']}: missing required field {required!r}")
    return out


def prepare_file(row: Mapping[str, Any], **encoding: bool) -> dict[str, Any]:
    """A ``files`` row."""
    out = prepare_generic(row, FILE_COLUMNS, "file", time_fields=("created_at",), **encoding)
    if not out.get("run_id") or not out.get("file_path"):
        raise BadRecord(f"file {out['id']}: needs 'run_id' and 'file_path'")
    return out


def prepare_message(row: Mapping[str, Any], **encoding: bool) -> dict[str, Any]:
    """A ``messages`` row (integer id assigned by the store)."""
    out = prepare_generic(row, MESSAGE_COLUMNS, "message", time_fields=("timestamp",),
                          text_fields=("content",), assign_id=False, **encoding)
    if not out.get("run_id"):
        raise BadRecord("message: missing required field 'run_id'")
    return out


def prepare_cost(row: Mapping[str, Any], **encoding: bool) -> dict[str, Any]:
    """A ``cost_records`` row (integer id assigned by the store)."""
    out = prepare_generic(row, COST_COLUMNS, "cost record", time_fields=("timestamp",), payload_fields=(),
                          assign_id=False, **encoding)
    if not out.get("run_id"):
        raise BadRecord("cost record: missing required field 'run_id'")
    return out
