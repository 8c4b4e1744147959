"""Two-agent chats: tool calls, LLM usage and cost, transcript completeness, errors, simulated time, undo."""

import json
from datetime import UTC, datetime

import pytest
from ag2_scenarios import llm_agent, terminates, two_agent_tool_chat
from autogen import ConversableAgent

import capture
from capture import api
from capture.adapters.ag2_classic import failure_count, is_instrumented
from capture.core.clock import SimulatedClock, use_clock
from workloads.scripted_llm import Script, ScriptedLLMError, Turn


def by_id(events: list[dict]) -> dict[str, dict]:
    return {e["id"]: e for e in events}


def test_tool_chat_is_captured_completely(stored) -> None:
    result, assistant, _ = two_agent_tool_chat(capture.instrument)
    events = stored.events()
    index = by_id(events)
    runs = stored.table("workflow_runs")
    assert [(r["status"], r["task_description"]) for r in runs] == [("completed", "add 2 and 3")]
    assert {e["run_id"] for e in events} == {runs[0]["id"]}

    messages = stored.messages()
    assert [(m["sender"], m["recipient"]) for m in messages] == [
        ("user", "assistant"), ("assistant", "user"), ("user", "assistant"), ("assistant", "user")]
    assert [m["content"] for m in messages] == [
        "add 2 and 3", json.dumps([{"id": "call_add_1", "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'}}]),
        "5", "The sum is 5. TERMINATE"]
    assert len(messages) == len(result.chat_history)

    calls = [(e["agent_name"], e["status"]) for e in events if e["event_type"] == "agent_call"]
    assert calls == [("assistant", "completed"), ("user", "completed"), ("assistant", "completed"),
                     ("user", "completed")]
    (tool,) = stored.events("tool_call")
    assert json.loads(tool["inputs"]) == {"name": "add", "arguments": '{"a": 2, "b": 3}', "call_id": "call_add_1"}
    assert json.loads(tool["outputs"]) == {"content": "5", "success": True}
    assert index[tool["parent_event_id"]]["agent_name"] == "user"
    assert index[tool["parent_event_id"]]["event_type"] == "agent_call"

    llm = stored.events("llm_call")
    assert [(json.loads(e["meta"])["prompt_tokens"], json.loads(e["meta"])["completion_tokens"]) for e in llm] == [
        (50, 7), (80, 6)]
    assert all(index[e["parent_event_id"]]["agent_name"] == "assistant" for e in llm)
    reply_meta = [json.loads(index[e["parent_event_id"]]["meta"]) for e in llm]
    assert [(m["prompt_tokens"], m["cost_usd"]) for m in reply_meta] == [(50, 0.01), (80, 0.02)]

    costs = stored.table("cost_records")
    usage = assistant.get_total_usage()
    assert sum(c["prompt_tokens"] for c in costs) == usage["model-assistant"]["prompt_tokens"] == 130
    assert sum(c["completion_tokens"] for c in costs) == usage["model-assistant"]["completion_tokens"] == 13
    assert sum(c["cost_usd"] for c in costs) == pytest.approx(result.cost["usage_including_cached_inference"]
                                                              ["total_cost"])
    assert {c["event_id"] for c in costs} == {e["id"] for e in llm}

    (termination,) = [e for e in events if e["event_type"] == "info"]
    assert json.loads(termination["outputs"]) == {"reason": "Termination message condition on agent 'user' met"}
    assert capture.stats()["errors"] == 0 and failure_count() == 0


def test_durations_follow_the_simulated_clock(stored) -> None:
    clock = SimulatedClock(datetime(2026, 3, 1, 12, tzinfo=UTC))
    with use_clock(clock):
        two_agent_tool_chat(capture.instrument)
    llm = stored.events("llm_call")
    assert [e["duration_ms"] for e in llm] == [300, 200]
    replies = [e for e in stored.events("agent_call") if e["agent_name"] == "assistant"]
    assert [e["duration_ms"] for e in replies] == [300, 200]


def test_llm_failure_marks_spans_failed_and_propagates(stored) -> None:
    assistant = llm_agent("assistant", Script([Turn(error="429 rate limited")], name="failing"))
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER", is_termination_msg=terminates)
    capture.instrument([user, assistant])
    with pytest.raises(ScriptedLLMError, match="429 rate limited"):
        user.initiate_chat(assistant, message="hi", max_turns=1, silent=True)
    events = stored.events()
    failed = [(e["event_type"], e["event_subtype"], e["status"]) for e in events if e["status"] == "failed"]
    assert failed == [("agent_call", "error", "failed"), ("llm_call", "error", "failed"),
                      ("error", "llm_call", "failed"), ("error", "agent_call", "failed")]
    assert "429 rate limited" in next(e for e in events if e["event_type"] == "llm_call")["error_message"]
    assert [r["status"] for r in stored.table("workflow_runs")] == ["failed"]


def plain_transcript() -> list[tuple]:
    result, _, _ = two_agent_tool_chat()
    return [(m.get("name"), m.get("content"), m.get("role")) for m in result.chat_history]


def test_uninstrument_restores_behaviour_exactly(stored) -> None:
    expected = plain_transcript()

    def instrument_then_undo(agents: list) -> None:
        originals = [dict(a.__dict__) for a in agents]
        capture.instrument(agents)
        assert all(is_instrumented(a) for a in agents)
        capture.uninstrument(agents)
        assert not any(is_instrumented(a) for a in agents)
        for agent, before in zip(agents, originals, strict=True):
            for name in ("generate_reply", "a_generate_reply", "execute_function", "initiate_chat", "run"):
                assert agent.__dict__.get(name) is before.get(name)

    result, _, _ = two_agent_tool_chat(instrument_then_undo)
    assert [(m.get("name"), m.get("content"), m.get("role")) for m in result.chat_history] == expected
    assert stored.events() == []
    assert stored.table("messages") == []


def test_instrumenting_twice_records_each_event_once(stored) -> None:
    def twice(agents: list) -> None:
        capture.instrument(agents)
        capture.instrument(agents)

    two_agent_tool_chat(twice)
    kinds = [e["event_type"] for e in stored.events()]
    assert {k: kinds.count(k) for k in set(kinds)} == {"message": 4, "agent_call": 4, "llm_call": 2,
                                                       "tool_call": 1, "info": 1}
    assert len(stored.table("cost_records")) == 2


def test_a_failing_capture_never_changes_the_chat(stored, monkeypatch) -> None:
    expected = plain_transcript()

    def broken(*args, **kwargs):
        raise RuntimeError("capture bug")

    monkeypatch.setattr(api, "span", broken)  # the adapters call the capture API through capture.api
    monkeypatch.setattr(api, "record_message", broken)
    before = failure_count()
    result, _, _ = two_agent_tool_chat(capture.instrument)
    assert [(m.get("name"), m.get("content"), m.get("role")) for m in result.chat_history] == expected
    assert failure_count() - before == 4 + 4 + 2 + 1
