"""Legacy code execution with a failing block, the threaded pattern runner, and bad input to instrument()."""

import json

import pytest
from ag2_scenarios import build_handoff_pattern, llm_agent
from autogen import ConversableAgent

import capture
from workloads.scripted_llm import Script, Turn

WRITE = "```python\nopen('out.txt', 'w').write('hello')\nprint('wrote')\n```"
FAIL = "```python\nimport sys\nprint('bad input')\nsys.exit(3)\n```"


def test_legacy_code_execution_records_exit_codes_and_files(stored, tmp_path) -> None:
    coder = llm_agent("coder", Script([Turn(WRITE), Turn(FAIL), Turn("Stopping.")], name="coder"))
    executor = ConversableAgent("executor", llm_config=False, human_input_mode="NEVER",
                                code_execution_config={"work_dir": str(tmp_path), "use_docker": False})
    capture.instrument([executor, coder])
    executor.initiate_chat(coder, message="Write then fail.", max_turns=3, silent=True)
    runs = stored.events("code_exec")
    assert [(json.loads(e["outputs"])["exit_code"], e["status"], e["event_subtype"]) for e in runs] == [
        (0, "completed", "complete"), (3, "failed", "error")]
    assert runs[1]["error_message"] == "exit code 3"
    errors = [e for e in stored.events("error")]
    assert [(e["event_subtype"], e["parent_event_id"]) for e in errors] == [("code_exec", runs[1]["id"])]
    assert errors[0]["error_message"].startswith("exit code 3")
    out = [f for f in stored.table("files") if f["file_path"] == "out.txt"]
    assert len(out) == 1 and out[0]["size_bytes"] == 5
    assert {e["id"]: e for e in stored.events()}[out[0]["event_id"]]["parent_event_id"] == runs[0]["id"]


def test_threaded_pattern_runner_is_captured(stored) -> None:
    from autogen.agentchat import run_group_chat

    pattern, _ = build_handoff_pattern()
    capture.instrument(pattern)
    response = run_group_chat(pattern=pattern, messages="Find H0.", max_rounds=12)
    response.process()
    (run,) = stored.table("workflow_runs")
    assert run["status"] == "completed"
    handoffs = [e["event_subtype"] for e in stored.events("handoff")]
    assert [h for h in handoffs if h != "speaker_selection"] == [
        "llm_condition", "reply_result", "context_condition", "after_work", "after_work"]
    assert len(stored.events("tool_call")) == 2


@pytest.mark.parametrize("bad", [None, "planner", 42])
def test_instrument_rejects_what_is_not_an_ag2_object(bad) -> None:
    with pytest.raises(TypeError, match="capture.instrument\\(\\) needs an AG2 agent"):
        capture.instrument(bad)
