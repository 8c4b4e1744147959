"""SkillmineCallbacks turns CMBAgent's WorkflowCallbacks into a planning_and_control run with ordered nodes."""

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import capture
from capture.adapters.cmbagent_callbacks import SkillmineCallbacks


@dataclass
class StepInfo:  # the shape of CMBAgent's step info
    step_number: int
    goal: str
    sub_task_agent: str


def test_callbacks_build_a_planning_and_control_run(recorder, url, fetch):
    callbacks = SkillmineCallbacks()
    pool = ThreadPoolExecutor(1)  # CMBAgent calls callbacks from a worker thread

    def call(name, *args):
        pool.submit(getattr(callbacks, name), *args).result()

    call("on_workflow_start", "Compute the CMB power spectrum", {"mode": "planning-control", "model": "gpt-4.1"})
    call("on_planning_start", "Compute the CMB power spectrum")
    call("on_agent_start", "planner")
    call("on_agent_message", "planner", "assistant", "1. engineer writes code 2. researcher reports", {})
    call("on_agent_complete", "planner")
    call("on_planning_complete", {"num_steps": 2})
    call("on_step_start", StepInfo(1, "write the code", "engineer"))
    call("on_agent_start", "engineer")
    call("on_code_execution", "engineer", "print(1)", "python", "exitcode: 0 (execution succeeded)\n1")
    call("on_tool_call", "engineer", "record_status", {"status": "ok"}, "recorded")
    call("on_cost_update", {"agent": "engineer", "model": "gpt-4.1", "prompt_tokens": 100, "completion_tokens": 20,
                            "cost": 0.001})
    call("on_agent_complete", "engineer")
    call("on_step_complete", StepInfo(1, "write the code", "engineer"))
    call("on_phase_change", "control", 2)
    call("on_step_start", StepInfo(2, "report", "researcher"))
    call("on_code_execution", "researcher", "raise SystemExit(1)", "python", "Traceback: error")
    call("on_step_complete", StepInfo(2, "report", "researcher"))
    call("on_workflow_complete", None, 12.5)
    pool.shutdown()
    assert capture.flush(5)
    run_id = callbacks.run_id_recorded

    assert fetch(url, "SELECT mode, status, task_description FROM workflow_runs") == [
        {"mode": "planning_and_control", "status": "completed", "task_description": "Compute the CMB power spectrum"}]
    nodes = fetch(url, "SELECT id, node_type, agent, status, order_index FROM dag_nodes ORDER BY order_index")
    names = [fetch(url, "SELECT meta FROM dag_nodes WHERE id = :i", i=n["id"])[0]["meta"] for n in nodes]
    assert [json.loads(m)["id"] if isinstance(m, str) else m["id"] for m in names] == \
        ["planning", "step_1", "step_2", "terminator"]
    assert [(n["node_type"], n["agent"], n["status"], n["order_index"]) for n in nodes] == [
        ("planning", "planner", "completed", 0), ("agent", "engineer", "completed", 1),
        ("agent", "researcher", "completed", 2), ("terminator", "system", "completed", 3)]
    ids = [n["id"] for n in nodes]
    edges = fetch(url, "SELECT from_node_id, to_node_id FROM dag_edges ORDER BY id")
    assert [(e["from_node_id"], e["to_node_id"]) for e in edges] == list(itertools.pairwise(ids))

    events = fetch(url, "SELECT id, event_type, event_subtype, agent_name, node_id, parent_event_id, depth, status, "
                        "run_id FROM execution_events ORDER BY execution_order")
    shape = [(e["event_type"], e["event_subtype"], e["agent_name"], ids.index(e["node_id"]) if e["node_id"] else None,
              e["depth"], e["status"]) for e in events]
    assert shape == [
        ("agent_call", "complete", "planner", 0, 0, "completed"),
        ("message", "send", "planner", 0, 1, "completed"),
        ("agent_call", "complete", "engineer", 1, 0, "completed"),
        ("code_exec", "complete", "engineer", 1, 1, "completed"),
        ("tool_call", "complete", "engineer", 1, 1, "completed"),
        ("state_transition", "workflow", None, None, 0, "completed"),
        ("code_exec", "error", "researcher", 2, 0, "failed")]
    assert events[1]["parent_event_id"] == events[0]["id"]
    assert events[3]["parent_event_id"] == events[2]["id"] == events[4]["parent_event_id"]
    assert {e["run_id"] for e in events} == {run_id} and run_id is not None
    assert fetch(url, "SELECT agent_name, model, total_tokens, node_id FROM cost_records") == [
        {"agent_name": "engineer", "model": "gpt-4.1", "total_tokens": 120, "node_id": ids[1]}]
    assert capture.stats()["errors"] == 0


def test_failed_workflow_marks_step_and_run_failed(recorder, url, fetch):
    callbacks = SkillmineCallbacks(mode="one_shot")
    callbacks.on_workflow_start("task")
    callbacks.on_step_start({"step_number": 1, "agent": "engineer"})
    callbacks.on_agent_start("engineer")
    callbacks.on_workflow_failed(RuntimeError("boom"), 1)
    assert capture.flush(5)
    assert fetch(url, "SELECT mode, status FROM workflow_runs") == [{"mode": "one_shot", "status": "failed"}]
    assert fetch(url, "SELECT status FROM dag_nodes") == [{"status": "failed"}]
    assert fetch(url, "SELECT event_type, status, error_message FROM execution_events ORDER BY execution_order") == [
        {"event_type": "agent_call", "status": "failed", "error_message": "boom"},
        {"event_type": "error", "status": "failed", "error_message": "boom"}]
