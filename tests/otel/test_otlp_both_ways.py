"""OTLP both ways (issue 19): captured AG2 runs exported as GenAI spans to a real OTLP/HTTP receiver and mined
again, spans from AG2's own OpenTelemetry instrumentation ingested and mined, idempotence, late spans, bad input,
content opt-in with redaction, and nothing acknowledged lost on SIGTERM."""

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import jsonschema
import pytest
from sqlalchemy import create_engine, text

from capture.core.redaction import Redactor
from capture.importers.otlp import OtlpIngestor, spans_from_json, spans_from_protobuf
from capture.read.otlp_export import RunRows, SpanBuilder, load_runs, send, to_otlp_json
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from skill_pipeline.lib.mining_steps import mine_store
from workloads.simulate import simulate

HERE = Path(__file__).resolve().parent
MINED_COLUMNS = ("id", "parent_event_id", "event_type", "event_subtype", "agent_name", "status", "execution_order",
                 "depth", "node_id",
                 # tool and exit code as mining reads them: meta, else the payload
                 ("coalesce(json_extract(meta, '$.tool_name'), json_extract(inputs, '$.tool_name'), "
                  "json_extract(inputs, '$.name'))"),
                 "coalesce(json_extract(meta, '$.exit_code'), json_extract(outputs, '$.exit_code'))",
                 "json_extract(meta, '$.file_type')")


def _rows(url: str, sql: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _run_ids(url: str) -> list[str]:
    return [r[0] for r in _rows(url, "SELECT id FROM workflow_runs ORDER BY id")]


def _mined_view(url: str) -> list[tuple]:
    return _rows(url, f"SELECT run_id, {', '.join(MINED_COLUMNS)} FROM execution_events ORDER BY run_id, "
                      "execution_order, id")


def _skills(url: str, warehouse: Path) -> dict[str, list]:
    mined, _ = mine_store(url, warehouse)
    return {t.name: t.candidate["steps"] for t in mined.templates}


@pytest.fixture(scope="module")
def captured(tmp_path_factory) -> str:
    """Twelve runs of real AG2 Classic agents (offline scripted models) captured into a store."""
    root = tmp_path_factory.mktemp("captured")
    url = f"sqlite:///{root / 'a.db'}"
    simulate(runs=12, seed=2, engine="ag2", url=url, ground_truth=root / "truth.jsonl", work_dir=root / "work")
    return url


def test_round_trip_through_a_receiver_mines_the_same_skills(captured, receiver, tmp_path) -> None:
    engine = create_engine(captured)
    builder = SpanBuilder()
    for index, rows in enumerate(load_runs(engine, run_ids=_run_ids(captured))):
        send(builder.spans(rows), receiver.endpoint, protocol=("http/protobuf", "http/json")[index % 2])
    engine.dispose()
    assert _run_ids(receiver.url) == _run_ids(captured)
    assert _mined_view(receiver.url) == _mined_view(captured)
    assert _rows(receiver.url, "SELECT mode, status, task_description FROM workflow_runs ORDER BY id") == \
        _rows(captured, "SELECT mode, status, task_description FROM workflow_runs ORDER BY id")
    times = "SELECT id, started_at, completed_at, duration_ms FROM execution_events ORDER BY id"
    assert _rows(receiver.url, times) == _rows(captured, times)
    assert _rows(receiver.url, "SELECT file_path, file_type, content_hash FROM files ORDER BY id") == \
        _rows(captured, "SELECT file_path, file_type, content_hash FROM files ORDER BY id")
    original = _skills(captured, tmp_path / "a.duckdb")
    assert original and _skills(receiver.url, tmp_path / "b.duckdb") == original


def test_resending_changes_nothing_and_late_spans_are_merged(captured, tmp_path) -> None:
    engine = create_engine(captured)
    rows = next(load_runs(engine, run_ids=_run_ids(captured)[:1]))
    engine.dispose()
    spans = SpanBuilder().spans(rows)
    parsed = spans_from_protobuf(_protobuf(spans))
    url = f"sqlite:///{tmp_path / 'late.db'}"
    upgrade(url)
    store = CaptureStore.open(url)
    ingestor = OtlpIngestor(store)
    half = len(parsed) // 2
    first = ingestor.ingest(parsed[half:])  # children before their parents, the workflow span last
    second = ingestor.ingest(parsed[:half])
    assert [o.state for o in first + second] == ["new", "updated"]
    view = _mined_view(url)
    assert view == [r for r in _mined_view(captured) if r[0] == rows.run["id"]]
    parents = _rows(url, "SELECT count(*) FROM execution_events WHERE parent_event_id IS NOT NULL")
    assert parents == _rows(captured, f"SELECT count(*) FROM execution_events WHERE parent_event_id IS NOT NULL "
                                      f"AND run_id = '{rows.run['id']}'")
    seq = store.max_seq()
    assert [o.state for o in ingestor.ingest(parsed)] == ["unchanged"]
    assert store.max_seq() == seq and _mined_view(url) == view
    store.close()


def _protobuf(spans) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return encode_spans(spans).SerializeToString()


def test_foreign_trace_order_is_recomputed_when_an_earlier_span_arrives_late(captured, tmp_path) -> None:
    engine = create_engine(captured)
    rows = next(load_runs(engine, run_ids=_run_ids(captured)[:1]))
    engine.dispose()
    document = to_otlp_json(SpanBuilder().spans(rows))
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    for span in spans:  # a foreign producer: no skillmine facts, only GenAI attributes
        span["attributes"] = [a for a in span["attributes"] if not a["key"].startswith("skillmine.")]
    url = f"sqlite:///{tmp_path / 'foreign.db'}"
    upgrade(url)
    store = CaptureStore.open(url)
    ingestor = OtlpIngestor(store)
    parsed = spans_from_json(document)
    early = min(parsed[1:], key=lambda s: s.start_ns)
    ingestor.ingest([s for s in parsed if s is not early])
    ingestor.ingest([early])
    placed = _rows(url, "SELECT execution_order, json_extract(meta, '$.otlp.start_ns'), "
                        "json_extract(meta, '$.otlp.span_id') FROM execution_events ORDER BY execution_order")
    assert [row[0] for row in placed] == list(range(1, len(parsed)))
    assert [(start, span) for _, start, span in placed] == sorted((s.start_ns, s.span_id.hex()) for s in parsed[1:])
    assert placed[0][1] == early.start_ns  # the late span moved to the front, the others moved up
    store.close()


def test_malformed_input_is_refused_naming_the_span(receiver, tmp_path) -> None:
    bad = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "00" * 16, "spanId": "zz", "name": "invoke_agent planner"}]}]}]}
    response = httpx.post(receiver.endpoint, json=bad)
    assert response.status_code == 400
    assert "spans[0]" in response.json()["message"] and "invoke_agent planner" in response.json()["message"]
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"resourceSpans": []}) + "\n" + json.dumps(bad) + "\n")
    result = subprocess.run([sys.executable, "-m", "skillmine.cli", "import", "otlp", str(path), "--url",
                             f"sqlite:///{tmp_path / 'x.db'}"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "line 2" in result.stderr and "invoke_agent planner" in result.stderr
    assert httpx.post(receiver.endpoint, content=b"\x0a\xff", headers={"Content-Type": "application/x-protobuf"}
                      ).status_code == 400


def test_content_is_opt_in_redacted_and_valid_genai_messages(captured, fixture_path) -> None:
    engine = create_engine(captured)
    rows = next(r for r in load_runs(engine, run_ids=_run_ids(captured))
                if any(e["event_type"] == "llm_call" and (e.get("outputs") or {}).get("content") for e in r.events))
    engine.dispose()
    llm = next(e for e in rows.events if e["event_type"] == "llm_call" and (e.get("outputs") or {}).get("content"))
    secret = "SECRETvalue123"
    llm["outputs"]["content"] += f" token={secret}"
    redactor = Redactor([r"SECRET\w+"])
    plain = SpanBuilder(redactor=redactor).spans(rows)
    assert not any(k in s.attributes for s in plain for k in ("gen_ai.output.messages", "skillmine.event.outputs"))
    full = SpanBuilder(content=True, redactor=redactor).spans(rows)
    dumped = json.dumps([dict(s.attributes) for s in full])
    assert secret not in dumped and "skillmine.event.outputs" in dumped
    schema = json.loads(fixture_path("external", "otel_genai_schemas", "gen-ai-output-messages.json").read_text())
    bodies = [json.loads(s.attributes["gen_ai.output.messages"]) for s in full
              if "gen_ai.output.messages" in s.attributes]
    assert bodies
    for body in bodies:
        jsonschema.validate(body, schema)


def test_ag2_own_opentelemetry_spans_are_ingested_and_mined(tmp_path, fixture_path) -> None:
    out, work = tmp_path / "ag2.jsonl", tmp_path / "work"
    work.mkdir()
    subprocess.run([sys.executable, str(HERE / "ag2_otel_run.py"), str(out), str(work), "3"], check=True,
                   capture_output=True, timeout=300)
    validators = {kind: jsonschema.Draft202012Validator(json.loads(
        fixture_path("external", "otel_genai_schemas", f"gen-ai-{kind}-messages.json").read_text()))
        for kind in ("input", "output")}
    problems: dict[tuple[str, str], set[str]] = {}
    for line in out.read_text().splitlines():
        for span in json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]:
            for attribute in span["attributes"]:
                kind = {"gen_ai.input.messages": "input", "gen_ai.output.messages": "output"}.get(attribute["key"])
                if kind:
                    errors = validators[kind].iter_errors(json.loads(attribute["value"]["stringValue"]))
                    problems.setdefault((kind, span["name"].split()[0]), set()).update(e.message for e in errors)
    # Input bodies conform; AG2 0.14 leaves the required finish_reason out of chat and conversation outputs
    # (invoke_agent outputs have it). The ingest does not depend on it.
    assert {key for key, found in problems.items() if not found} >= {
        ("input", "chat"), ("input", "invoke_agent"), ("input", "conversation"), ("output", "invoke_agent")}
    assert set().union(*problems.values()) == {"'finish_reason' is a required property"}
    url = f"sqlite:///{tmp_path / 'ag2.db'}"
    result = subprocess.run([sys.executable, "-m", "skillmine.cli", "import", "otlp", str(out), "--url", url],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert _rows(url, "SELECT count(*), min(task_description), min(status) FROM workflow_runs") == \
        [(3, "Compute the answer and save it.", "completed")]
    kinds = dict(_rows(url, "SELECT event_type, count(*) FROM execution_events GROUP BY event_type"))
    names = [span["name"].split()[0] for line in out.read_text().splitlines()
             for span in json.loads(line)["resourceSpans"][0]["scopeSpans"][0]["spans"]]
    assert kinds == {"handoff": names.count("speaker_selection"), "code_exec": names.count("execute_code"),
                     "llm_call": names.count("chat"),
                     "agent_call": names.count("invoke_agent") + names.count("conversation") - 3}
    assert kinds["handoff"] == 12 and kinds["code_exec"] == 3  # 4 selections and 1 execution per chat
    assert _rows(url, "SELECT DISTINCT json_extract(meta, '$.exit_code') FROM execution_events "
                      "WHERE event_type = 'code_exec'") == [(0,)]
    assert [r[0] for r in _rows(url, "SELECT json_extract(inputs, '$.to') FROM execution_events WHERE "
                                     "event_type = 'handoff' ORDER BY run_id, execution_order")][:4] == \
        ["planner", "engineer", "executor", "planner"]
    (tokens,) = _rows(url, "SELECT sum(total_tokens) FROM cost_records")
    assert tokens[0] > 0
    mined, _ = mine_store(url, tmp_path / "w.duckdb")
    (template,) = mined.templates
    assert template.support == 3 and template.publishable


def test_sigterm_loses_nothing_acknowledged(captured, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'sig.db'}"
    upgrade(url)
    server = subprocess.Popen([sys.executable, "-m", "skillmine.cli", "serve", "otlp", "--port", "0", "--url", url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    endpoint = server.stdout.readline().split()[3]
    engine = create_engine(captured)
    payloads = [(rows.run["id"], len(rows.events), _protobuf(SpanBuilder().spans(rows)))
                for rows in load_runs(engine, run_ids=_run_ids(captured))]
    engine.dispose()
    acknowledged: list[tuple[str, int]] = []

    def client() -> None:
        with httpx.Client() as http:
            for run_id, events, body in payloads * 50:
                try:
                    reply = http.post(endpoint, content=body, headers={"Content-Type": "application/x-protobuf"})
                except httpx.HTTPError:
                    return
                if reply.status_code == 200:
                    acknowledged.append((run_id, events))

    sender = threading.Thread(target=client)
    sender.start()
    deadline = time.monotonic() + 120
    while len(acknowledged) < 3 and sender.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(acknowledged) >= 3, server.stderr.read() if server.poll() is not None else "no acknowledgement"
    os.kill(server.pid, signal.SIGTERM)
    assert server.wait(60) == 0
    sender.join(60)
    stored = dict(_rows(url, "SELECT run_id, count(*) FROM execution_events GROUP BY run_id"))
    assert acknowledged and all(stored.get(run_id) == events for run_id, events in acknowledged)


def test_a_run_exported_while_running_is_completed_by_the_next_export(captured, tmp_path) -> None:
    engine = create_engine(captured)
    rows = next(load_runs(engine, run_ids=_run_ids(captured)[:1]))
    engine.dispose()
    url = f"sqlite:///{tmp_path / 'increments.db'}"
    upgrade(url)
    store = CaptureStore.open(url)
    ingestor = OtlpIngestor(store)
    finished = dict(rows.run)
    half = len(rows.events) // 2
    rows.run.update(status="executing", completed_at=None)
    ingestor.ingest(spans_from_protobuf(_protobuf(SpanBuilder().spans(
        RunRows(rows.run, rows.events[:half], rows.nodes, rows.files, rows.costs)))))
    assert _rows(url, "SELECT status FROM workflow_runs") == [("executing",)]
    rows.run.update(finished)
    outcomes = ingestor.ingest(spans_from_protobuf(_protobuf(SpanBuilder().spans(
        RunRows(rows.run, rows.events[half:], rows.nodes, rows.files, rows.costs)))))
    assert [o.state for o in outcomes] == ["updated"]
    assert _rows(url, "SELECT status FROM workflow_runs") == [(finished["status"],)]
    assert _mined_view(url) == [r for r in _mined_view(captured) if r[0] == rows.run["id"]]
    store.close()


def test_cli_export_to_file_and_import(captured, tmp_path) -> None:
    out, url = tmp_path / "runs.otlp.jsonl", f"sqlite:///{tmp_path / 'cli.db'}"
    cli = [sys.executable, "-m", "skillmine.cli"]
    exported = subprocess.run([*cli, "export", "otlp", "--since", "0", "--file", str(out), "--url", captured,
                               "--content"],
                              capture_output=True, text=True, timeout=120, check=False)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.startswith("exported 12 runs")
    imported = subprocess.run([*cli, "import", "otlp", str(out), "--url", url],
                              capture_output=True, text=True, timeout=120, check=False)
    assert imported.returncode == 0, imported.stderr
    assert "12 runs written" in imported.stdout
    assert _mined_view(url) == _mined_view(captured)
    def payloads(store_url: str) -> list[tuple]:
        return [(i, json.loads(a or "null"), json.loads(b or "null"), e) for i, a, b, e in _rows(
            store_url, "SELECT id, inputs, outputs, error_message FROM execution_events ORDER BY id")]

    assert payloads(url) == payloads(captured)  # with --content, payloads travel too
    again = subprocess.run([*cli, "import", "otlp", str(out), "--url", url],
                           capture_output=True, text=True, timeout=120, check=False)
    assert "0 runs written, 12 already imported" in again.stdout


@pytest.mark.postgres
def test_postgresql_store_merges_late_spans_and_ignores_resent_ones(captured, pg_url) -> None:
    engine = create_engine(captured)
    rows = next(load_runs(engine, run_ids=_run_ids(captured)[:1]))
    engine.dispose()
    parsed = spans_from_protobuf(_protobuf(SpanBuilder().spans(rows)))
    upgrade(pg_url)
    store = CaptureStore.open(pg_url)
    ingestor = OtlpIngestor(store)
    half = len(parsed) // 2
    assert [o.state for o in ingestor.ingest(parsed[half:]) + ingestor.ingest(parsed[:half])] == ["new", "updated"]
    assert [o.state for o in ingestor.ingest(parsed)] == ["unchanged"]
    store.close()
    view = ("SELECT id, event_type, event_subtype, agent_name, status, execution_order, depth, parent_event_id, "
            "node_id FROM execution_events WHERE run_id = '{}' ORDER BY execution_order, id")
    assert _rows(pg_url, view.format(rows.run["id"])) == \
        _rows(captured, view.format(rows.run["id"]))


def test_a_file_import_in_small_chunks_gives_the_same_runs(captured, tmp_path, monkeypatch) -> None:
    from capture.importers import otlp

    out = tmp_path / "runs.otlp.jsonl"
    engine = create_engine(captured)
    with out.open("w") as lines:
        for rows in load_runs(engine, run_ids=_run_ids(captured)):
            lines.write(json.dumps(to_otlp_json(SpanBuilder().spans(rows))) + "\n")
    engine.dispose()
    monkeypatch.setattr(otlp, "CHUNK_SPANS", 97)  # most traces cut across chunks, parents after children
    url = f"sqlite:///{tmp_path / 'chunks.db'}"
    upgrade(url)
    store = CaptureStore.open(url)
    report = otlp.import_otlp(out, store)
    store.close()
    assert (report.runs_new, report.runs_updated, report.runs_skipped) == (12, 0, 0)
    assert report.events == len(_mined_view(captured))
    assert _mined_view(url) == _mined_view(captured)


def test_token_rule_gzip_and_content_types(captured, receivers, tmp_path) -> None:
    refused = subprocess.run([sys.executable, "-m", "skillmine.cli", "serve", "otlp", "--host", "0.0.0.0", "--port",
                              "0", "--url", f"sqlite:///{tmp_path / 'r.db'}"], capture_output=True, text=True,
                             timeout=60, check=False, env={k: v for k, v in os.environ.items()
                                                           if k != "SKILLMINE_TRACE_TOKEN"})
    assert refused.returncode == 2 and "SKILLMINE_TRACE_TOKEN" in refused.stderr
    token = "t" * 32
    running = receivers("token", token=token)
    engine = create_engine(captured)
    rows = next(load_runs(engine, run_ids=_run_ids(captured)[:1]))
    engine.dispose()
    body = gzip.compress(_protobuf(SpanBuilder().spans(rows)))
    headers = {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}
    assert httpx.post(running.endpoint, content=body, headers=headers).status_code == 401
    assert httpx.post(running.endpoint, content=b"x", headers={"Authorization": f"Bearer {token}",
                                                               "Content-Type": "text/plain"}).status_code == 415
    reply = httpx.post(running.endpoint, content=body, headers={**headers, "Authorization": f"Bearer {token}"})
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/x-protobuf"
    assert _mined_view(running.url) == [r for r in _mined_view(captured) if r[0] == rows.run["id"]]


def _attribute(key: str, value: object) -> dict:
    kind = {str: "stringValue", int: "intValue", float: "doubleValue", bool: "boolValue"}[type(value)]
    return {"key": key, "value": {kind: str(value) if kind == "intValue" else value}}


def test_a_trace_without_a_workflow_span_is_a_run_of_its_root_span_and_secrets_are_masked(tmp_path) -> None:
    trace = "ab" * 16
    task = [{"role": "user", "parts": [{"type": "text", "content": "Fit a line to data.csv"}]}]
    document = {"resourceSpans": [{
        "resource": {"attributes": [_attribute("service.name", "fitter")]},
        "scopeSpans": [{"spans": [
            {"traceId": trace, "spanId": "02" * 8, "parentSpanId": "01" * 8, "name": "chat gpt-x", "kind": 3,
             "startTimeUnixNano": "1700000000100000000", "endTimeUnixNano": "1700000000900000000",
             "attributes": [_attribute("gen_ai.operation.name", "chat"), _attribute("gen_ai.request.model", "gpt-x"),
                            _attribute("gen_ai.usage.input_tokens", 120), _attribute("gen_ai.usage.output_tokens", 30),
                            _attribute("gen_ai.usage.cost", 0.25)]},
            {"traceId": trace, "spanId": "03" * 8, "parentSpanId": "01" * 8, "name": "execute_tool fetch",
             "startTimeUnixNano": "1700000000910000000", "endTimeUnixNano": "1700000000950000000",
             "attributes": [_attribute("gen_ai.operation.name", "execute_tool"),
                            _attribute("gen_ai.tool.name", "fetch"),
                            _attribute("gen_ai.tool.call.arguments",
                                       json.dumps({"url": "https://data.example/x.csv", "api_key": "k3y-abcdef123456",
                                                   "note": "use sk-proj-" + "A1b2" * 8}))]},
            {"traceId": trace, "spanId": "01" * 8, "name": "invoke_agent planner", "kind": 1,
             "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000001000000000",
             "status": {"code": 2, "message": "model refused"},
             "attributes": [_attribute("gen_ai.operation.name", "invoke_agent"),
                            _attribute("gen_ai.agent.name", "planner"),
                            _attribute("gen_ai.input.messages", json.dumps(task))]}]}]}]}
    url = f"sqlite:///{tmp_path / 'root.db'}"
    upgrade(url)
    store = CaptureStore.open(url)
    OtlpIngestor(store).ingest(spans_from_json(document))
    store.close()
    assert _rows(url, "SELECT id, mode, status, task_description FROM workflow_runs") == [
        ("abababab-abab-abab-abab-abababababab", "fitter", "failed", "Fit a line to data.csv")]
    assert _rows(url, "SELECT event_type, event_subtype, status, agent_name, execution_order, depth, error_message "
                      "FROM execution_events ORDER BY execution_order") == [
        ("agent_call", "error", "failed", "planner", 1, 0, "model refused"),
        ("llm_call", "complete", "completed", "planner", 2, 1, None),
        ("tool_call", "complete", "completed", "planner", 3, 1, None)]
    ((arguments,),) = _rows(url, "SELECT json_extract(inputs, '$.arguments') FROM execution_events "
                                 "WHERE event_type = 'tool_call'")
    assert "A1b2" not in arguments and "k3y-abcdef123456" not in arguments and "data.example" in arguments
    assert _rows(url, "SELECT model, agent_name, prompt_tokens, completion_tokens, total_tokens, cost_usd "
                      "FROM cost_records") == [("gpt-x", "planner", 120, 30, 150, 0.25)]


def test_bodies_over_the_limit_are_refused_before_they_are_read(receiver) -> None:
    receiver.receiver.max_body_bytes = 1000
    plain = httpx.post(receiver.endpoint, content=b"\0" * 5000, headers={"Content-Type": "application/x-protobuf"})
    bomb = httpx.post(receiver.endpoint, content=gzip.compress(b"\0" * 50_000),
                      headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"})
    assert (plain.status_code, bomb.status_code) == (413, 413)
    assert receiver.receiver.stats.refused == 2 and receiver.receiver.stats.spans == 0


def test_a_bad_trace_after_good_ones_in_one_chunk_reports_the_runs_already_written(captured, tmp_path) -> None:
    """Traces are committed one by one: a bad trace after a good one in the same chunk fails the import, and the
    error's report counts the run already written (found by fuzzing: it used to count none)."""
    from capture.importers import SourceError, otlp

    engine = create_engine(captured)
    good, bad = (to_otlp_json(SpanBuilder().spans(rows)) for rows in load_runs(engine, run_ids=_run_ids(captured)[:2]))
    engine.dispose()
    spans = [span for resource in bad["resourceSpans"] for scope in resource["scopeSpans"] for span in scope["spans"]]
    typed = [a for span in spans for a in span.get("attributes", []) if a["key"] == "skillmine.event.type"]
    assert typed
    typed[-1]["value"] = {"intValue": "1"}
    out = tmp_path / "runs.otlp.jsonl"
    out.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")  # both in the first chunk
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    upgrade(url)
    store = CaptureStore.open(url)
    with pytest.raises(SourceError, match="event_type must be a non-empty string") as refused:
        otlp.import_otlp(out, store)
    store.close()
    assert refused.value.report is not None and refused.value.report.runs_new == 1
    assert "1 runs before it were imported" in str(refused.value)
    assert len(_run_ids(url)) == 1
