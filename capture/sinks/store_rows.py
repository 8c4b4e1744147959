"""Pure row builders: recorder queue items -> the capture store's rows, redacted and with payloads encoded.

:func:`event_row`, :func:`end_changes` and :func:`message_rows` unpack queue items in the field order of the named
tuples of :mod:`capture.core.items`; :class:`RowBuilder` turns one drained batch of items into the dict of row lists
that :meth:`CaptureStore.write_batch` and the spool take, coalescing an event's start and its completion into one
insert when both are in the batch. Payloads (inputs, outputs, meta) are encoded here, once, with secrets masked
before and after encoding (so truncation cannot cut a secret into an unrecognisable piece); the store's own
preparation then finds plain JSON data and only serialises it. Stdlib and ``capture.core`` only.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

from capture.core import items
from capture.core.clock import as_datetime, elapsed_ms
from capture.core.files import classify_file, sha256_file
from capture.core.payload import dumps, encode_payload
from capture.core.redaction import Redactor
from capture.core.vocabulary import message_addressing

FINISHED = frozenset({"completed", "failed"})
PAYLOAD_FIELDS = ("inputs", "outputs", "meta")
TEXT_FIELDS = ("error_message", "content", "task_description")


def event_row(item: items.EventItem) -> dict[str, Any]:
    """The ``execution_events`` row of an event."""
    (_, eid, run, node_id, parent, depth, order, event_type, subtype, agent_name, inputs, outputs, meta, status,
     error_message, duration_ms, at) = item
    now = as_datetime(at)
    finished = status in FINISHED
    begun = now - timedelta(milliseconds=duration_ms) if duration_ms is not None and finished else now
    return {"id": eid, "run_id": run.id, "session_id": run.session_id, "node_id": node_id,
            "parent_event_id": parent, "event_type": event_type, "event_subtype": subtype, "agent_name": agent_name,
            "timestamp": begun, "started_at": begun, "completed_at": now if finished else None,
            "duration_ms": duration_ms, "inputs": inputs, "outputs": outputs, "meta": meta,
            "error_message": error_message, "execution_order": order, "depth": depth, "status": status}


def end_changes(item: items.EndItem) -> dict[str, Any]:
    """The lifecycle columns a span's completion sets on its event."""
    _, eid, started, ended, failed, outputs, meta, error_message = item
    changes: dict[str, Any] = {"id": eid, "status": "failed" if failed else "completed",
                               "event_subtype": "error" if failed else "complete", "completed_at": as_datetime(ended),
                               "duration_ms": elapsed_ms(started, ended)}
    if outputs is not None:
        changes["outputs"] = outputs
    if meta is not None:
        changes["meta"] = meta
    if failed:
        changes["error_message"] = error_message
    return changes


def message_rows(item: items.MessageItem) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``message`` event and the ``messages`` row of a message (``broadcast`` for a list of recipients)."""
    _, eid, run, node_id, parent, depth, order, sender, recipient, content, tokens, silent, meta, at = item
    now = as_datetime(at)
    event_meta = {**(meta or {}), **({"tokens": tokens} if tokens is not None else {})}
    subtype = "broadcast" if silent or type(recipient) is list else "send"
    inputs, recipient, meta = message_addressing(sender, recipient, meta)
    event = {"id": eid, "run_id": run.id, "session_id": run.session_id, "node_id": node_id, "parent_event_id": parent,
             "event_type": "message", "event_subtype": subtype, "agent_name": sender,
             "timestamp": now, "started_at": now, "completed_at": now, "duration_ms": None,
             "inputs": inputs, "outputs": None, "meta": event_meta or None,
             "error_message": None, "execution_order": order, "depth": depth, "status": "completed"}
    message = {"run_id": run.id, "session_id": run.session_id, "event_id": eid, "node_id": node_id, "sender": sender,
               "recipient": recipient, "content": content, "timestamp": now, "tokens": tokens,
               "meta": meta}
    return event, message


def file_row(row: dict[str, Any]) -> dict[str, Any]:
    """A ``files`` row with its type, size and sha256 (``meta.missing_at_capture`` when the file is gone)."""
    out = dict(row)
    real = Path(out.pop("real_path"))
    if out.get("file_type") is None:
        out["file_type"] = classify_file(out["file_path"])
    if real.is_file():
        out["size_bytes"] = real.stat().st_size
        out["content_hash"] = sha256_file(real)
    else:
        out["meta"] = {**(out.get("meta") or {}), "missing_at_capture": True}
    return out


class RowBuilder:
    """Turns drained queue items into one batch of store rows, redacted and encoded (see the module docstring)."""

    def __init__(self, redactor: Redactor, max_payload_bytes: int) -> None:
        self.redactor = redactor
        self.limit = max_payload_bytes

    def batch(self, queued: list[tuple]) -> dict[str, Any]:
        """The rows of ``queued`` items by ``Batch`` field, plus ``_items`` (how many queue items they stand for)."""
        runs: dict[str, dict[str, Any]] = {}
        nodes: dict[str, dict[str, Any]] = {}
        events: dict[str, dict[str, Any]] = {}
        updates: dict[str, dict[str, Any]] = {}
        lists: dict[int, list[dict[str, Any]]] = {items.EDGE: [], items.FILE: [], items.MESSAGE: [], items.COST: []}
        messages = lists[items.MESSAGE]
        for item in queued:
            kind = item[0]
            if kind == items.EVENT:
                events[item[1]] = event_row(item)
            elif kind == items.END:
                changes = end_changes(item)
                target = events.get(item[1])
                (target if target is not None else updates.setdefault(item[1], {})).update(changes)
            elif kind == items.MESSAGE:
                event, message = message_rows(item)
                events[event["id"]] = event
                messages.append(message)
            else:  # a (kind, row) pair
                row = item[1]
                if kind == items.RUN:
                    runs.setdefault(row["id"], {}).update(row)
                elif kind == items.NODE:
                    nodes.setdefault(row["id"], {}).update(row)
                elif kind == items.FILE:
                    lists[items.FILE].append(file_row(row))
                elif kind == items.COST:
                    lists[kind].append({**row, "timestamp": as_datetime(row["timestamp"])})  # a stamp until here
                else:
                    lists[kind].append(row)
        clean = self.clean
        return {"runs": [clean(r) for r in runs.values()], "nodes": [clean(r) for r in nodes.values()],
                "edges": lists[items.EDGE], "events": [clean(r) for r in events.values()],
                "event_updates": [clean(r) for r in updates.values()], "files": [clean(r) for r in lists[items.FILE]],
                "messages": [clean(r) for r in messages], "costs": lists[items.COST], "_items": len(queued)}

    def clean(self, row: dict[str, Any]) -> dict[str, Any]:
        """Encode and redact a row in place (rows built from queue items belong to the sink)."""
        redact = self.redactor
        limit = self.limit
        for field in PAYLOAD_FIELDS:
            value = row.get(field)
            if value is not None:
                fast = redact.flat(value, limit // 4) if type(value) is dict else None
                row[field] = fast if fast is not None else redact.value(_encode(redact.value(value), limit))
        for field in TEXT_FIELDS:
            value = row.get(field)
            if value is not None:
                row[field] = redact.text(value if isinstance(value, str) else dumps(_encode(value, limit)))
        return row


def _encode(value: Any, limit: int) -> Any:
    """encode_payload, retried once when another thread mutated the value while it was being walked."""
    try:
        return encode_payload(value, limit)
    except RuntimeError:
        try:
            return encode_payload(value, limit)
        except RuntimeError as exc:
            return {"__unserialisable__": type(value).__name__, "reason": str(exc)}
