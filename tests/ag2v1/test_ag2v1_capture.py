"""AG2 v1 capture checked against AG2 v1's own record (the events on each agent's stream, the hub's WAL): every
turn, tool call id, code run, transition and token count stored and nested correctly, also under
``asyncio.gather`` and threads; failures recorded and still raised; and a v1 team doing the same work as an AG2
Classic group chat mined into the same skill."""

import hashlib
import importlib.util
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

import capture
from capture.adapters.ag2_v1.pricing import DEFAULT_PRICES, Price
from capture.store.migrate import upgrade
from skill_pipeline.lib.mining_steps import mine_store, skill_membership

pytestmark = pytest.mark.ag2v1

# What the scenarios are priced at: the default table, plus the price they set for their unlisted model.
PRICES = {**DEFAULT_PRICES, "acme-small": Price(1.0, 2.0)}


def test_team_is_captured_completely_against_v1s_own_record(run_v1) -> None:
    captured = run_v1("team")
    record, events = captured.record, captured.events()
    index = {e["id"]: e for e in events}
    kinds = {e["event_type"] for e in events}
    assert "error" not in kinds

    # The channel is one run (opened by the hub listener, as no capture.run was open), closed with the channel.
    (run,) = captured.rows("SELECT * FROM workflow_runs")
    assert run["status"] == "completed" and {e["run_id"] for e in events} == {run["id"]}
    (end,) = captured.events("info")
    assert end["outputs"]["reason"] == record["workflow"]["close_reason"] == "max_turns"

    # Only the hub was instrumented: it instrumented the agents as it registered them.
    assert record["workflow"]["instrumented_at_registration"] == [True, True, True]
    # Every turn and every transition, in the hub's order (the user only posts the task).
    speakers = record["workflow"]["speakers"]
    turns = [e for e in events if e["event_type"] == "agent_call" and e["parent_event_id"] is None]
    assert [e["agent_name"] for e in turns] == speakers[1:]
    transitions = [(e["inputs"]["from"], e["inputs"]["to"]) for e in events if e["event_subtype"] == "transition"]
    assert transitions == list(pairwise(speakers))
    # Every message, as a broadcast to the other participants.
    said = captured.rows("SELECT m.sender, m.content, m.meta FROM messages m JOIN execution_events e "
                         "ON e.id = m.event_id ORDER BY e.execution_order")
    assert [(m["sender"], m["content"]) for m in said] == list(zip(speakers, record["workflow"]["said"], strict=True))
    participants = {"user", "planner", "engineer", "executor"}
    assert [sorted(json.loads(m["meta"])["recipients"]) for m in said] == [sorted(participants - {s})
                                                                             for s in speakers]

    # Per agent: every tool call id (code runs as code_exec), every LLM call with its tokens and model.
    agents = record["agents"]
    assert sorted(agents) == ["critic", "engineer", "executor", "planner"]
    for name, seen in agents.items():
        mine = [e for e in events if e["agent_name"] == name]
        tools = [e["inputs"]["call_id"] for e in mine if e["event_type"] == "tool_call"]
        code = [e["inputs"]["call_id"] for e in mine if e["event_type"] == "code_exec"]
        assert tools == [c["id"] for c in seen["tool_calls"] if c["name"] != "run_code"]
        assert code == [c["id"] for c in seen["tool_calls"] if c["name"] == "run_code"]
        llm = [e for e in mine if e["event_type"] == "llm_call"]
        assert len(llm) == seen["llm_calls"]
        assert [e["meta"]["model"] for e in llm] == seen["models"]
        assert sum(e["meta"]["prompt_tokens"] for e in llm) == seen["prompt_tokens"]
        assert sum(e["meta"]["completion_tokens"] for e in llm) == seen["completion_tokens"]
        for event in llm:
            assert index[event["parent_event_id"]]["event_type"] == "agent_call"
            assert index[event["parent_event_id"]]["agent_name"] == name
            price = PRICES[event["meta"]["model"]]
            expected = price.cost(event["meta"]["prompt_tokens"], event["meta"]["completion_tokens"])
            assert event["meta"]["cost_usd"] == pytest.approx(expected) and expected > 0
            assert event["meta"]["cost_source"] == "computed"
        own_turns = [e for e in mine if e["event_type"] == "agent_call"]
        assert sum(e["meta"]["prompt_tokens"] for e in own_turns) == seen["prompt_tokens"]
    costs = captured.rows("SELECT * FROM cost_records")
    llm_calls = {e["id"]: e for e in events if e["event_type"] == "llm_call"}
    assert sorted(c["event_id"] for c in costs) == sorted(llm_calls)
    assert all(c["cost_usd"] == pytest.approx(llm_calls[c["event_id"]]["meta"]["cost_usd"]) for c in costs)

    # The planner's delegation: a handoff, then the critic's turn nested under the planner's tool call.
    (consult,) = [e for e in events if e["event_type"] == "tool_call" and e["inputs"]["name"] == "critic"]
    (delegation,) = [e for e in events if e["event_subtype"] == "delegation"]
    (critic_turn,) = [e for e in events if e["event_type"] == "agent_call" and e["agent_name"] == "critic"]
    assert delegation["parent_event_id"] == critic_turn["parent_event_id"] == consult["id"]
    assert (delegation["inputs"], consult["outputs"]["content"]) == ({"from": "planner", "to": "critic"},
                                                                     "Critique: state the units.")
    assert delegation["execution_order"] < critic_turn["execution_order"]

    # The human-input turn: the prompt, the answer v1 delivered, and the wait.
    (approval,) = captured.events("approval_requested")
    (ask_human,) = [e for e in events if e["event_type"] == "tool_call" and e["inputs"]["name"] == "approve"]
    assert approval["parent_event_id"] == ask_human["id"]
    assert approval["inputs"] == {"prompt": "Run the code?"}
    assert [approval["outputs"]["answer"]] == agents["engineer"]["human"]
    assert approval["duration_ms"] >= 50 and approval["meta"]["mechanism"] == "hitl_hook"

    # The sandboxed code run: exit code, output, the file it wrote; the file a tool wrote, linked to that tool call.
    (code,) = captured.events("code_exec")
    assert (code["status"], code["outputs"]["exit_code"], code["outputs"]["output"]) == ("completed", 0,
                                                                                          "wrote result")
    assert index[code["parent_event_id"]]["agent_name"] == "executor"
    files = {f["file_path"]: f for f in captured.rows("SELECT * FROM files")}
    assert sorted(files) == ["notes.md", "result.txt"]
    assert files["result.txt"]["content_hash"] == hashlib.sha256(b"42").hexdigest()
    assert index[files["result.txt"]["event_id"]]["parent_event_id"] == code["id"]
    (notes,) = [e for e in events if e["event_type"] == "tool_call" and e["inputs"]["name"] == "write_notes"]
    assert index[files["notes.md"]["event_id"]]["parent_event_id"] == notes["id"]
    assert files["notes.md"]["generating_agent"] == "engineer"


def test_concurrent_asks_nest_under_their_own_turns(run_v1) -> None:
    captured = run_v1("concurrent")
    agents, events = captured.record["agents"], captured.events()
    index = {e["id"]: e for e in events}
    by_run: dict[str, set[str]] = {}
    for event in events:
        by_run.setdefault(event["run_id"], set()).add(event["agent_name"])
    # asyncio.gather inside one capture.run: one run; two threads outside any run: one run each.
    assert by_run.pop(captured.record["gather_run_id"]) == {"gather0", "gather1", "gather2"}
    assert sorted(sorted(names) for names in by_run.values()) == [["thread0"], ["thread1"]]
    for name, seen in agents.items():
        (turn,) = [e for e in events if e["event_type"] == "agent_call" and e["agent_name"] == name]
        tools = [e for e in events if e["event_type"] == "tool_call" and e["agent_name"] == name]
        assert sorted(e["inputs"]["call_id"] for e in tools) == sorted(c["id"] for c in seen["tool_calls"])
        assert all(index[e["parent_event_id"]] is turn and e["run_id"] == turn["run_id"] for e in tools)
        assert len([e for e in events if e["event_type"] == "llm_call" and e["parent_event_id"] == turn["id"]]) == (
            seen["llm_calls"])
    gathered = [e for e in events if e["event_type"] == "agent_call" and e["agent_name"].startswith("gather")]
    assert max(e["started_at"] for e in gathered) < min(e["completed_at"] for e in gathered)  # they overlapped


def test_failures_are_recorded_and_still_raised(run_v1) -> None:
    captured = run_v1("failures")
    events = captured.events()
    seen = captured.record["agents"]["fragile"]
    assert captured.record["raised"] == "model unavailable"
    (turn,) = captured.events("agent_call")
    assert (turn["status"], turn["error_message"]) == ("failed", "RuntimeError: model unavailable")
    (tool,) = captured.events("tool_call")
    assert [{"id": tool["inputs"]["call_id"], "error": True}] == [r for r in seen["tool_results"] if r["error"]]
    assert (tool["status"], tool["error_message"]) == ("failed", "ZeroDivisionError: division by zero")
    (code,) = captured.events("code_exec")
    assert (code["status"], code["outputs"]["exit_code"]) == ("failed", 3)
    failed_llm = [e for e in events if e["event_type"] == "llm_call" and e["status"] == "failed"]
    assert len(failed_llm) == 1 and failed_llm[0]["error_message"] == "RuntimeError: model unavailable"
    errors = [(e["event_subtype"], e["error_message"]) for e in captured.events("error")]
    assert errors == [("tool_call", "ZeroDivisionError: division by zero"), ("code_exec", "exit code 3: "),
                      ("llm_call", "RuntimeError: model unavailable"),
                      ("agent_call", "RuntimeError: model unavailable")]


def test_a_failed_turn_on_a_hub_fails_the_channels_run_which_ends_with_the_hub(run_v1) -> None:
    captured = run_v1("hub_failure")
    assert captured.record["workflow"]["terminal_before_close"] is False  # nobody replied: the channel stayed open
    (run,) = captured.rows("SELECT * FROM workflow_runs")
    assert run["status"] == "failed" and run["completed_at"] is not None
    assert json.loads(run["meta"])["error"] == "turn of planner failed: RuntimeError: model unavailable"
    errors = [(e["event_subtype"], e["agent_name"]) for e in captured.events("error")]
    assert errors == [("llm_call", "planner"), ("agent_call", "planner"), ("turn_failed", "planner")]
    (end,) = captured.events("info")
    assert end["outputs"] == {"reason": "hub_closed"}


def test_uninstrument_restores_v1_objects_and_records_nothing(run_v1) -> None:
    captured = run_v1("undo")
    record = captured.record
    assert record["during"] != record["before"] and record["during"]["run_patched"]
    assert record["workflow"]["instrumented_at_registration"] == [True, True, True]  # by the hub, then undone
    assert record["after"] == record["before"]
    assert record["workflow"]["speakers"] == ["user", "planner", "engineer", "executor", "planner"]
    assert captured.events() == []


def _classic_research_group() -> Any:
    """``run_research_group`` from the AG2 Classic scenarios of ``tests/ag2`` (not on this folder's path)."""
    spec = importlib.util.spec_from_file_location("ag2_scenarios", Path(__file__).parents[1] / "ag2" /
                                                  "ag2_scenarios.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_research_group


def test_v1_team_and_classic_group_doing_the_same_work_mine_into_one_skill(run_v1, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'both.db'}"
    upgrade(url)
    research = run_v1("research", runs=3, url=url)
    v1_runs = [r["run_id"] for r in research.record["runs"]]
    run_research_group = _classic_research_group()
    capture.configure(database_url=url, spool_dir=tmp_path / "spool", flush_interval_s=0.05)
    classic_runs = []
    try:
        for index in range(3):
            with capture.run("research", mode="one_shot", task="Compute the answer and save it.") as handle:
                run_research_group(tmp_path / f"classic{index}", "custom", capture.instrument)
            classic_runs.append(handle.id)
        assert capture.flush(10.0)
    finally:
        capture.shutdown()
    mined, _ = mine_store(url, tmp_path / "warehouse.duckdb")
    membership = skill_membership(tmp_path / "warehouse.duckdb")
    skills = {membership.get(run_id) for run_id in v1_runs + classic_runs}
    assert len(skills) == 1 and None not in skills, membership
    (template,) = [t for t in mined.templates if t.name == skills.pop()]
    assert template.support == 6 and template.publishable
