"""The scripted offline ModelClient drives real AG2 agents with exact usage, cost and simulated latency."""

from datetime import UTC, datetime, timedelta

import pytest
from ag2_scenarios import handoff_pattern, run_research_group, two_agent_tool_chat

from capture.core.clock import SimulatedClock, use_clock
from workloads.scripted_llm import (
    Script,
    ScriptedLLMError,
    ScriptExhausted,
    ToolCall,
    Turn,
    scripted_llm_config,
    transfer_to,
)


def test_tool_chat_replays_script_with_exact_usage_and_cost() -> None:
    result, assistant, _ = two_agent_tool_chat()
    assert [(m.get("name"), m.get("content")) for m in result.chat_history] == [
        ("user", "add 2 and 3"), (None, None), ("user", "5"), ("assistant", "The sum is 5. TERMINATE")]
    assert result.chat_history[1]["tool_calls"][0]["id"] == "call_add_1"
    usage = assistant.get_total_usage()
    assert usage["total_cost"] == pytest.approx(0.03)
    assert usage["model-assistant"]["prompt_tokens"] == 130
    assert usage["model-assistant"]["completion_tokens"] == 13


def test_latency_advances_an_active_simulated_clock() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    clock = SimulatedClock(start)
    with use_clock(clock):
        two_agent_tool_chat()
    assert clock() == start + timedelta(milliseconds=500)


@pytest.mark.parametrize("method", ["auto", "round_robin", "custom"])
def test_group_chat_follows_the_scripted_order_and_runs_code(tmp_path, method) -> None:
    _, chat, _, selector = run_research_group(tmp_path, method)
    assert [m["name"] for m in chat.messages] == ["executor", "planner", "engineer", "executor", "planner"]
    assert chat.messages[3]["content"].startswith("exitcode: 0 (execution succeeded)")
    assert (tmp_path / "result.txt").read_text() == "42"
    if method == "auto":
        assert (selector.remaining, len(selector.responses)) == (0, 4)
    else:
        assert selector is None


def test_pattern_transfer_turns_pick_generated_tools() -> None:
    result, context, last, _ = handoff_pattern()
    assert [m.get("name") for m in result.chat_history] == [
        None, "triage", "_Group_Tool_Executor", "researcher", "_Group_Tool_Executor", "writer", "reviewer", "closer"]
    assert context.to_dict() == {"found": True}
    assert last.name == "closer"
    assert result.cost["usage_including_cached_inference"]["total_cost"] == pytest.approx(0.017)


def test_derived_usage_and_scripted_failures() -> None:
    script = Script(["four", Turn(error="rate limited"), transfer_to("x")], price_per_1k=(1.0, 2.0), name="s")
    response = script.respond("m", {"messages": [{"content": "abcdefgh"}]})
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 1)
    assert response.cost == pytest.approx((7 * 1.0 + 1 * 2.0) / 1000)
    with pytest.raises(ScriptedLLMError, match="rate limited"):
        script.respond("m", {"messages": []})
    with pytest.raises(ScriptExhausted, match="transfer_to_x"):
        script.respond("m", {"tools": [{"function": {"name": "transfer_to_y_1"}}]})
    with pytest.raises(ScriptExhausted, match="s: no scripted turn left"):
        script.respond("m", {})


def test_tool_call_ids_default_to_script_position() -> None:
    script = Script([Turn(tool_calls=(ToolCall("f"), ToolCall("g", {"k": 1})))], name="ids")
    calls = script.respond("m", {}).choices[0].message.tool_calls
    assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == [
        ("call_ids_1_0", "f", "{}"), ("call_ids_1_1", "g", '{"k": 1}')]
    assert scripted_llm_config("m1")["config_list"] == [{"model": "m1", "model_client_cls": "ScriptedLLM"}]
