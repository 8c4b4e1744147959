"""CMBAgent-shaped runs (reference §10-§11) named by the caller, and AG2's threaded ``run()`` API."""

import json

import pytest
from ag2_scenarios import CONTROL_CYCLE, add, control_chat, llm_agent

import capture
from workloads.scripted_llm import Script, ToolCall, Turn

TOOLS = "_Group_Tool_Executor"
EXPECTED_SPEAKERS = ["engineer", "engineer_response_formatter", "executor", "executor_response_formatter", TOOLS,
                     "control", TOOLS, "terminator", TOOLS]


def node_events(stored, node_id: str) -> list[dict]:
    return [e for e in stored.events() if e["node_id"] == node_id]


def check_control_step(stored, node: dict, step: int, result) -> None:
    events = node_events(stored, node["id"])
    speakers = [e["agent_name"] for e in events if e["event_type"] == "agent_call" and e["depth"] == 1]
    assert speakers == EXPECTED_SPEAKERS
    assert [m["name"] for m in result.chat_history[1:]] == speakers
    tools = [json.loads(e["inputs"]) for e in events if e["event_type"] == "tool_call"]
    assert [(t["name"], t["call_id"]) for t in tools] == [
        ("post_execution_transfer", f"call_transfer_{step}"), ("record_status", f"call_status_{step}"),
        ("terminate_session", f"call_term_{step}")]
    handoffs = [(e["event_subtype"], json.loads(e["inputs"])["to"]) for e in events if e["event_type"] == "handoff"]
    assert handoffs == [("speaker_selection", "engineer"), ("after_work", "engineer_response_formatter"),
                        ("after_work", "executor"), ("after_work", "executor_response_formatter"),
                        ("speaker_selection", TOOLS), ("reply_result", "control"), ("speaker_selection", TOOLS),
                        ("reply_result", "terminator"), ("speaker_selection", TOOLS), ("reply_result", "Terminate")]
    (code,) = [e for e in events if e["event_type"] == "code_exec"]
    data = [f for f in stored.table("files") if f["file_path"] == f"data/step_{step}.csv"]
    assert len(data) == 1 and data[0]["file_type"] == "data" and data[0]["node_id"] == node["id"]
    file_event = next(e for e in events if e["id"] == data[0]["event_id"])
    assert file_event["parent_event_id"] == code["id"]
    costs = [c for c in stored.table("cost_records") if c["node_id"] == node["id"]]
    assert sum(c["cost_usd"] for c in costs) == pytest.approx(
        result.cost["usage_including_cached_inference"]["total_cost"]) == pytest.approx(0.0995)
    assert sum(c["prompt_tokens"] for c in costs) == 8900 + 8500 + 13000 + 7300 + 1200


def test_one_shot_run(stored, tmp_path) -> None:
    with (capture.run("one_shot engineer", mode="one_shot", task="Tabulate squares."),
          capture.node("execute", agent="engineer")):
        result, _ = control_chat(tmp_path / "work", 1, capture.instrument)
    (run,) = stored.table("workflow_runs")
    assert (run["mode"], run["status"], run["task_description"]) == ("one_shot", "completed", "Tabulate squares.")
    (node,) = stored.table("dag_nodes")
    check_control_step(stored, node, 1, result)
    assert CONTROL_CYCLE == [s for s in EXPECTED_SPEAKERS if s != TOOLS]


def test_planning_and_control_run_has_one_chat_per_step(stored, tmp_path) -> None:
    planner = llm_agent("planner", Script([
        Turn(tool_calls=(ToolCall("add", {"a": 1, "b": 1}, id="call_plan"),), prompt_tokens=1300,
             completion_tokens=334, cost_usd=0.006),
        Turn("Plan recorded: 2 steps. TERMINATE", prompt_tokens=1400, completion_tokens=12, cost_usd=0.004)],
        name="planner"))
    from autogen import ConversableAgent, register_function

    recorder = ConversableAgent("plan_recorder", llm_config=False, human_input_mode="NEVER",
                                is_termination_msg=lambda m: "TERMINATE" in str(m.get("content")))
    register_function(add, caller=planner, executor=recorder, description="Count the steps.")
    capture.instrument([planner, recorder])
    results = {}
    with capture.run("planning and control", mode="planning_and_control", task="Tabulate squares in 2 steps."):
        with capture.node("planning", agent="planner"):
            recorder.initiate_chat(planner, message="Plan it.", max_turns=3, silent=True)
        for step in (1, 2):
            with capture.node(f"step_{step}", agent="engineer"):
                results[step], _ = control_chat(tmp_path / "work", step, capture.instrument)
        with capture.node("terminator", agent="terminator", node_type="terminator"):
            capture.record_event("info", "workflow_complete", outputs={"steps": 2})
    (run,) = stored.table("workflow_runs")
    assert (run["mode"], run["status"]) == ("planning_and_control", "completed")
    nodes = sorted(stored.table("dag_nodes"), key=lambda n: n["order_index"])
    assert [json.loads(n["meta"])["id"] for n in nodes] == ["planning", "step_1", "step_2", "terminator"]
    edges = {(e["from_node_id"], e["to_node_id"]) for e in stored.table("dag_edges")}
    assert edges == {(nodes[i]["id"], nodes[i + 1]["id"]) for i in range(3)}
    planning = [e["agent_name"] for e in node_events(stored, nodes[0]["id"]) if e["event_type"] == "agent_call"]
    assert planning == ["planner", "plan_recorder", "planner", "plan_recorder"]
    for step in (1, 2):
        check_control_step(stored, nodes[step], step, results[step])
    assert len(stored.table("cost_records")) == 2 + 2 * 5


def test_threaded_run_api_is_captured_in_its_own_run(stored) -> None:
    assistant = llm_agent("assistant", Script([
        Turn(tool_calls=(ToolCall("add", {"a": 2, "b": 3}, id="call_run_add"),), prompt_tokens=11,
             completion_tokens=3, cost_usd=0.001),
        Turn("5. TERMINATE", prompt_tokens=22, completion_tokens=2, cost_usd=0.002)], name="run"))
    assistant.register_for_llm(description="Add two integers.")(add)
    capture.instrument(assistant)
    response = assistant.run(message="add 2 and 3", max_turns=2, user_input=False, tools=[])
    response.process()
    (run,) = stored.table("workflow_runs")
    assert json.loads(run["meta"])["name"] == "user -> assistant" and run["status"] == "completed"
    events = stored.events()
    assert [e["event_type"] for e in events if e["depth"] == 0] == [
        "message", "agent_call", "message", "agent_call", "message", "agent_call", "message", "info"]
    (tool,) = stored.events("tool_call")
    assert json.loads(tool["inputs"])["call_id"] == "call_run_add"
    assert sum(c["cost_usd"] for c in stored.table("cost_records")) == pytest.approx(0.003)


def test_threaded_run_api_joins_the_callers_run(stored) -> None:
    assistant = llm_agent("assistant", Script(["Nothing to do. TERMINATE"], name="joined"))
    capture.instrument(assistant)
    with capture.run("caller", mode="one_shot"):
        response = assistant.run(message="hello", max_turns=1, user_input=False)
        response.process()
    (run,) = stored.table("workflow_runs")
    assert json.loads(run["meta"])["name"] == "caller"
    assert {e["run_id"] for e in stored.events()} == {run["id"]}
    assert [e["event_type"] for e in stored.events()][:3] == ["message", "agent_call", "llm_call"]
