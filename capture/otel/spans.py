"""Run rows as OpenTelemetry SDK spans with the GenAI semantic conventions (shared by the store export and the live
sink).

A run is one trace: an ``invoke_workflow`` root span (INTERNAL) and one span per event, nested as the events are
(``parent_event_id``, else under the root). Agent calls are ``invoke_agent {agent}``, LLM calls ``chat {model}``
(CLIENT, ``gen_ai.usage.*`` tokens and AG2's ``gen_ai.usage.cost``), tool calls ``execute_tool {tool}``, code
executions ``execute_code {agent}`` (as AG2's own instrumentation names them); other events keep their type
(``skillmine.handoff``, ``skillmine.message`` ...). skillmine's own facts go under ``skillmine.*``: the event's
id, type, subtype, status, order and node, code exit codes, handoffs, the files an event produced (path, type,
size, sha256), the run's DAG nodes and unlinked cost records. That is everything mining reads, so a run exported
and ingested by ``skillmine import otlp`` mines into the same skills.

The rows are the capture store's (column names and values as a store row holds them): read back from the store
(``capture.read.otlp_export``) or prepared from the recorder's queue items (``capture.sinks.otlp_sink``). The root
span and the event spans are built separately, so a live exporter can send each event as it ends and the root when
the run does. Message content (inputs, outputs, the run's task text stays: it names the task) is opt-in
(``content=True``), and every string leaves through the capture redactor first.
"""

import base64
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from capture.core import otlp_names as names
from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings

SCOPE = InstrumentationScope(names.SCOPE, schema_url="https://opentelemetry.io/schemas/1.37.0")
FAILED = ("failed", "error", "crashed", "timeout", "cancelled")
NODE_FIELDS = ("id", "parent_node_id", "node_type", "agent", "status", "order_index", "depth")
FILE_FIELDS = ("id", "node_id", "file_path", "file_type", "size_bytes", "content_hash", "generating_agent",
               "is_final_output", "workflow_phase", "created_at")
COST_FIELDS = ("node_id", "model", "agent_name", "prompt_tokens", "completion_tokens", "total_tokens", "cost_usd",
               "timestamp")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RUN_FIELDS = ("id", "session_id", "mode", "agent", "model", "status", "task_description")


@dataclass
class RunRows:
    """One run's rows, as plain dicts (a part of them: the live sink hands over the events that have ended)."""

    run: dict[str, Any]
    events: list[dict[str, Any]]
    nodes: list[dict[str, Any]]
    files: list[dict[str, Any]]
    costs: list[dict[str, Any]]


def _ns(moment: datetime | str | None) -> int | None:
    """Nanoseconds since the epoch of a stored time (UTC; naive SQLite times are UTC)."""
    if moment is None:
        return None
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1) * 1000  # exact: no float on the way


def _plain(value: Any) -> Any:
    """JSON for the values a store row holds besides JSON's own: times as UTC ISO text, decimals as floats."""
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_plain, ensure_ascii=False)


def _by_event(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> dict[str | None, list[dict[str, Any]]]:
    """File or cost rows by the event they belong to (``None``: the run's own), cut to ``fields``."""
    out: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row.get("event_id")].append({k: row.get(k) for k in fields})
    return out


class SpanBuilder:
    """Turns :class:`RunRows` into SDK ``ReadableSpan`` objects (redacted; content only when asked)."""

    def __init__(self, *, content: bool = False, redactor: Redactor | None = None,
                 service_name: str = "skillmine") -> None:
        self.content = content
        self.redactor = redactor or Redactor(CaptureSettings.from_env().redact_patterns)
        self.resource = Resource.create({"service.name": service_name})

    def spans(self, rows: RunRows) -> list[ReadableSpan]:
        """The run's workflow span followed by one span per event."""
        return [self.workflow_span(rows), *self.event_spans(rows)]

    def workflow_span(self, rows: RunRows) -> ReadableSpan:
        """The run's ``invoke_workflow`` root span: its row, DAG nodes and the files and costs of no event."""
        run = rows.run
        files, costs = _by_event(rows.files, FILE_FIELDS), _by_event(rows.costs, COST_FIELDS)
        starts = [t for e in rows.events for t in (_ns(e.get("started_at") or e.get("timestamp")),) if t]
        ends = [t for e in rows.events for t in (_ns(e.get("completed_at")), _ns(e.get("timestamp"))) if t]
        start = _ns(run.get("started_at")) or min(starts, default=0)
        end = _ns(run.get("completed_at")) or max(ends, default=start)
        attributes = {"gen_ai.operation.name": "invoke_workflow",
                      "gen_ai.workflow.name": run.get("mode") or "skillmine run",
                      names.SESSION: run["session_id"], names.NODES: _json([{k: n.get(k) for k in NODE_FIELDS}
                                                                             for n in rows.nodes])}
        attributes.update({names.RUN + k: run[k] for k in RUN_FIELDS if run.get(k) is not None})
        if files.get(None):
            attributes[names.FILES] = _json(files[None])
        if costs.get(None):
            attributes[names.COSTS] = _json(costs[None])
        return self._span(f"invoke_workflow {attributes['gen_ai.workflow.name']}", self._root(run["id"]), None,
                          attributes, SpanKind.INTERNAL, start, max(end, start), run.get("status") in FAILED, None)

    def event_spans(self, rows: RunRows) -> list[ReadableSpan]:
        """One span per event of ``rows`` (only ``run["id"]`` of the run row is read), with its files and costs."""
        run_id = rows.run["id"]
        trace_id = int.from_bytes(names.trace_id_of(run_id), "big")
        root = self._root(run_id)
        files, costs = _by_event(rows.files, FILE_FIELDS), _by_event(rows.costs, COST_FIELDS)
        out = []
        for event in rows.events:  # a parent exported earlier (``--since``, or live) is still named as the parent
            parent = event.get("parent_event_id")
            out.append(self._event_span(event, self._context(trace_id, names.span_id_of(event["id"])),
                                        self._context(trace_id, names.span_id_of(parent)) if parent else root,
                                        files.get(event["id"], []), costs.get(event["id"], [])))
        return out

    def _root(self, run_id: str) -> SpanContext:
        return self._context(int.from_bytes(names.trace_id_of(run_id), "big"), names.span_id_of(f"run:{run_id}"))

    @staticmethod
    def _context(trace_id: int, span_id: bytes) -> SpanContext:
        return SpanContext(trace_id, int.from_bytes(span_id, "big"), is_remote=False,
                           trace_flags=TraceFlags(TraceFlags.SAMPLED))

    def _span(self, name: str, context: SpanContext, parent: SpanContext | None, attributes: dict[str, Any],
              kind: SpanKind, start: int, end: int, failed: bool, error: str | None) -> ReadableSpan:
        clean = {k: self.redactor.text(v) if isinstance(v, str) else v for k, v in attributes.items()
                 if v is not None}
        status = Status(StatusCode.ERROR, self.redactor.text(error or "failed")) if failed else Status(StatusCode.OK)
        return ReadableSpan(name=self.redactor.text(name), context=context, parent=parent, resource=self.resource,
                            attributes=clean, kind=kind, status=status, start_time=start, end_time=end,
                            instrumentation_scope=SCOPE)

    def _event_span(self, event: dict[str, Any], context: SpanContext, parent: SpanContext,
                    files: list[dict[str, Any]], costs: list[dict[str, Any]]) -> ReadableSpan:
        etype, agent = event["event_type"], event.get("agent_name")
        meta, inputs, outputs = event.get("meta") or {}, event.get("inputs") or {}, event.get("outputs") or {}
        attributes: dict[str, Any] = {
            names.EVENT + "id": event["id"], names.EVENT + "type": etype,
            names.EVENT + "subtype": event.get("event_subtype"), names.EVENT + "status": event.get("status"),
            names.EVENT + "order": event.get("execution_order"), names.EVENT + "depth": event.get("depth"),
            names.EVENT + "node_id": event.get("node_id"), names.EVENT + "step_id": event.get("step_id"),
            names.EVENT + "agent_role": event.get("agent_role"), "gen_ai.agent.name": agent,
            names.EVENT + "duration_ms": event.get("duration_ms"),
            names.EVENT + "open": event.get("completed_at") is None or None}
        name, kind = f"skillmine.{etype}", SpanKind.INTERNAL
        if etype == "agent_call":
            attributes["gen_ai.operation.name"], name = "invoke_agent", f"invoke_agent {agent}"
        elif etype == "llm_call":
            model = meta.get("model")
            attributes.update({"gen_ai.operation.name": "chat", "gen_ai.request.model": model,
                               "gen_ai.usage.input_tokens": meta.get("prompt_tokens"),
                               "gen_ai.usage.output_tokens": meta.get("completion_tokens")})
            name, kind = (f"chat {model}" if model else "chat"), SpanKind.CLIENT
        elif etype == "tool_call":
            tool = meta.get("tool_name") or inputs.get("tool_name") or inputs.get("name")
            attributes.update({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                               "gen_ai.tool.type": "function"})
            name = f"execute_tool {tool}"
        elif etype == "code_exec":
            code = meta.get("exit_code", outputs.get("exit_code"))
            attributes.update({"gen_ai.operation.name": "execute_code", names.EXIT_CODE: code})
            name = f"execute_code {agent}"
        elif etype == "handoff":
            attributes.update({names.HANDOFF_FROM: inputs.get("from") or agent, names.HANDOFF_TO: inputs.get("to")})
        elif etype == "file_gen":
            attributes[names.FILE_TYPE] = meta.get("file_type")
        if costs:
            attributes["gen_ai.usage.cost"] = float(sum(float(c.get("cost_usd") or 0) for c in costs))
            attributes[names.COSTS] = _json(costs)
        if files:
            attributes[names.FILES] = _json(files)
        if self.content and etype == "llm_call" and outputs:
            attributes["gen_ai.output.messages"] = _json(self.redactor.value(output_messages(outputs)))
        if self.content:
            attributes.update({names.EVENT + "inputs": _json(self.redactor.value(inputs)) if inputs else None,
                               names.EVENT + "outputs": _json(self.redactor.value(outputs)) if outputs else None,
                               names.EVENT + "meta": _json(self.redactor.value(meta)) if meta else None})
        start = _ns(event.get("started_at") or event.get("timestamp")) or 0
        end = _ns(event.get("completed_at"))
        if end is None:
            end = start + int(event.get("duration_ms") or 0) * 1_000_000
        return self._span(name, context, parent, attributes, kind, start, max(start, end),
                          event.get("status") == "failed" or event.get("event_subtype") == "error",
                          event.get("error_message"))


def output_messages(outputs: dict[str, Any]) -> list[dict[str, Any]]:
    """An LLM call's recorded reply (``content`` and the names in ``tool_calls``) as GenAI ``OutputMessages``."""
    parts: list[dict[str, Any]] = []
    if outputs.get("content"):
        parts.append({"type": "text", "content": str(outputs["content"])})
    parts.extend({"type": "tool_call", "name": str(name)} for name in outputs.get("tool_calls") or () if name)
    return [{"role": "assistant", "parts": parts,
             "finish_reason": "tool_call" if outputs.get("tool_calls") else "stop"}]


def to_otlp_json(spans: Sequence[ReadableSpan]) -> dict[str, Any]:
    """An ``ExportTraceServiceRequest`` in OTLP/JSON: ids as hex and enums as integers, as the spec and the
    Collector write them."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    document = MessageToDict(encode_spans(spans), use_integers_for_enums=True)  # OTLP/JSON: enums as integers
    for resource in document.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):
                        span[key] = _b64_to_hex(span[key])
    return document


def _b64_to_hex(text: str) -> str:
    return base64.b64decode(text).hex()
