"""The receiver's group commit (several requests' traces in one transaction, each request answered with its own
outcome or error) and the span-level redaction check that decides which rows the redactor walks."""

import json
import threading
import time
from dataclasses import replace

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from sqlalchemy import create_engine, text

from capture.importers.common import SourceError
from capture.importers.otlp import OtlpIngestor, Span, spans_from_json, spans_from_protobuf
from capture.read.otlp_export import SpanBuilder, load_runs
from capture.store.capture_store import CaptureStore
from capture.store.records import BadRecord
from workloads.simulate import simulate


def _rows(store: CaptureStore, sql: str) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> list[tuple[str, int, bytes]]:
    """Four simulated runs, each as (run id, events, its trace as a protobuf ExportTraceServiceRequest)."""
    root = tmp_path_factory.mktemp("group")
    url = f"sqlite:///{root / 'source.db'}"
    simulate(runs=4, seed=5, url=url, ground_truth=root / "truth.jsonl")
    engine = create_engine(url)
    with engine.connect() as conn:
        ids = list(conn.execute(text("SELECT id FROM workflow_runs ORDER BY id")).scalars())
    out = [(rows.run["id"], len(rows.events), encode_spans(SpanBuilder().spans(rows)).SerializeToString())
           for rows in load_runs(engine, run_ids=ids)]
    engine.dispose()
    return out


@pytest.fixture(scope="module")
def traces(exported) -> list[tuple[str, int, list[Span]]]:
    """The same runs, each as (run id, events, its spans parsed)."""
    return [(run_id, events, spans_from_protobuf(body)) for run_id, events, body in exported]


@pytest.fixture
def store(tmp_path):
    opened = CaptureStore.open(f"sqlite:///{tmp_path / 'target.db'}")  # a new SQLite file is migrated on open
    yield opened
    opened.close()


def _events_by_run(store: CaptureStore) -> dict[str, int]:
    return dict(_rows(store, "SELECT run_id, count(*) FROM execution_events GROUP BY run_id"))


def _copied(spans: list[Span]) -> list[Span]:
    """Spans whose attributes a test may change without touching the module's fixture."""
    return [replace(span, attributes=dict(span.attributes)) for span in spans]


def _event_span(spans: list[Span]) -> Span:
    return next(s for s in spans if s.parent_id)


def test_a_group_is_one_commit_and_each_request_gets_its_own_outcome_or_error(traces, store) -> None:
    (good, good_events, good_spans), (_, _, bad_spans), (other, other_events, other_spans), \
        (refused, _, refused_spans) = traces
    malformed = _copied(bad_spans)
    _event_span(malformed).attributes["skillmine.event.meta"] = "{not json"
    invalid = _copied(refused_spans)
    _event_span(invalid).attributes["skillmine.event.status"] = "bogus"  # passes mapping, refused by the store
    writes = []
    write_batch = store.write_batch

    def counted(batch):
        writes.append(sorted({row["run_id"] for row in batch.events}))
        return write_batch(batch)

    store.write_batch = counted
    ingestor = OtlpIngestor(store)
    results = ingestor.ingest_requests([good_spans, malformed, other_spans, good_spans, invalid])
    assert [o.state for o in results[0]] == ["new"] and [o.state for o in results[2]] == ["new"]
    assert isinstance(results[1], SourceError) and _event_span(malformed).span_id.hex() in str(results[1])
    assert [o.state for o in results[3]] == ["unchanged"]  # the same trace again: merged after the first commit
    assert isinstance(results[4], BadRecord) and "bogus" in str(results[4])
    # group 1 (good, other) in one commit; group 2 (the resent trace, nothing to write, and the refused one) fails
    # as a whole and is retried request by request, so only the refused request's write is tried again
    assert writes == [sorted([good, other]), [refused], [refused]]
    assert _events_by_run(store) == {good: good_events, other: other_events}
    assert ingestor.counts.traces == 3 and ingestor.counts.events == good_events + other_events


def test_ingest_writes_nothing_of_a_request_with_a_malformed_span(traces, store) -> None:
    (_, _, first_spans), (_, _, second_spans) = traces[:2]
    broken = _copied(second_spans)
    _event_span(broken).attributes["skillmine.event.inputs"] = "[1,"
    with pytest.raises(SourceError, match=_event_span(broken).span_id.hex()):
        OtlpIngestor(store).ingest(first_spans + broken)
    assert _events_by_run(store) == {}


def test_json_text_inside_a_payload_string_is_redacted(traces, store) -> None:
    _, _, spans = traces[0]
    copied = _copied(spans)
    target = _event_span(copied)
    secret = "hunter2hunter2"
    # a payload holding JSON text: in the attribute its quotes are escaped once more (the old row scan missed it)
    target.attributes["skillmine.event.inputs"] = json.dumps({"config": json.dumps({"password": secret})})
    OtlpIngestor(store).ingest(copied)
    ((inputs,),) = _rows(store, f"SELECT inputs FROM execution_events WHERE "
                                                f"json_extract(meta, '$.otlp.span_id') = '{target.span_id.hex()}'")
    assert secret not in inputs and json.loads(json.loads(inputs)["config"]) == {"password": "***"}


def test_an_agent_name_inherited_from_a_parent_span_is_redacted(store) -> None:
    key = "sk-proj-" + "Z9y8" * 8
    trace = "cd" * 16

    def span(span_id: str, parent: str | None, name: str, attributes: dict) -> dict:
        return {"traceId": trace, "spanId": span_id, "parentSpanId": parent or "", "name": name,
                "startTimeUnixNano": str(1_700_000_000_000_000_000 + int(span_id[:2], 16)),
                "endTimeUnixNano": str(1_700_000_001_000_000_000),
                "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]}

    document = {"resourceSpans": [{"scopeSpans": [{"spans": [
        span("01" * 8, None, "invoke_agent", {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": key}),
        span("02" * 8, "01" * 8, "chat", {"gen_ai.operation.name": "chat"})]}]}]}
    OtlpIngestor(store).ingest(spans_from_json(document))
    names = _rows(store, "SELECT agent_name FROM execution_events ORDER BY execution_order")
    assert len(names) == 2 and all(key not in (name or "") and "***" in name for (name,) in names)


def test_requests_that_queue_behind_a_write_share_one_commit(exported, receiver) -> None:
    writer = receiver.receiver
    replies: list[int] = []

    def post(body: bytes) -> None:
        replies.append(httpx.post(receiver.endpoint, content=body, timeout=60,
                                  headers={"Content-Type": "application/x-protobuf"}).status_code)

    senders = [threading.Thread(target=post, args=(body,)) for _, _, body in exported]
    with writer.cond:
        writer.writing = True  # a write in progress: the requests queue behind it
    for sender in senders:
        sender.start()
    deadline = time.monotonic() + 60
    while len(writer.pending) < len(senders) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(writer.pending) == len(senders) and not replies  # nothing acknowledged before its commit
    with writer.cond:
        writer.writing = False
        writer.cond.notify_all()
    for sender in senders:
        sender.join(60)
    assert replies == [200] * len(senders)
    assert (writer.stats.groups, writer.stats.requests) == (1, len(senders))
    assert _events_by_run(receiver.store) == {run_id: events for run_id, events, _ in exported}
