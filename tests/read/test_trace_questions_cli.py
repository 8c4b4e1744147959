"""The reference plan's trace questions from the CLI, on the real CMBAgent/MARS records (``conftest.real_url``):
which agent generated a file, the flow within ``step_1``, how many times each agent was called, what led to a
failure (an error event, or a failed run without one), and "show all plotting workflows".

The expected values are facts of the shipped records (the MARS database ``cmbagent_mars_89797ef`` and the benchmark
trials file), read from them independently of the code under test."""

import json
from typing import Any

import pytest

from skillmine.cli import main

MOBIUS_CODE = "control/codebase/mobius_strip.py"
MOBIUS_CODE_SHA = "4c3d6babe1d8ef5427ccdec548215cc626bd532a0fca4d389f6da7e43ae90d65"
STEP_PLOT = "control/data/mobius_strip_1_20260218_094920.png"


@pytest.fixture
def ask(real_url: str, capsys: pytest.CaptureFixture) -> Any:
    """Run ``skillmine ARGS --url <real store>``: (exit code, stdout) or, with ``--json``, the parsed answer."""
    def run(*argv: str) -> Any:
        code = main([*argv, "--url", real_url])
        out = capsys.readouterr()
        if "--json" in argv:
            assert code == 0, out.err
            return json.loads(out.out)
        return code, out.out + out.err
    return run


def test_trace_file_names_agent_step_run_and_hash(ask):
    answer = ask("trace", "file", MOBIUS_CODE, "--json")
    files = answer["files"]
    assert answer["total_files"] == len(files) >= 4  # the same script in every planning_and_control Möbius run
    assert {f["path"] for f in files} == {MOBIUS_CODE}
    assert {f["agent"] for f in files} == {"engineer"} and {f["content_hash"] for f in files} == {MOBIUS_CODE_SHA}
    assert {f["node"]["name"] for f in files} == {"step_1"}
    assert {f["run"]["mode"] for f in files} == {"planning_and_control"}
    assert len({f["run"]["id"] for f in files}) == len(files)
    by_hash = ask("trace", "file", MOBIUS_CODE_SHA, "--json")
    assert sorted(f["run"]["id"] for f in by_hash["files"]) == sorted(f["run"]["id"] for f in files)
    code, text = ask("trace", "file", "mobius_strip.py")
    assert code == 0 and "agent    engineer  (from the file record)" in text and MOBIUS_CODE_SHA in text
    code, text = ask("trace", "file", "no/such/file.png")
    assert code == 2 and "file 'no/such/file.png' not found" in text


def test_trace_node_by_step_name_gives_flow_tools_files_tokens_cost(ask):
    run_id = ask("trace", "file", STEP_PLOT, "--json")["files"][0]["run"]["id"]
    flow = ask("trace", "node", run_id[:8], "step_1", "--json")
    assert flow["run_id"] == run_id and flow["step"] == "step_1" and flow["node"]["agent"] == "engineer"
    # 19 recorded events, plus one llm_call per cost-report row where the importer turns those into events
    steps = [t for t in flow["sequence"] if not t.startswith("llm_call:")]
    assert len(steps) == 19 and flow["total_events"] == len(flow["sequence"])
    assert steps[:3] == ["message:assistant", "agent_call:control", "tool_call:control"]
    assert flow["tools"] == {"record_status": 1, "post_execution_transfer": 1, "terminate_session": 1}
    assert flow["invocations"] == {"control": 2, "engineer": 1, "executor_response_formatter": 1, "terminator": 1}
    assert {(f["path"], f["file_type"]) for f in flow["files"]} >= {(STEP_PLOT, "plot"), (MOBIUS_CODE, "code")}
    # the step's cost report: terminator 4,281 + engineer_response_formatter 3,212 + control 4,172 +
    # executor_response_formatter 1,333 + engineer 5,269 tokens, counted once whether read from the cost
    # records or from the llm_call events made of them
    assert (flow["tokens"], flow["cost_usd"]) == (18267, 0.485925)
    assert flow["usage_source"] in {"cost records", "llm_call events"}
    by_number = ask("trace", "node", run_id, "1", "--json")
    assert by_number["node"]["id"] == flow["node"]["id"]
    code, text = ask("trace", "node", run_id, "step_9")
    assert code == 2 and "its steps: planning, step_1, terminator" in text


def test_trace_agents_counts_invocations_not_events(ask):
    run_id = ask("trace", "file", STEP_PLOT, "--json")["files"][0]["run"]["id"]
    answer = ask("trace", "agents", run_id, "--json")
    calls = {a["agent"]: a["invocations"] for a in answer["agents"] if a["invocations"]}
    events = {a["agent"]: a["events"] for a in answer["agents"]}
    assert calls == {"control": 2, "engineer": 1, "executor_response_formatter": 1, "terminator": 1}
    assert answer["total_invocations"] == 5 and events["_Group_Tool_Executor"] == 3  # messages, never called
    assert all(events[a] > n for a, n in calls.items())  # each also sent messages and handoffs
    assert answer["agents"][0]["agent"] == "control"  # most called first
    stats = ask("trace", "show", run_id, "--json")["statistics"]
    assert stats["agent_call_counts"] == calls  # the same count at its source
    assert stats["events_by_agent"] == events


def test_trace_failure_with_an_error_event_and_without_one(ask):
    failed = ask("runs", "search", "--outcome", "failed", "--json")["runs"]
    assert failed, "the real records hold failed runs"
    for run in failed:
        assert ask("trace", "failure", run["id"], "--json")["failure"] is not None, run["id"]

    idea = next(r for r in failed if r["mode"] == "idea_generation")
    chain = ask("trace", "failure", idea["id"], "--json")["failure"]
    assert chain["kind"] == "event" and chain["failed_event"]["event_type"] == "error"
    assert "Rate limit reached" in chain["failed_event"]["error_message"]
    assert chain["sequence"][-1] == "error:system" and len(chain["preceding"]) == 20

    trial = next(r for r in failed if r["mode"] == "one_shot")  # a benchmark trial that produced no result
    judged = ask("trace", "failure", trial["id"], "--json")["failure"]
    assert judged["kind"] == "judged" and judged["step"] is None
    assert "no event failed" in judged["reason"] and "no data/result.csv" in judged["reason"]
    assert [e["event_type"] for e in judged["last_events"]] == ["llm_call"] * 5
    code, text = ask("trace", "failure", trial["id"][:8])
    assert code == 0 and "the source says: no data/result.csv" in text

    done = ask("runs", "search", "--outcome", "completed", "--mode", "one_shot", "--limit", "1", "--json")
    assert ask("trace", "failure", done["runs"][0]["id"], "--json")["failure"] is None


def test_runs_search_plotting_finds_plot_tasks_by_stem(ask):
    answer = ask("runs", "search", "plotting", "--limit", "500", "--json")
    tasks = [r["task_description"] for r in answer["runs"]]
    assert answer["query"] == {"text": "plotting"} and len(tasks) >= 20
    assert all("plot" in t.lower() for t in tasks)
    assert {r["mode"] for r in answer["runs"]} >= {"one_shot", "planning_and_control"}
    assert any(t.startswith("Plot y=") for t in tasks) and any("Möbius" in t for t in tasks)
    plots = ask("runs", "search", "plotting", "--file-type", "plot", "--mode", "planning_and_control", "--json")
    assert plots["runs"] and all("plot" in r["file_types"] for r in plots["runs"])
    assert all(r["mode"] == "planning_and_control" for r in plots["runs"])
    ideas = ask("runs", "search", "--agent", "idea_maker", "--json")
    assert {r["mode"] for r in ideas["runs"]} == {"idea_generation", "denario_research"}
    assert all("idea_maker" in r["agents"] for r in ideas["runs"])
    code, text = ask("runs", "search", "plotting", "--mode", "one_shot")
    assert code == 0 and "runs match text='plotting' mode='one_shot'" in text
    assert ask("runs", "search", "zzzz-no-such-task", "--json")["total_runs"] == 0
