"""The live OTLP sink (issue 19, "a recorder sink that exports as it records"), on real components: AG2 Classic
agents with scripted offline models recorded with ``sink="store+otlp"``, exported as they run to the project's
own OTLP/HTTP receiver (``capture.importers.otlp_server``) into a second store, or to a plain HTTP server on
loopback that keeps the raw request bodies; and a receiver that is down."""

import multiprocessing
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from autogen import ConversableAgent
from sqlalchemy import create_engine, select

import capture
from capture.core.clock import stamp
from capture.core.context import DEFAULT_SESSION_ID
from capture.core.items import COST
from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings, SettingsError
from capture.importers.otlp import spans_from_protobuf
from capture.otel.spans import SpanBuilder
from capture.read.otlp_export import load_runs
from capture.recorder.processor import Recorder
from capture.sinks.otlp_sink import OtlpSink
from capture.store.capture_store import CaptureStore
from capture.store.models import COSTS, EVENTS, FILES, NODES, RUNS
from skill_pipeline.lib.mining_steps import mine_store
from workloads.ag2_engine import _leave_abandoned_waiting
from workloads.script import build_run_script
from workloads.scripted_llm import Script, Turn, scripted_llm_config, use_script
from workloads.simulate import simulate

SECRET = "sk-live-0123456789abcdefXYZ"
# What mining and the trace views read of an event, and when it happened.
EVENT_COLUMNS = ("id", "run_id", "parent_event_id", "event_type", "event_subtype", "agent_name", "status",
                 "execution_order", "depth", "node_id", "started_at", "completed_at", "duration_ms")


def _select(url: str, table, columns: tuple[str, ...], order: tuple[str, ...]) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = select(*(table.c[c] for c in columns)).order_by(*(table.c[c] for c in order))
            return [tuple(r) for r in conn.execute(query)]
    finally:
        engine.dispose()


def _tools_and_exit_codes(url: str) -> list[tuple]:
    """Tool names and exit codes where mining reads them (meta, else the payload)."""
    rows = _select(url, EVENTS, ("id", "meta", "inputs", "outputs"), ("id",))
    return [(eid, (meta or {}).get("tool_name") or (inputs or {}).get("tool_name") or (inputs or {}).get("name"),
             (meta or {}).get("exit_code", (outputs or {}).get("exit_code"))) for eid, meta, inputs, outputs in rows]


def _skills(url: str, warehouse: Path) -> dict[str, list]:
    mined, _ = mine_store(url, warehouse)
    return {t.name: t.candidate["steps"] for t in mined.templates}


@pytest.fixture
def wire() -> Iterator[tuple[str, list[bytes]]]:
    """A plain OTLP/HTTP endpoint on loopback that answers 200 and keeps every request body as it arrived."""
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/traces", bodies
    server.shutdown()
    server.server_close()


@pytest.fixture
def fresh_capture() -> Iterator[None]:
    """The process recorder is configured by the test and shut down after it."""
    yield
    capture.shutdown()


def _chat(task: str) -> None:
    """A two-agent AG2 Classic chat with a scripted model, in one captured run."""
    assistant = use_script(ConversableAgent("assistant", llm_config=scripted_llm_config()), Script([
        Turn(content=f"I will not repeat {SECRET}. TERMINATE", prompt_tokens=40, completion_tokens=9,
             cost_usd=0.001)]))
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER",
                            is_termination_msg=lambda m: "TERMINATE" in (m.get("content") or ""))
    for agent in (assistant, user):
        capture.instrument(agent)
    try:
        with capture.run(mode="one_shot", task=task):
            user.initiate_chat(assistant, message=f"Use the key {SECRET} to fetch the data.", max_turns=2,
                               silent=True)
    finally:
        for agent in (assistant, user):
            capture.uninstrument(agent)


def test_live_export_of_ag2_group_chats_round_trips_into_the_same_events_and_skills(
        receiver, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SKILLMINE_SINK", "store+otlp")
    monkeypatch.setenv("SKILLMINE_OTLP_ENDPOINT", receiver.endpoint)
    direct = f"sqlite:///{tmp_path / 'direct.db'}"
    simulate(runs=12, seed=2, engine="ag2", url=direct, ground_truth=tmp_path / "truth.jsonl",
             work_dir=tmp_path / "work")
    # The simulator re-opens, in the store only, the runs its scripts abandon at an approval (capture saw them end):
    # settle the received store the same way.
    received = CaptureStore.open(receiver.url)
    scripts = [build_run_script(2, index) for index in range(12)]
    _leave_abandoned_waiting(received, [s for s in scripts if s.status == "executing"])
    received.close()
    order = ("run_id", "execution_order", "id")
    assert _select(receiver.url, EVENTS, EVENT_COLUMNS, order) == _select(direct, EVENTS, EVENT_COLUMNS, order)
    assert _tools_and_exit_codes(receiver.url) == _tools_and_exit_codes(direct)
    files = ("event_id", "file_path", "file_type", "content_hash")
    assert _select(receiver.url, FILES, files, files) == _select(direct, FILES, files, files)
    runs = ("id", "mode", "status", "task_description", "started_at", "completed_at")
    assert _select(receiver.url, RUNS, runs, ("id",)) == _select(direct, RUNS, runs, ("id",))
    original = _skills(direct, tmp_path / "direct.duckdb")
    assert original and _skills(receiver.url, tmp_path / "received.duckdb") == original


def test_live_spans_are_the_exported_spans_with_secrets_masked_on_the_wire(
        wire, tmp_path, fresh_capture) -> None:
    endpoint, bodies = wire
    url = f"sqlite:///{tmp_path / 'direct.db'}"
    capture.configure(database_url=url, spool_dir=tmp_path / "spool", sink="store+otlp", otlp_endpoint=endpoint,
                      otlp_content=True)
    _chat(f"Summarise the data behind {SECRET}")
    capture.shutdown()
    raw = b"".join(bodies)
    assert SECRET.encode() not in raw and b"***" in raw
    sent = [s for body in bodies for s in spans_from_protobuf(body)]
    engine = create_engine(url)
    stored = [s for rows in load_runs(engine, run_ids=[r[0] for r in _select(url, RUNS, ("id",), ("id",))])
              for s in SpanBuilder(content=True, redactor=Redactor()).spans(rows)]
    engine.dispose()
    assert {s.name for s in sent} >= {"invoke_workflow one_shot", "invoke_agent assistant", "chat scripted-model"}
    assert sorted(_view(s) for s in sent) == sorted(_export_view(s) for s in stored)


def _view(span) -> tuple:
    """A received span: ids, names, kind, status, times and attributes."""
    return (span.span_id.hex(), span.parent_id.hex(), span.name, span.kind, span.status_code, span.start_ns,
            span.end_ns, sorted(span.attributes.items()))


def _export_view(span) -> tuple:
    """An SDK span as :func:`_view` sees one received (attributes as the protobuf carries them)."""
    return (span.context.span_id.to_bytes(8, "big").hex(),
            span.parent.span_id.to_bytes(8, "big").hex() if span.parent else "", span.name, span.kind.value + 1,
            span.status.status_code.value, span.start_time, span.end_time, sorted(dict(span.attributes).items()))


def test_receiver_down_the_run_completes_drops_are_counted_and_nothing_raises(tmp_path, fresh_capture) -> None:
    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}/v1/traces"
    capture.configure(database_url=f"sqlite:///{tmp_path / 'unused.db'}", spool_dir=tmp_path / "spool", sink="otlp",
                      otlp_endpoint=endpoint)
    recorder = capture.get_recorder()
    _chat("a task")
    assert capture.flush()
    sink = recorder.sink()
    recorder.close()
    figures = sink.stats()
    assert figures["otlp_exported_spans"] == 0 and figures["otlp_export_failures"] >= 1
    assert figures["otlp_dropped_spans"] >= 4 and figures["otlp_pending_spans"] == 0
    assert recorder.stats()["errors"] >= 1 and recorder.stats()["dropped"] == 0
    seen = recorder.stats()  # the sink's own figures reach capture.stats() under their names
    assert seen["otlp_dropped_spans"] == figures["otlp_dropped_spans"] and seen["otlp_exported_spans"] == 0


def test_open_events_are_bounded_and_exported_unfinished(receiver) -> None:
    settings = CaptureSettings(database_url="sqlite://", sink="otlp", otlp_endpoint=receiver.endpoint)
    errors: list[str] = []
    sink = OtlpSink(settings, Redactor(), lambda kind, exc: errors.append(kind), max_held=2)
    recorder = Recorder(settings, sink=sink, install_exit_handlers=False)
    run = recorder.open_run(mode="one_shot", task="never ends")
    spans = []
    for depth in range(4):  # four nested spans; only two may be held open
        spans.append(recorder.event(run, "agent_call", "start", None, spans[-1] if spans else None, depth,
                                    f"agent{depth}", None, None, None, "running", None, None, stamp()))
    recorder.flush()
    assert sink.stats()["otlp_evicted_events"] == 2 and sink.stats()["otlp_held_events"] == 2
    recorder.end_span(spans[0], stamp(), False, None, None, None)  # its span was sent unfinished
    recorder.close()
    assert sink.stats()["otlp_unmatched_ends"] == 1 and sink.stats()["otlp_dropped_spans"] == 0 and not errors
    stored = _select(receiver.url, EVENTS, ("agent_name", "status", "completed_at"), ("depth",))
    assert stored == [(f"agent{d}", "running", None) for d in range(4)]  # unfinished, as the store would hold them
    assert _select(receiver.url, RUNS, ("id", "status", "session_id"), ("id",)) == [
        (run.id, "executing", DEFAULT_SESSION_ID)]


def test_items_spilled_on_a_full_queue_are_exported_over_json(receiver) -> None:
    settings = CaptureSettings(database_url="sqlite://", sink="otlp", otlp_endpoint=receiver.endpoint, queue_size=2,
                               flush_interval_s=5.0, otlp_protocol="http/json")
    recorder = Recorder(settings, install_exit_handlers=False)
    run = recorder.open_run(mode="one_shot", task="a burst")
    for index in range(20):
        recorder.event(run, "info", None, None, None, 0, f"agent{index}", None, None, None, "completed", None, None,
                       stamp())
    recorder.close_run(run)
    recorder.close()
    assert recorder.stats()["spooled"] > 0 and recorder.stats()["dropped"] == 0
    assert _select(receiver.url, EVENTS, ("agent_name",), ("execution_order",)) == [
        (f"agent{index}",) for index in range(20)]


def test_the_sink_is_chosen_by_settings_and_a_bad_choice_is_refused(monkeypatch) -> None:
    monkeypatch.setenv("SKILLMINE_SINK", "otlp")
    monkeypatch.setenv("SKILLMINE_OTLP_ENDPOINT", "http://127.0.0.1:9/v1/traces")
    assert CaptureSettings.from_env().otlp_endpoint == "http://127.0.0.1:9/v1/traces"
    with pytest.raises(SettingsError, match="otlp_endpoint"):
        CaptureSettings(sink="store+otlp")
    with pytest.raises(SettingsError, match="sink must be one of"):
        CaptureSettings(sink="kafka")
    with pytest.raises(SettingsError, match="otlp_protocol"):
        CaptureSettings(sink="otlp", otlp_endpoint="http://127.0.0.1:9/v1/traces", otlp_protocol="grpc")


def test_a_forked_child_exports_its_own_spans_and_never_the_parents(receiver, tmp_path, fresh_capture) -> None:
    capture.configure(database_url=f"sqlite:///{tmp_path / 'unused.db'}", spool_dir=tmp_path / "spool", sink="otlp",
                      otlp_endpoint=receiver.endpoint)

    def child() -> None:
        for _ in range(3):
            capture.record_event("info", "trace", agent_name="child")
        capture.shutdown()

    with capture.run(mode="one_shot", task="fork"), capture.span("agent_call", agent_name="parent"):
        assert capture.flush()  # the parent's open span is held in the parent's sink when the child forks
        process = multiprocessing.get_context("fork").Process(target=child)
        process.start()
        process.join(60)
        assert process.exitcode == 0
    capture.shutdown()
    assert _select(receiver.url, EVENTS, ("agent_name", "status", "depth"), ("agent_name",)) == [
        ("child", "completed", 1)] * 3 + [("parent", "completed", 0)]


def test_a_run_holding_more_nodes_and_costs_than_allowed_sends_its_root_early_and_again_at_its_close(
        receiver) -> None:
    settings = CaptureSettings(database_url="sqlite://", sink="otlp", otlp_endpoint=receiver.endpoint)
    sink = OtlpSink(settings, Redactor(), lambda kind, exc: None, max_held=2)
    recorder = Recorder(settings, sink=sink, install_exit_handlers=False)
    run = recorder.open_run(mode="one_shot", task="many steps")
    nodes = []
    for index in range(5):
        nodes.append(recorder.open_node(run, f"step{index}", agent="engineer"))
        recorder.artefact(COST, {"run_id": run.id, "session_id": run.session_id, "event_id": None, "model": "m",
                                 "agent_name": "engineer", "prompt_tokens": index, "completion_tokens": 1,
                                 "total_tokens": index + 1, "cost_usd": 0.5, "timestamp": stamp()})
    recorder.flush()
    assert sink.stats()["otlp_held_nodes"] <= 2  # the root went out early with what was held so far
    node_id, meta = nodes[0]
    recorder.close_node(run, node_id, status="completed", meta=meta)  # its start went with the early root
    recorder.close_run(run)
    recorder.close()
    assert sink.stats()["otlp_late_nodes"] == 1
    assert _select(receiver.url, NODES, ("order_index", "status"), ("order_index",)) == [
        (index, "running") for index in range(5)]
    assert _select(receiver.url, COSTS, ("prompt_tokens", "cost_usd"), ("prompt_tokens",)) == [
        (index, 0.5) for index in range(5)]
    assert _select(receiver.url, RUNS, ("mode", "status", "task_description"), ("id",)) == [
        ("one_shot", "completed", "many steps")]


IMPORT_WATCH = """
import importlib.abc, os, sys, threading
seen = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry.sdk.trace":  # settings only look the SDK up (find_spec), never import it
            seen.append(threading.current_thread().name)
sys.meta_path.insert(0, Watch())
import capture
capture.configure(database_url="sqlite://", sink="otlp", otlp_endpoint="http://127.0.0.1:9/v1/traces")
with capture.run(mode="one_shot", task="t"), capture.span("agent_call", agent_name="a"):
    capture.record_event("info", "trace")
assert capture.flush()
assert seen == ["skillmine-writer"], seen
os._exit(0)
"""


def test_the_sdk_is_imported_on_the_writer_thread_never_on_the_agents() -> None:
    run = subprocess.run([sys.executable, "-c", IMPORT_WATCH], capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
