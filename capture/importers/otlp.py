"""OTLP traces into the capture store: ``skillmine import otlp FILE`` and the receiver of ``skillmine serve otlp``.

The mapping (GenAI semantic conventions, AG2 Classic's ``autogen.opentelemetry`` names, and skillmine's own
``skillmine.*`` attributes written by :mod:`capture.read.otlp_export`, which win where present):

- a trace is a run (``run_id`` is the trace id as a UUID); its root span, when it is a workflow span
  (``invoke_workflow``, AG2's ``conversation`` / ``initiate_chats``), gives the run row (mode, task, status,
  times) and is not an event; any other span is one event, nested as the spans are (``parent_event_id``,
  ``depth``);
- ``invoke_agent`` (and a nested ``conversation``) -> ``agent_call``; ``chat`` / ``text_completion`` /
  ``generate_content`` -> ``llm_call`` with tokens (``gen_ai.usage.*``) and a cost record where a cost is given
  (AG2's ``gen_ai.usage.cost``); ``execute_tool`` -> ``tool_call`` (``meta.tool_name``); AG2's ``execute_code`` ->
  ``code_exec`` with its exit code; AG2's ``speaker_selection`` -> ``handoff`` to the selected speaker;
  ``await_human_input`` -> ``approval_requested``; anything else -> ``info``, counted as not mapped;
- an event's id is ``skillmine.event.id`` when given, else derived from the trace and span ids; its order is
  ``skillmine.event.order``, else the rank of its start time in the trace.

Idempotent: a span already stored is skipped, so re-sending changes nothing. A trace is written in one transaction,
alone or with the other traces of its request (and, in the receiver, of the requests that arrived meanwhile): it is
all-or-nothing either way. Late spans of a stored trace are merged: they join the run, their parents and children
are linked and, for traces without explicit orders, the run's order is recomputed. Every span's text goes through
the capture redactor, and the rows of a span it would change are redacted.
Malformed input raises :class:`~capture.importers.common.SourceError` naming the span (trace and span id, name).
"""

import base64
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from capture.core import otlp_names as names
from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings
from capture.importers.common import ImportReport, SourceError, importing, json_lines, member_id, stable_id
from capture.store.capture_store import Batch, CaptureStore
from capture.store.models import EVENTS, RUNS

ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR
KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
              "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CHUNK_SPANS = 20_000  # spans a file import holds in memory at once
LOOKUP_CHUNK = 500  # run ids per IN (...) look-up of stored traces (SQLite's variable limit)
# Columns that hold text a source wrote (everything else is an id, a type, a time or a number).
TEXT_COLUMNS = {"runs": ("task_description", "meta", "agent", "mode"),
                "events": ("agent_name", "error_message", "inputs", "outputs", "meta"),
                "nodes": ("agent", "meta"), "files": ("file_path", "generating_agent", "meta"),
                "costs": ("agent_name", "model")}


@dataclass(slots=True)
class Span:
    """One span, from protobuf or JSON: what the mapping reads."""

    trace_id: bytes
    span_id: bytes
    parent_id: bytes
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    service: str

    def label(self) -> str:
        """How errors name this span."""
        return f"span {self.span_id.hex()} ({self.name!r}) of trace {self.trace_id.hex()}"


# -- parsing ----------------------------------------------------------------------------------------------------

def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _proto_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def spans_from_protobuf(body: bytes) -> list[Span]:
    """The spans of a protobuf ``ExportTraceServiceRequest``; ``SourceError`` when it does not parse."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError as exc:
        raise SourceError(f"not an OTLP ExportTraceServiceRequest (protobuf): {exc}") from None
    out = []
    for resource_spans in request.resource_spans:
        service = next((_proto_value(a.value) for a in resource_spans.resource.attributes
                        if a.key == "service.name"), None) or ""
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                out.append(Span(s.trace_id, s.span_id, s.parent_span_id, s.name, s.kind, s.start_time_unix_nano,
                                s.end_time_unix_nano, {a.key: _proto_value(a.value) for a in s.attributes},
                                s.status.code, s.status.message, str(service)))
    return out


def _json_value(value: dict[str, Any]) -> Any:
    for key, item in value.items():
        if key == "stringValue" or key == "boolValue":
            return item
        if key == "intValue":
            return int(item)
        if key == "doubleValue":
            return float(item)
        if key == "bytesValue":
            return base64.b64decode(item)
        if key == "arrayValue":
            return [_json_value(v) for v in item.get("values", [])]
        if key == "kvlistValue":
            return {kv["key"]: _json_value(kv.get("value", {})) for kv in item.get("values", [])}
    return None


def _json_id(text: Any, size: int, what: str) -> bytes:
    """OTLP/JSON ids are hex (the spec; what the Collector writes); base64 is accepted as protobuf's JSON gives."""
    if not text:
        return b""
    text = str(text)
    if len(text) == size * 2:
        return bytes.fromhex(text)
    raw = base64.b64decode(text, validate=True)
    if len(raw) != size:
        raise ValueError(f"{what} {text!r} is not {size} bytes")
    return raw


def _enum(value: Any, table: dict[str, int]) -> int:
    return table[value] if isinstance(value, str) else int(value or 0)


def spans_from_json(document: dict[str, Any]) -> list[Span]:
    """The spans of an OTLP/JSON ``ExportTraceServiceRequest``; ``SourceError`` naming the first bad span."""
    if not isinstance(document, dict) or not isinstance(document.get("resourceSpans", []), list):
        raise SourceError("not an OTLP/JSON ExportTraceServiceRequest (no resourceSpans list)")
    out = []
    for r_index, resource_spans in enumerate(document.get("resourceSpans", [])):
        attributes = (resource_spans.get("resource") or {}).get("attributes") or []
        service = next((_json_value(a.get("value", {})) for a in attributes if a.get("key") == "service.name"),
                       None) or ""
        for s_index, scope_spans in enumerate(resource_spans.get("scopeSpans") or []):
            for index, s in enumerate(scope_spans.get("spans") or []):
                where = f"resourceSpans[{r_index}].scopeSpans[{s_index}].spans[{index}]"
                try:
                    status = s.get("status") or {}
                    span = Span(_json_id(s["traceId"], 16, "traceId"), _json_id(s["spanId"], 8, "spanId"),
                                _json_id(s.get("parentSpanId"), 8, "parentSpanId"), str(s.get("name", "")),
                                _enum(s.get("kind"), KIND_NAMES), int(s.get("startTimeUnixNano") or 0),
                                int(s.get("endTimeUnixNano") or 0),
                                {a["key"]: _json_value(a.get("value") or {}) for a in s.get("attributes") or []},
                                _enum(status.get("code"), STATUS_NAMES), str(status.get("message") or ""),
                                str(service))
                except (KeyError, ValueError, TypeError, AttributeError) as exc:
                    name = s.get("name") if isinstance(s, dict) else None
                    raise SourceError(f"{where} ({name!r}): malformed span: {type(exc).__name__}: {exc}") from None
                out.append(span)
    return out


# -- mapping ----------------------------------------------------------------------------------------------------

def _operation(span: Span) -> str:
    attrs = span.attributes
    return str(attrs.get("gen_ai.operation.name") or span.name.split(" ", 1)[0])


def _is_workflow_root(span: Span) -> bool:
    return not span.parent_id and _operation(span) in names.WORKFLOW_OPS


def _loads(span: Span, key: str, default: Any) -> Any:
    raw = span.attributes.get(key)
    if raw is None:
        return default
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise SourceError(f"{span.label()}: attribute {key} is not JSON: {exc}") from None


def _first_text(messages: Any) -> str | None:
    """The first text part of a GenAI ``gen_ai.input.messages`` list (the task of an AG2 conversation)."""
    for message in messages if isinstance(messages, list) else []:
        for part in (message or {}).get("parts") or []:
            if isinstance(part, dict) and part.get("type") == "text" and part.get("content"):
                return str(part["content"])
    return None


def _moment(ns: int) -> datetime | None:
    return EPOCH + timedelta(microseconds=ns // 1_000) if ns else None


@dataclass(slots=True)
class _Known:
    """A stored or incoming span of a trace, as the merge of late spans needs it."""

    event_id: str
    parent_hex: str | None
    start_ns: int
    explicit_order: int | None
    explicit_depth: int | None
    agent: str | None
    missing_node: str | None = None  # a node the event names that was not stored when the event was
    parent_event_id: str | None = None
    depth: int = 0
    order: int = 0


@dataclass
class TraceOutcome:
    """What ingesting one trace did."""

    run_id: str
    state: str  # "new", "updated" (late spans merged) or "unchanged"
    events: int = 0
    files: int = 0
    costs: int = 0


@dataclass
class _Plan:
    """The rows one trace adds to the store, what they do to its run, and what counts once they are committed."""

    outcome: TraceOutcome
    batch: Batch
    spans: int
    unmapped: list[str] = field(default_factory=list)  # operations of spans mapped to ``info``


@dataclass
class IngestCounts:
    """Totals over :meth:`OtlpIngestor.ingest` calls."""

    spans: int = 0
    traces: int = 0
    events: int = 0
    unmapped: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class OtlpIngestor:
    """Writes spans into a capture store, one transaction per trace (see the module docstring)."""

    def __init__(self, store: CaptureStore, *, session: str | None = None,
                 redactor: Redactor | None = None) -> None:
        self.store = store
        self.session = session
        self.redactor = redactor or Redactor(CaptureSettings.from_env().redact_patterns)
        self.counts = IngestCounts()

    def ingest(self, spans: Iterable[Span]) -> list[TraceOutcome]:
        """Write every trace of ``spans`` (grouped by trace id, in first-seen order) in one transaction: a trace is
        all-or-nothing because the whole write is, and a malformed span writes nothing."""
        [result] = self.ingest_requests([list(spans)])
        if isinstance(result, Exception):
            raise result
        return result

    def ingest_requests(self, requests: list[list[Span]]) -> list[list[TraceOutcome] | Exception]:
        """Write several requests' traces with as few commits as they allow (the receiver's group commit): one
        transaction for all of them, unless a trace recurs in a later request, which then merges against the
        earlier one's commit. Each request gets its traces' outcomes or its own error (``SourceError`` for a
        malformed span, or what the store raised); a group whose write fails is retried request by request, so
        one bad request never costs the others."""
        results: list[list[TraceOutcome] | Exception | None] = [None] * len(requests)
        pending: list[tuple[int, dict[bytes, list[Span]]]] = []
        seen: set[bytes] = set()
        for index, spans in enumerate(requests):
            try:
                traces = self.traces(spans)
            except SourceError as exc:
                results[index] = exc
                continue
            if seen & traces.keys():
                self._write_group(pending, results)
                pending, seen = [], set()
            pending.append((index, traces))
            seen.update(traces)
        self._write_group(pending, results)
        return results  # type: ignore[return-value]  # every slot is filled

    @staticmethod
    def traces(spans: Iterable[Span]) -> dict[bytes, list[Span]]:
        """``spans`` grouped by trace id in first-seen order; ``SourceError`` on an id of the wrong size."""
        traces: dict[bytes, list[Span]] = {}
        for span in spans:
            if len(span.trace_id) != 16 or len(span.span_id) != 8 or span.parent_id and len(span.parent_id) != 8:
                raise SourceError(f"{span.label()}: trace ids have 16 bytes, span ids 8")
            traces.setdefault(span.trace_id, []).append(span)
        return traces

    def write_trace(self, trace_id: bytes, spans: list[Span]) -> TraceOutcome:
        """Merge one trace's spans into its run in one transaction."""
        run_id = names.run_id_of(trace_id)
        plan = self._plan(trace_id, spans, *self._stored([run_id]).get(run_id, (None, {})))
        self._commit([plan])
        return plan.outcome

    def _write_group(self, pending: list[tuple[int, dict[bytes, list[Span]]]],
                     results: list[list[TraceOutcome] | Exception | None]) -> None:
        """Plan the traces of ``pending`` requests (no trace in two of them) and commit them together."""
        if not pending:
            return
        stored = self._stored([names.run_id_of(t) for _, traces in pending for t in traces])
        planned: list[tuple[int, list[_Plan]]] = []
        for index, traces in pending:
            try:
                planned.append((index, [self._plan(t, spans, *stored.get(names.run_id_of(t), (None, {})))
                                        for t, spans in traces.items()]))
            except SourceError as exc:
                results[index] = exc
        try:
            self._commit([plan for _, plans in planned for plan in plans])
        except Exception as exc:  # noqa: BLE001 - handed to the request(s) it belongs to
            if len(planned) == 1:
                results[planned[0][0]] = exc
                return
            for index, plans in planned:  # find the request it belongs to; the others are written
                try:
                    self._commit(plans)
                except Exception as own:  # noqa: BLE001 - that request's own error
                    results[index] = own
                else:
                    results[index] = [plan.outcome for plan in plans]
            return
        for index, plans in planned:
            results[index] = [plan.outcome for plan in plans]

    def _commit(self, plans: list["_Plan"]) -> None:
        """One ``write_batch`` of every plan's rows; counted once committed."""
        batch = Batch()
        for plan in plans:
            for table in ("runs", "nodes", "events", "event_updates", "files", "costs"):
                getattr(batch, table).extend(getattr(plan.batch, table))
        if len(batch):
            self.store.write_batch(batch)
        for plan in plans:
            self.counts.spans += plan.spans
            self.counts.traces += 1
            self.counts.events += len(plan.batch.events)
            for op in plan.unmapped:
                self.counts.unmapped[f"span {op}"] += 1

    def _stored(self, run_ids: list[str]) -> dict[str, tuple[dict[str, Any], dict[str, _Known]]]:
        """The stored run row and spans of those of ``run_ids`` that are stored (one query per table)."""
        out: dict[str, tuple[dict[str, Any], dict[str, _Known]]] = {}
        with self.store.engine.connect() as conn:
            for start in range(0, len(run_ids), LOOKUP_CHUNK):
                chunk = run_ids[start:start + LOOKUP_CHUNK]
                for run in conn.execute(select(RUNS.c.id, RUNS.c.meta, RUNS.c.session_id)
                                        .where(RUNS.c.id.in_(chunk))):
                    out[run.id] = ({"meta": run.meta or {}, "session_id": run.session_id}, {})
            stored = list(out)
            for start in range(0, len(stored), LOOKUP_CHUNK):
                rows = conn.execute(select(EVENTS.c.run_id, EVENTS.c.id, EVENTS.c.parent_event_id, EVENTS.c.depth,
                                           EVENTS.c.execution_order, EVENTS.c.agent_name, EVENTS.c.meta)
                                    .where(EVENTS.c.run_id.in_(stored[start:start + LOOKUP_CHUNK])))
                for row in rows:
                    meta = row.meta or {}
                    otlp = meta.get("otlp") or {}
                    if otlp.get("span_id"):
                        out[row.run_id][1][otlp["span_id"]] = _Known(
                            row.id, otlp.get("parent_span_id"), int(otlp.get("start_ns", 0)), otlp.get("order"),
                            otlp.get("depth"), row.agent_name, meta.get("missing_node_id"), row.parent_event_id,
                            row.depth, row.execution_order)
        return out

    def _plan(self, trace_id: bytes, spans: list[Span], stored_run: dict[str, Any] | None,
              known: dict[str, _Known]) -> "_Plan":
        """The rows that merge one trace's spans into its run, given what is stored of it (redacted)."""
        run_id = names.run_id_of(trace_id)
        roots = [s for s in spans if _is_workflow_root(s)]
        root = roots[0] if roots else None
        run_meta = (stored_run or {}).get("meta") or {}
        if root is not None and run_meta.get("otlp_root_digest") == _digest(root):
            root = None  # already stored as it is: re-sent (a changed one, e.g. the run has ended, is rewritten)
        workflow = roots[0] if roots else None
        fresh = {span.span_id.hex(): span for span in spans
                 if span is not workflow and span.span_id.hex() not in known}
        plan = _Plan(TraceOutcome(run_id, "unchanged"), Batch(), len(spans))
        if root is None and not fresh:
            return plan
        session = (self.session or (root.attributes.get(names.SESSION) if root else None)
                   or (stored_run or {}).get("session_id")
                   or stable_id("otlp-session", (root or next(iter(fresh.values()))).service))
        batch = plan.batch
        top = next((span for span in fresh.values() if not span.parent_id), None) if workflow is None else None
        run_span = root or top
        if root is not None or stored_run is None:
            batch.runs.append(self._run_row(run_id, session, run_span, run_meta, workflow=root is not None))
        elif top is not None and not run_meta.get("otlp_root_span"):
            batch.runs.append(self._run_row(run_id, session, top, run_meta, workflow=False))
        if root is not None:
            batch.nodes.extend({**node, "run_id": run_id, "session_id": session}
                               for node in _loads(root, names.NODES, []))
            batch.files.extend(self._files(root, run_id, session, None))
            if not run_meta.get("otlp_root_digest"):  # run-level cost rows have no key: written once
                batch.costs.extend(self._costs(root, run_id, session, None))
        if run_span is not None and self._suspect(run_span):
            for table in TEXT_COLUMNS:  # only the run span's rows so far
                self._scrub(table, getattr(batch, table))
        workflow_hex = run_meta.get("otlp_root_span") or (workflow.span_id.hex() if workflow else None)
        for key, span in fresh.items():
            known[key] = _Known(self._event_id(run_id, span), span.parent_id.hex() or None, span.start_ns,
                                span.attributes.get(names.EVENT + "order"),
                                span.attributes.get(names.EVENT + "depth"), span.attributes.get("gen_ai.agent.name"))
        before = {k: (v.parent_event_id, v.depth, v.order) for k, v in known.items() if k not in fresh}
        _place(known, workflow_hex)
        for key, span in fresh.items():
            event = self._event_row(span, run_id, session, known[key], known, plan.unmapped)
            files = self._files(span, run_id, session, known[key].event_id)
            costs = (self._costs(span, run_id, session, known[key].event_id)
                     or self._llm_cost(span, run_id, session, known[key]))
            if self._suspect(span):
                for table, rows in (("events", [event]), ("files", files), ("costs", costs)):
                    self._scrub(table, rows)
            batch.events.append(event)
            batch.files.extend(files)
            batch.costs.extend(costs)
        new_nodes = {node["id"] for node in batch.nodes}
        for key, (parent, depth, order) in before.items():
            item = known[key]
            update: dict[str, Any] = {}
            if (item.parent_event_id, item.depth, item.order) != (parent, depth, order):
                update.update(parent_event_id=item.parent_event_id, depth=item.depth, execution_order=item.order)
            if item.missing_node in new_nodes:  # its node came with a workflow span that arrived after it
                update["node_id"] = item.missing_node
            if update:
                batch.event_updates.append({"id": item.event_id, **update})
        plan.outcome = TraceOutcome(run_id, "new" if stored_run is None else "updated", len(batch.events),
                                    len(batch.files), len(batch.costs))
        return plan

    def _suspect(self, span: Span) -> bool:
        """Whether the redactor would change any text of ``span`` (so the rows built from it need redacting).

        Every free-text column of a span's rows comes from its name, status message, service or attributes, so
        one scan of those, joined, decides for all its rows, and a clean span (the usual case) costs no walk of its
        payloads. JSON text inside a string is escaped once more in an attribute (``\\"password\\": ...``), which
        the patterns would not see, so text with escapes is scanned a second time unescaped."""
        parts = [span.name, span.status_message, span.service]
        for value in span.attributes.values():
            if isinstance(value, str):
                parts.append(value)
            elif isinstance(value, (list, dict, bytes)):
                parts.append(json.dumps(value, ensure_ascii=False, default=str))
        text = "\n".join(parts)
        if "\\" in text:
            text += "\n" + _unescaped(text)
        return self.redactor.text(text) != text

    def _scrub(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Pass the free-text columns and payloads of ``table``'s ``rows`` through the capture redactor (ids, types,
        times and counts cannot carry a secret and are left alone)."""
        for row in rows:
            for column in TEXT_COLUMNS[table]:
                if row.get(column) is not None:
                    row[column] = self.redactor.value(row[column])

    @staticmethod
    def _event_id(run_id: str, span: Span) -> str:
        return str(span.attributes.get(names.EVENT + "id") or member_id(run_id, "otlp", span.span_id.hex()))

    def _run_row(self, run_id: str, session: str, root: Span | None, run_meta: dict[str, Any],
                 workflow: bool = True) -> dict[str, Any]:
        """The run row from the trace's root span: a workflow span (not an event), or, for a trace without one,
        its first parentless span (an event too); a bare executing run until either arrives."""
        if root is None:
            return {"id": run_id, "session_id": session, "status": "executing", "mode": None,
                    "meta": {"source": "otlp"}}
        attrs = root.attributes
        task = attrs.get(names.RUN + "task_description") or _first_text(_loads(root, "gen_ai.input.messages", None))
        status = attrs.get(names.RUN + "status") or ("failed" if root.status_code == ERROR else "completed")
        meta = {**run_meta, "source": "otlp", "service": root.service, "span_name": root.name}
        if workflow:
            meta.update(otlp_root_span=root.span_id.hex(), otlp_root_digest=_digest(root))
        return {"id": run_id, "session_id": session, "status": status,
                "mode": (attrs.get(names.RUN + "mode") or attrs.get("gen_ai.workflow.name") or root.service
                         or _operation(root)),
                "agent": attrs.get(names.RUN + "agent") or attrs.get("gen_ai.agent.name"),
                "model": attrs.get(names.RUN + "model") or attrs.get("gen_ai.request.model"),
                "task_description": task or root.name, "started_at": _moment(root.start_ns),
                "completed_at": _moment(root.end_ns), "meta": meta}

    def _event_row(self, span: Span, run_id: str, session: str, item: _Known, known: dict[str, _Known],
                   unmapped: list[str]) -> dict[str, Any]:
        attrs, op = span.attributes, _operation(span)
        failed = span.status_code == ERROR
        meta = dict(_loads(span, names.EVENT + "meta", {}) or {})
        inputs = _loads(span, names.EVENT + "inputs", None)
        outputs = _loads(span, names.EVENT + "outputs", None)
        etype = attrs.get(names.EVENT + "type")
        if item.agent is None and (inherited := _inherited_agent(item, known)) is not None:
            item.agent = self.redactor.text(inherited)  # another span's text: this span's scan did not see it
        agent = item.agent
        if etype is None:
            etype, inputs, outputs = self._mapped(span, op, meta, inputs, outputs, unmapped)
        if etype == "tool_call" and attrs.get("gen_ai.tool.name"):
            meta["tool_name"] = attrs["gen_ai.tool.name"]
        if etype == "code_exec" and attrs.get(names.EXIT_CODE, attrs.get("ag2.code_execution.exit_code")) is not None:
            meta["exit_code"] = attrs.get(names.EXIT_CODE, attrs.get("ag2.code_execution.exit_code"))
        if etype == "file_gen" and attrs.get(names.FILE_TYPE):
            meta["file_type"] = attrs[names.FILE_TYPE]
        if etype == "llm_call":
            meta.update(self._usage(attrs))
        meta["otlp"] = {"span_id": span.span_id.hex(), "parent_span_id": item.parent_hex, "start_ns": span.start_ns,
                        "name": span.name, "order": item.explicit_order, "depth": item.explicit_depth}
        started = _moment(span.start_ns)
        if names.EVENT + "id" in attrs:  # skillmine's own span: its stored duration and open end, as they were
            duration = attrs.get(names.EVENT + "duration_ms")
            completed = None if attrs.get(names.EVENT + "open") else _moment(span.end_ns)
        else:
            duration = max(0, span.end_ns - span.start_ns) // 1_000_000 if span.end_ns else None
            completed = _moment(span.end_ns)
        return {"id": item.event_id, "run_id": run_id, "session_id": session, "parent_event_id": item.parent_event_id,
                "node_id": attrs.get(names.EVENT + "node_id"), "step_id": attrs.get(names.EVENT + "step_id"),
                "event_type": etype,
                "event_subtype": attrs.get(names.EVENT + "subtype") or ("error" if failed else "complete"),
                "agent_name": agent, "agent_role": attrs.get(names.EVENT + "agent_role"),
                "timestamp": started, "started_at": started,
                "completed_at": completed, "duration_ms": duration,
                "status": attrs.get(names.EVENT + "status") or ("failed" if failed else "completed"),
                "error_message": span.status_message or attrs.get("error.type") if failed else None,
                "inputs": inputs, "outputs": outputs, "meta": meta, "execution_order": item.order,
                "depth": item.depth}

    @staticmethod
    def _mapped(span: Span, op: str, meta: dict[str, Any], inputs: Any, outputs: Any,
                unmapped: list[str]) -> tuple[str, Any, Any]:
        """Event type, inputs and outputs of a span without ``skillmine.event.type``."""
        attrs = span.attributes
        if op in names.AGENT_OPS or op in names.WORKFLOW_OPS:
            meta["source_type"] = op
            return "agent_call", inputs, outputs
        if op in names.LLM_OPS:
            return "llm_call", inputs, outputs
        if op in names.TOOL_OPS:
            args, result = attrs.get("gen_ai.tool.call.arguments"), attrs.get("gen_ai.tool.call.result")
            return ("tool_call", inputs or {"tool_name": attrs.get("gen_ai.tool.name"), "arguments": args,
                                            "call_id": attrs.get("gen_ai.tool.call.id")},
                    outputs or ({"result": result} if result is not None else None))
        if op in names.CODE_OPS:
            return "code_exec", inputs, outputs or {"exit_code": attrs.get("ag2.code_execution.exit_code"),
                                                    "output": attrs.get("ag2.code_execution.output")}
        if op in names.HANDOFF_OPS:
            meta["source_type"] = op
            return "handoff", inputs or {"from": attrs.get(names.HANDOFF_FROM),
                                         "to": attrs.get(names.HANDOFF_TO) or attrs.get("ag2.speaker_selection.selected"),
                                         "candidates": _loads(span, "ag2.speaker_selection.candidates", None)}, outputs
        if op in names.HUMAN_OPS:
            return ("approval_requested", inputs or {"prompt": attrs.get("ag2.human_input.prompt")},
                    outputs or {"answer": attrs.get("ag2.human_input.response")})
        unmapped.append(op)
        meta["source_type"] = op
        return "info", inputs, outputs

    @staticmethod
    def _usage(attrs: dict[str, Any]) -> dict[str, Any]:
        prompt, completion = attrs.get("gen_ai.usage.input_tokens"), attrs.get("gen_ai.usage.output_tokens")
        usage = {"model": attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")}
        if prompt is not None or completion is not None:
            usage.update(prompt_tokens=int(prompt or 0), completion_tokens=int(completion or 0),
                         total_tokens=int(prompt or 0) + int(completion or 0))
        if attrs.get("gen_ai.usage.cost") is not None:
            usage["cost_usd"] = float(attrs["gen_ai.usage.cost"])
        return usage

    def _llm_cost(self, span: Span, run_id: str, session: str, item: _Known) -> list[dict[str, Any]]:
        """A cost record for a foreign ``chat`` span that reports tokens or a cost."""
        if _operation(span) not in names.LLM_OPS or names.EVENT + "type" in span.attributes:
            return []
        usage = self._usage(span.attributes)
        if len(usage) == 1:
            return []
        return [{"run_id": run_id, "session_id": session, "event_id": item.event_id, "model": usage["model"],
                 "agent_name": item.agent, "prompt_tokens": usage.get("prompt_tokens", 0),
                 "completion_tokens": usage.get("completion_tokens", 0),
                 "total_tokens": usage.get("total_tokens", 0), "cost_usd": usage.get("cost_usd", 0.0),
                 "timestamp": _moment(span.start_ns)}]

    @staticmethod
    def _files(span: Span, run_id: str, session: str, event_id: str | None) -> list[dict[str, Any]]:
        return [{**row, "run_id": run_id, "session_id": session, "event_id": event_id}
                for row in _loads(span, names.FILES, [])]

    @staticmethod
    def _costs(span: Span, run_id: str, session: str, event_id: str | None) -> list[dict[str, Any]]:
        return [{**row, "run_id": run_id, "session_id": session, "event_id": event_id}
                for row in _loads(span, names.COSTS, [])]


def _digest(span: Span) -> str:
    """What a re-sent span must equal to change nothing: its name, times, status and attributes."""
    text = json.dumps([span.name, span.start_ns, span.end_ns, span.status_code, span.status_message,
                       span.attributes], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _unescaped(text: str) -> str:
    """``text`` with JSON string escapes undone at any depth of nesting (approximately: escape letters become the
    characters they stand for, every other backslash goes; it only widens what the redactor scans)."""
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r").replace("\\", "")


def _inherited_agent(item: _Known, known: dict[str, _Known]) -> str | None:
    """The nearest ancestor's agent (an LLM or tool span inside an ``invoke_agent`` span)."""
    seen, current = set(), item.parent_hex
    while current and current in known and current not in seen:
        seen.add(current)
        if known[current].agent:
            return known[current].agent
        current = known[current].parent_hex
    return None


def _place(known: dict[str, _Known], workflow_hex: str | None) -> None:
    """Parent event, depth and order of every span of a trace (stored and incoming together)."""
    for item in known.values():
        parent = known.get(item.parent_hex) if item.parent_hex and item.parent_hex != workflow_hex else None
        item.parent_event_id = parent.event_id if parent is not None else None
        if item.explicit_depth is not None:
            item.depth = int(item.explicit_depth)
            continue
        depth, seen, current = 0, set(), parent
        while current is not None and current.event_id not in seen:
            seen.add(current.event_id)
            depth += 1
            current = known.get(current.parent_hex) if current.parent_hex != workflow_hex else None
        item.depth = depth
    ranked = sorted(known.items(), key=lambda kv: (kv[1].start_ns, kv[0]))
    for rank, (_, item) in enumerate(ranked, start=1):
        item.order = int(item.explicit_order) if item.explicit_order is not None else rank


# -- files ------------------------------------------------------------------------------------------------------

def read_json_lines(path: Path) -> Iterator[Span]:
    """Spans of a Collector file-exporter file (one OTLP/JSON ``ExportTraceServiceRequest`` per line)."""
    for number, document in json_lines(path, "one ExportTraceServiceRequest per line"):
        try:
            yield from spans_from_json(document)
        except SourceError as exc:
            raise SourceError(f"{path}: line {number}: {exc}") from None


def _chunks(spans: Iterable[Span], size: int) -> Iterator[list[Span]]:
    chunk: list[Span] = []
    for span in spans:
        chunk.append(span)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def import_otlp(path: str | Path, store: CaptureStore, *, session: str | None = None,
                quiet: bool = True) -> ImportReport:
    """Merge every trace of an OTLP JSON-lines file into ``store``, :data:`CHUNK_SPANS` spans at a time (memory
    stays bounded; a trace cut by a chunk boundary is merged like late spans), one transaction per trace."""
    path = Path(path)
    with importing("otlp", path, store, quiet=quiet) as job:
        ingestor = OtlpIngestor(store, session=session)
        states: dict[str, str] = {}  # run -> what the import did to it (its first change counts)
        try:
            for chunk in _chunks(read_json_lines(path), CHUNK_SPANS):
                for trace_id, group in ingestor.traces(chunk).items():  # each trace counted once committed
                    outcome = ingestor.write_trace(trace_id, group)
                    if states.get(outcome.run_id, "unchanged") == "unchanged":
                        states[outcome.run_id] = outcome.state
                    job.report.events += outcome.events
                    job.report.files += outcome.files
                    job.report.costs += outcome.costs
                    job.progress.step(outcome.events)
        except SourceError as exc:  # a span's error names the span; the file's name goes first
            raise SourceError(str(exc) if str(exc).startswith(f"{path}: ") else f"{path}: {exc}") from None
        finally:  # traces committed before a bad one stay, and the report says so
            for state in states.values():
                name = "runs_skipped" if state == "unchanged" else f"runs_{state}"
                setattr(job.report, name, getattr(job.report, name) + 1)
            job.report.unmapped.update(ingestor.counts.unmapped)
    return job.report
