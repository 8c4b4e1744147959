"""Group chats (every selection method), patterns (every handoff kind), async tools, nested chats."""

import asyncio
import hashlib
import json

import pytest
from ag2_scenarios import async_tool_chat, handoff_pattern, nested_chat, relay_group, run_research_group
from autogen.io import IOStream

import capture
from workloads.scripted_llm import SilentStream


def tree_children(events: list[dict]) -> dict[str | None, list[dict]]:
    children: dict[str | None, list[dict]] = {}
    for event in sorted(events, key=lambda e: e["execution_order"]):
        children.setdefault(event["parent_event_id"], []).append(event)
    return children


def walk(children: dict, parent: str | None = None) -> list[dict]:
    """Depth-first, in execution order: the event tree flattened back into one sequence."""
    out = []
    for event in children.get(parent, []):
        out.append(event)
        out += walk(children, event["id"])
    return out


@pytest.mark.parametrize("method", ["auto", "round_robin", "custom"])
def test_group_chat_transitions_messages_code_and_files(stored, tmp_path, method) -> None:
    work = tmp_path / "work"
    _, chat, agents, selector = run_research_group(work, method, capture.instrument)
    events = stored.events()
    index = {e["id"]: e for e in events}

    handoffs = [(json.loads(e["inputs"])["from"], json.loads(e["inputs"])["to"], e["event_subtype"])
                for e in events if e["event_type"] == "handoff"]
    assert handoffs == [("executor", "planner", "speaker_selection"), ("planner", "engineer", "speaker_selection"),
                        ("engineer", "executor", "speaker_selection"), ("executor", "planner", "speaker_selection")]
    methods = {json.loads(e["meta"])["method"] for e in events if e["event_type"] == "handoff"}
    assert methods == {"<lambda>" if method == "custom" else method}

    sent = [m for m in stored.messages() if m["event_subtype"] == "send"]
    assert [(m["sender"], m["content"]) for m in sent] == [(m["name"], m["content"]) for m in chat.messages]
    assert [m["recipient"] for m in sent] == ["chat_manager"] * 5
    # One broadcast per round (not one per recipient), listing the group's other agents in group order.
    broadcasts = [m for m in stored.messages() if m["event_subtype"] == "broadcast"]
    group = [a.name for a in chat.agents]
    expected = [[name for name in group if name != m["name"]] for m in chat.messages]
    assert [(m["sender"], m["content"]) for m in broadcasts] == [("chat_manager", m["content"]) for m in chat.messages]
    assert [json.loads(m["meta"])["recipients"] for m in broadcasts] == expected
    assert [m["recipient"] for m in broadcasts] == [", ".join(names) for names in expected]
    assert [json.loads(index[m["event_id"]]["inputs"]) for m in broadcasts] == [
        {"sender": "chat_manager", "recipients": names} for names in expected]
    # AG2 itself still delivered every round to every agent.
    manager = next(a for a in chat.agents[0].chat_messages if a.name == "chat_manager")
    for agent in chat.agents:
        assert [m["content"] for m in agent.chat_messages[manager]] == [m["content"] for m in chat.messages]

    # The event tree (parent links, children in execution order) reconstructs the transcript's speaker order.
    flat = walk(tree_children(events))
    assert [e["id"] for e in flat] == [e["id"] for e in events]
    speakers = [e["agent_name"] for e in flat if e["event_type"] == "agent_call" and e["depth"] == 1]
    assert speakers == [m["name"] for m in chat.messages[1:]]

    (code,) = stored.events("code_exec")
    assert json.loads(code["outputs"])["exit_code"] == 0
    assert index[code["parent_event_id"]]["agent_name"] == "executor"
    files = {f["file_path"]: f for f in stored.table("files")}
    result_file = files["result.txt"]
    assert (result_file["size_bytes"], result_file["content_hash"]) == (2, hashlib.sha256(b"42").hexdigest())
    assert result_file["generating_agent"] == "executor"
    assert index[result_file["event_id"]]["parent_event_id"] == code["id"]
    assert result_file["node_id"] == code["node_id"] is not None

    participants = {a.name: a.get_total_usage() or {} for a in agents}
    costs = stored.table("cost_records")
    for name, usage in participants.items():
        mine = [c for c in costs if c["agent_name"] == name]
        assert sum(c["cost_usd"] for c in mine) == pytest.approx(usage.get("total_cost", 0.0))
        assert sum(c["prompt_tokens"] for c in mine) == sum(
            v["prompt_tokens"] for k, v in usage.items() if isinstance(v, dict))
    assert sum(c["cost_usd"] for c in costs if c["agent_name"] in participants) == pytest.approx(0.022)
    selection = [c for c in costs if c["agent_name"] == "speaker_selection_agent"]
    expected = [r.cost for r in selector.responses] if selector else []
    assert [c["cost_usd"] for c in selection] == pytest.approx(expected)
    assert len(selection) == (4 if method == "auto" else 0)
    selection_calls = [e for e in events if e["event_type"] == "llm_call" and e["agent_name"] not in participants]
    assert {index[e["parent_event_id"]]["agent_name"] for e in selection_calls} == (
        {"chat_manager"} if method == "auto" else set())
    (termination,) = [e for e in events if e["event_type"] == "info"]
    assert json.loads(termination["outputs"])["reason"] == (
        "Termination message condition on the GroupChatManager 'chat_manager' met")


def relay(stored, opening: str = "sync", **chat_options) -> list[tuple]:
    """Run :func:`relay_group` under capture; (subtype, sender, recipient column, recipients, content) per message."""
    manager, chat = relay_group(**chat_options)
    capture.instrument(manager)
    starter = chat.agents[0]
    with IOStream.set_default(SilentStream()):
        if opening == "async":
            asyncio.run(starter.a_initiate_chat(manager, message="relay: go", silent=True))
        elif opening == "resume":
            last, message = manager.resume(messages=[{"content": "relay: go", "role": "user", "name": "starter"},
                                                     {"content": "b: first pass", "role": "user", "name": "b"}])
            last.initiate_chat(manager, message=message, clear_history=False, silent=True)
        else:
            starter.initiate_chat(manager, message="relay: go", silent=True)
    return [(m["event_subtype"], m["sender"], m["recipient"], json.loads(m["meta"]).get("recipients"), m["content"])
            for m in stored.messages()]


ROUNDS = [("broadcast", "chat_manager", "b, c", ["b", "c"], "relay: go"),
          ("broadcast", "chat_manager", "starter, c", ["starter", "c"], "b: the secret is 42."),
          ("broadcast", "chat_manager", "starter, b", ["starter", "b"], "c: noted. TERMINATE")]


@pytest.mark.parametrize("opening", ["sync", "async"])
def test_one_broadcast_per_round_in_run_chat_and_a_run_chat(stored, opening) -> None:
    broadcasts = [m for m in relay(stored, opening) if m[0] == "broadcast"]
    # a_run_chat checks termination before the fan-out, run_chat after it.
    assert broadcasts == (ROUNDS if opening == "sync" else ROUNDS[:2])


def test_introductions_stay_per_recipient(stored) -> None:
    intro = [m for m in relay(stored, send_introductions=True) if m[0] == "broadcast"]
    assert [(m[2], m[3], m[4][:14]) for m in intro[:3]] == [(name, None, "Hello everyone") for name in
                                                             ("starter", "b", "c")]
    assert intro[3:] == ROUNDS


def test_resumed_history_is_not_the_last_appended_message_so_it_stays_per_recipient(stored) -> None:
    messages = [m for m in relay(stored, "resume") if m[0] == "broadcast"]
    assert messages == [("broadcast", "chat_manager", "b", None, "relay: go"),
                        ("broadcast", "chat_manager", "c", None, "relay: go"),
                        ("broadcast", "chat_manager", "starter, c", ["starter", "c"], "b: first pass"),
                        ROUNDS[2]]


def test_a_group_with_inter_agent_guardrails_is_recorded_per_recipient(stored) -> None:
    from autogen.agentchat.group.safeguards import apply_safeguard_policy

    def mask_secrets(manager) -> None:
        capture.instrument(manager)
        apply_safeguard_policy(groupchat_manager=manager, policy={"inter_agent_safeguards": {"agent_transitions": [
            {"message_source": "b", "message_destination": "c", "check_method": "regex", "pattern": "secret",
             "action": "mask"}]}})

    manager, chat = relay_group()
    mask_secrets(manager)
    with IOStream.set_default(SilentStream()):
        chat.agents[0].initiate_chat(manager, message="relay: go", silent=True)
    fan_out = [(m["recipient"], m["content"]) for m in stored.messages() if m["event_subtype"] == "broadcast"]
    assert fan_out == [("b", "relay: go"), ("c", "relay: go"), ("starter", "b: the secret is 42."),
                       ("c", "b: the [SENSITIVE_INFO] is 42."), ("starter", "c: noted. TERMINATE"),
                       ("b", "c: noted. TERMINATE")]


def test_uninstrumented_manager_records_nothing(stored, tmp_path) -> None:
    def instrument_then_undo(manager) -> None:
        capture.instrument(manager)
        capture.instrument(manager)
        capture.uninstrument(manager)

    _, chat, agents, _ = run_research_group(tmp_path, "auto", instrument_then_undo)
    assert [m["name"] for m in chat.messages] == ["executor", "planner", "engineer", "executor", "planner"]
    assert stored.events() == [] and stored.table("cost_records") == []
    assert "_create_internal_agents" not in chat.__dict__
    assert not any("generate_reply" in agent.__dict__ for agent in agents)


def test_pattern_records_every_handoff_kind(stored) -> None:
    result, _, _, _ = handoff_pattern(capture.instrument)
    events = stored.events()
    handoffs = [(e["event_subtype"], json.loads(e["inputs"])["from"], json.loads(e["inputs"])["to"])
                for e in events if e["event_type"] == "handoff"]
    assert handoffs == [
        ("speaker_selection", "_User", "triage"),
        ("speaker_selection", "triage", "_Group_Tool_Executor"),
        ("llm_condition", "triage", "researcher"),
        ("speaker_selection", "researcher", "_Group_Tool_Executor"),
        ("reply_result", "researcher", "writer"),
        ("context_condition", "writer", "reviewer"),
        ("after_work", "reviewer", "closer"),
        ("after_work", "closer", "Terminate"),
    ]
    tools = [json.loads(e["inputs"]) for e in stored.events("tool_call")]
    assert [(t["name"], t["call_id"]) for t in tools] == [("transfer_to_researcher_1", "call_triage_1_0"),
                                                          ("save_finding", "call_save_1")]
    transcript_ids = [c["id"] for m in result.chat_history for c in m.get("tool_calls") or []]
    assert sorted(transcript_ids) == sorted(t["call_id"] for t in tools)
    sent = [m for m in stored.messages() if m["event_subtype"] == "send"]
    assert [m["sender"] for m in sent] == ["_User"] + [m["name"] for m in result.chat_history[1:]]
    costs = stored.table("cost_records")
    assert sum(c["cost_usd"] for c in costs) == pytest.approx(
        result.cost["usage_including_cached_inference"]["total_cost"])
    (termination,) = [e for e in events if e["event_type"] == "info"]
    assert json.loads(termination["outputs"]) == {"reason": "No next speaker selected"}


def test_async_chat_nests_concurrent_tools_and_records_the_failing_one(stored) -> None:
    result, _, _ = asyncio.run(async_tool_chat(capture.instrument))
    events = stored.events()
    index = {e["id"]: e for e in events}
    tools = stored.events("tool_call")
    assert [(json.loads(t["inputs"])["call_id"], t["status"]) for t in tools] == [
        ("call_sq_3", "completed"), ("call_sq_4", "completed"), ("call_broken_5", "failed")]
    parents = {t["parent_event_id"] for t in tools}
    assert len(parents) == 1 and index[parents.pop()]["agent_name"] == "user"
    square_3, square_4, failing = tools
    assert square_4["started_at"] < square_3["completed_at"] and square_3["started_at"] < square_4["completed_at"]
    assert failing["error_message"] == "Error: cannot handle 5"
    (error,) = [e for e in events if e["event_type"] == "error"]
    assert (error["parent_event_id"], error["event_subtype"]) == (failing["id"], "tool_call")
    llm = stored.events("llm_call")
    assert [index[e["parent_event_id"]]["agent_name"] for e in llm] == ["assistant", "assistant"]
    assert sum(json.loads(e["meta"])["cost_usd"] for e in llm) == pytest.approx(0.01)
    assert len([m for m in stored.messages()]) == len(result.chat_history)


def test_nested_chat_nests_under_the_outer_reply(stored) -> None:
    result, _, _, _ = nested_chat(capture.instrument)
    events = stored.events()
    index = {e["id"]: e for e in events}
    assert len(stored.table("workflow_runs")) == 1
    critic = [e for e in events if e["event_type"] == "agent_call" and e["agent_name"] == "critic"]
    assert len(critic) == 1
    outer = index[critic[0]["parent_event_id"]]
    assert (outer["agent_name"], outer["depth"], critic[0]["depth"]) == ("writer", 0, 1)
    inner_messages = [(m["sender"], m["recipient"], m["content"]) for m in stored.messages()]
    assert inner_messages == [("user", "writer", "Write the claim."), ("writer", "critic", "Critique: H0 = 70."),
                              ("critic", "writer", "Critique: tighten the claim."),
                              ("writer", "user", "Critique: tighten the claim.")]
    assert result.chat_history[-1]["content"] == "Critique: tighten the claim."
