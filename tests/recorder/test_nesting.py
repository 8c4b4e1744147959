"""The manual API records runs, nodes, edges and nested events with exact parents, depths and orders."""

import capture
from capture.core.settings import CaptureSettings


def test_run_node_span_tree_has_exact_parents_depths_and_orders(recorder, url, tmp_path, fetch):
    produced = tmp_path / "work" / "plot.png"
    produced.parent.mkdir()
    produced.write_bytes(b"\x89PNG fake image bytes")
    with capture.run("demo", mode="planning-control", task="fit a power spectrum") as run:
        with capture.node("planning", agent="planner", node_type="planning") as planning:
            pass
        with capture.node("step_1", agent="engineer") as step:
            with capture.span("agent_call", agent_name="engineer", inputs={"message": "go"}) as agent:
                with capture.span("tool_call", agent_name="engineer", inputs={"tool": "run"}) as tool:
                    file_event = capture.record_file(produced, root=tmp_path / "work", agent_name="engineer")
                    tool.set_outputs({"ok": True})
                handoff = capture.record_event("handoff", "transfer", agent_name="engineer",
                                               meta={"to": "executor"})
    assert capture.flush(5)

    runs = fetch(url, "SELECT id, status, mode, task_description, parent_run_id FROM workflow_runs")
    assert runs == [{"id": run.id, "status": "completed", "mode": "planning_and_control",
                     "task_description": "fit a power spectrum", "parent_run_id": None}]
    nodes = fetch(url, "SELECT id, node_type, agent, status, order_index FROM dag_nodes ORDER BY order_index")
    assert nodes == [
        {"id": planning.id, "node_type": "planning", "agent": "planner", "status": "completed", "order_index": 0},
        {"id": step.id, "node_type": "agent", "agent": "engineer", "status": "completed", "order_index": 1}]
    edges = fetch(url, "SELECT from_node_id, to_node_id, dependency_type FROM dag_edges")
    assert edges == [{"from_node_id": planning.id, "to_node_id": step.id, "dependency_type": "sequential"}]

    events = fetch(url, "SELECT id, event_type, event_subtype, parent_event_id, depth, execution_order, status, "
                        "node_id, run_id FROM execution_events ORDER BY execution_order")
    assert [(e["id"], e["event_type"], e["event_subtype"], e["parent_event_id"], e["depth"], e["execution_order"],
             e["status"]) for e in events] == [
        (agent.id, "agent_call", "complete", None, 0, 1, "completed"),
        (tool.id, "tool_call", "complete", agent.id, 1, 2, "completed"),
        (file_event, "file_gen", "create", tool.id, 2, 3, "completed"),
        (handoff, "handoff", "transfer", agent.id, 1, 4, "completed")]
    assert {e["node_id"] for e in events} == {step.id}
    assert {e["run_id"] for e in events} == {run.id}

    files = fetch(url, "SELECT file_path, file_type, size_bytes, content_hash, event_id, node_id, generating_agent "
                       "FROM files")
    import hashlib
    assert files == [{"file_path": "plot.png", "file_type": "plot", "size_bytes": 21,
                      "content_hash": hashlib.sha256(b"\x89PNG fake image bytes").hexdigest(),
                      "event_id": file_event, "node_id": step.id, "generating_agent": "engineer"}]


def test_failed_span_records_error_and_the_exception_propagates(recorder, url, fetch):
    with capture.run("failing") as run:
        try:
            with capture.span("code_exec", agent_name="executor", inputs={"code": "1/0"}):
                raise ZeroDivisionError("division by zero")
        except ZeroDivisionError:
            pass
        with capture.span("tool_call", agent_name="executor") as soft:
            soft.fail("tool returned an error")
    assert capture.flush(5)
    rows = fetch(url, "SELECT event_subtype, status, error_message FROM execution_events WHERE run_id = :r "
                      "ORDER BY execution_order", r=run.id)
    assert rows == [{"event_subtype": "error", "status": "failed", "error_message": "ZeroDivisionError: division by zero"},
                    {"event_subtype": "error", "status": "failed", "error_message": "tool returned an error"}]
    assert fetch(url, "SELECT status FROM workflow_runs WHERE id = :r", r=run.id) == [{"status": "completed"}]


def test_messages_and_costs_link_to_event_and_node(recorder, url, fetch):
    with capture.run("chat") as run, capture.node("step_1", agent="engineer") as step:
        with capture.span("llm_call", agent_name="engineer") as llm:
            capture.record_cost(agent_name="engineer", model="gpt-4.1", prompt_tokens=120, completion_tokens=30,
                                cost_usd=0.0012, event_id=llm.id)
        message = capture.record_message("engineer", "executor", {"content": "run it", "role": "user"}, tokens=5)
    assert capture.flush(5)
    assert fetch(url, "SELECT sender, recipient, content, tokens, event_id, node_id, run_id FROM messages") == [
        {"sender": "engineer", "recipient": "executor", "content": '{"content":"run it","role":"user"}',
         "tokens": 5, "event_id": message, "node_id": step.id, "run_id": run.id}]
    costs = fetch(url, "SELECT model, prompt_tokens, completion_tokens, total_tokens, event_id, node_id FROM cost_records")
    assert costs == [{"model": "gpt-4.1", "prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                      "event_id": llm.id, "node_id": step.id}]
    assert fetch(url, "SELECT event_type, event_subtype FROM execution_events WHERE id = :m", m=message) == [
        {"event_type": "message", "event_subtype": "send"}]


def test_sampling_at_zero_keeps_agent_calls_handoffs_and_errors(store_url, settings_for, fetch):
    from capture.store.migrate import upgrade
    upgrade(store_url)
    capture.configure(settings_for(store_url, sample_rate=0.0))
    try:
        with capture.run("sampled"), capture.span("agent_call", agent_name="a") as agent:
            with capture.span("tool_call") as tool:
                assert tool.id is None
                kept_error = capture.record_event("error", "runtime_error", status="failed")
            assert capture.record_event("info", "debug") is None
            assert capture.record_message("a", "b", "hi") is None
            kept_handoff = capture.record_event("transfer", agent_name="a")
        assert capture.flush(5)
        rows = fetch(store_url, "SELECT id, event_type, parent_event_id FROM execution_events ORDER BY execution_order")
        assert rows == [{"id": agent.id, "event_type": "agent_call", "parent_event_id": None},
                        {"id": kept_error, "event_type": "error", "parent_event_id": agent.id},
                        {"id": kept_handoff, "event_type": "handoff", "parent_event_id": agent.id}]
        assert capture.stats()["sampled_out"] == 3
    finally:
        capture.shutdown()


def test_capture_off_writes_nothing(tmp_path):
    url = f"sqlite:///{tmp_path / 'off.db'}"
    capture.configure(CaptureSettings(enabled=False, database_url=url, spool_dir=tmp_path / "spool"))
    try:
        with capture.run("off") as run, capture.node("n") as node, capture.span("agent_call") as span:
            assert capture.record_event("info") is None
            assert capture.record_message("a", "b", "c") is None
        assert (run.id, node.id, span.id) == (None, None, None)
        assert capture.flush(1)
        assert capture.stats()["enqueued"] == 0
    finally:
        capture.shutdown()
    assert not (tmp_path / "off.db").exists()
    assert not (tmp_path / "spool").exists()


def test_times_come_from_the_capture_clock(recorder, url, fetch):
    from datetime import UTC, datetime

    from capture.core.clock import SimulatedClock, use_clock

    simulated = SimulatedClock(datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC))
    with use_clock(simulated, process_wide=True), capture.run("simulated") as run:
        with capture.span("llm_call", agent_name="engineer") as llm:
            simulated.advance(1500)
        simulated.advance(250)
        capture.record_event("code_exec", "complete", agent_name="executor", duration_ms=4000)
    assert capture.flush(5)
    rows = fetch(url, "SELECT id, started_at, completed_at, duration_ms FROM execution_events ORDER BY execution_order")
    as_text = [(r["id"], str(r["started_at"])[:19], str(r["completed_at"])[:19], r["duration_ms"]) for r in rows]
    assert as_text == [(llm.id, "2025-03-01 12:00:00", "2025-03-01 12:00:01", 1500),
                       (rows[1]["id"], "2025-03-01 11:59:57", "2025-03-01 12:00:01", 4000)]
    runs = fetch(url, "SELECT started_at, completed_at FROM workflow_runs WHERE id = :i", i=run.id)
    assert [(str(r["started_at"])[:19], str(r["completed_at"])[:19]) for r in runs] == \
        [("2025-03-01 12:00:00", "2025-03-01 12:00:01")]
