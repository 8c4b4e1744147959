"""Legacy code execution with a failing block, the threaded pattern runner, and bad input to instrument()."""

import asyncio
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


def test_async_pattern_runner_is_captured(stored) -> None:
    from autogen.agentchat import a_initiate_group_chat

    pattern, _ = build_handoff_pattern()
    capture.instrument(pattern)
    result, _, _ = asyncio.run(a_initiate_group_chat(pattern=pattern, messages="Find H0.", max_rounds=12))
    speakers = [e["agent_name"] for e in stored.events("agent_call") if e["depth"] == 1]
    assert speakers == [m["name"] for m in result.chat_history[1:]]
    assert [e["event_subtype"] for e in stored.events("handoff") if e["event_subtype"] != "speaker_selection"] == [
        "llm_condition", "reply_result", "context_condition", "after_work", "after_work"]
    assert sum(c["cost_usd"] for c in stored.table("cost_records")) == pytest.approx(0.017)


def test_uninstrumented_pattern_records_nothing(stored) -> None:
    from autogen.agentchat import initiate_group_chat

    pattern, agents = build_handoff_pattern()
    capture.instrument(pattern)
    capture.uninstrument(pattern)
    result, _, _ = initiate_group_chat(pattern=pattern, messages="Find H0.", max_rounds=12)
    assert [m.get("name") for m in result.chat_history][-1] == "closer"
    assert stored.events() == [] and stored.table("cost_records") == []
    assert all("generate_reply" not in agent.__dict__ for agent in agents)


@pytest.mark.parametrize("bad", [None, "planner", 42])
def test_instrument_rejects_what_is_not_an_ag2_object(bad) -> None:
    with pytest.raises(TypeError, match="capture.instrument\\(\\) needs an AG2 agent"):
        capture.instrument(bad)


def test_the_cache_check_sees_every_usage_update_of_the_installed_ag2() -> None:
    """An llm_call's ``meta.cached`` compares the client's usage summary before and after the call by its pairs
    (``_usage_key``), which holds only while AG2 replaces a model's usage dict rather than changing it in place."""
    from types import SimpleNamespace

    from autogen.oai.client import OpenAIWrapper

    from capture.adapters.ag2_classic.agent import _usage_key

    client = SimpleNamespace(actual_usage_summary=None, total_usage_summary=None)
    usage = {"model": "m", "cost": 0.5, "prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12}
    seen = [_usage_key(client.actual_usage_summary)]
    for _ in range(2):
        OpenAIWrapper._update_usage(client, actual_usage=usage, total_usage=None)
        seen.append(_usage_key(client.actual_usage_summary))
    assert seen[0] != seen[1] != seen[2]  # each uncached call changes the key
    OpenAIWrapper._update_usage(client, actual_usage=None, total_usage=usage)  # a cache hit: actual usage unchanged
    assert _usage_key(client.actual_usage_summary) == seen[2]
