"""Issue 17's Classic gaps: human input, files written by tools, manual and random speaker selection, and AG2's own
``tmp_code_*`` scripts kept apart from the files a code run produces."""

import hashlib
import json
import random
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

from ag2_scenarios import llm_agent, run_research_group, terminates
from autogen import ConversableAgent, GroupChat, GroupChatManager, register_function
from autogen.io import IOStream

import capture
from workloads.scripted_llm import Script, SilentStream, ToolCall, Turn


class ScriptedHuman(SilentStream):
    """A console whose human answers from a list, after ``delay_s`` of thought; keeps the prompts it was shown."""

    def __init__(self, answers: list[str], delay_s: float = 0.0) -> None:
        self.answers, self.delay_s, self.prompts = list(answers), delay_s, []

    def input(self, prompt: str = "", *, password: bool = False) -> str:
        self.prompts.append(prompt)
        time.sleep(self.delay_s)
        return self.answers.pop(0)


def test_human_input_is_recorded_as_approval_with_answer_and_wait(stored) -> None:
    assistant = llm_agent("assistant", Script([Turn("Draft: H0 = 67.", prompt_tokens=10, completion_tokens=5),
                                               Turn("Draft: H0 = 70. TERMINATE", prompt_tokens=20,
                                                    completion_tokens=6)], name="assistant"))
    user = ConversableAgent("user", llm_config=False, human_input_mode="ALWAYS")
    human = ScriptedHuman(["use the SH0ES value 70", "exit"], delay_s=0.06)
    capture.instrument([user, assistant])
    with IOStream.set_default(human):
        result = user.initiate_chat(assistant, message="Estimate H0.", max_turns=3)

    approvals = stored.events("approval_requested")
    assert len(approvals) == len(human.prompts) == len(user._human_input) == 2
    assert [json.loads(e["outputs"])["answer"] for e in approvals] == user._human_input
    assert [e["event_subtype"] for e in approvals] == ["modified", "rejected"]
    assert [json.loads(e["inputs"])["prompt"] for e in approvals] == human.prompts
    assert all(e["agent_name"] == "user" for e in approvals)
    assert all(e["duration_ms"] >= 60 and json.loads(e["meta"])["wait_ms"] == e["duration_ms"] for e in approvals)
    # Each request is nested under the user's reply that asked for it, inside the chat's run.
    index = {e["id"]: e for e in stored.events()}
    assert all(index[e["parent_event_id"]]["event_type"] == "agent_call" for e in approvals)
    assert all(index[e["parent_event_id"]]["agent_name"] == "user" for e in approvals)
    assert [m["content"] for m in result.chat_history][1:3] == ["Draft: H0 = 67.", "use the SH0ES value 70"]


def test_an_empty_answer_approves_and_a_failing_request_is_recorded(stored) -> None:
    assistant = llm_agent("assistant", Script([Turn("Proceeding."), Turn("Done. TERMINATE")], name="assistant"))
    user = ConversableAgent("user", llm_config=False, human_input_mode="ALWAYS", max_consecutive_auto_reply=5,
                            default_auto_reply="go on")
    capture.instrument([user, assistant])

    class Hangup(SilentStream):
        calls = 0

        def input(self, prompt: str = "", *, password: bool = False) -> str:
            Hangup.calls += 1
            if Hangup.calls > 1:
                raise EOFError("console closed")
            return ""

    with IOStream.set_default(Hangup()):
        try:
            user.initiate_chat(assistant, message="Start.", max_turns=3)
        except EOFError:
            pass
    approvals = stored.events("approval_requested")
    assert [(e["event_subtype"], e["status"]) for e in approvals] == [("approved", "completed"),
                                                                       ("rejected", "failed")]
    assert approvals[1]["error_message"] == "EOFError: console closed"


def test_files_written_by_tools_are_linked_to_the_tool_call(stored, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text("old\n")
    (tmp_path / "input.csv").write_text("x\n1\n")

    def save_table(name: str, rows: int) -> str:
        """Write a table, append a note, read an input and drop a scratch file."""
        Path(name).write_text("x,y\n" + "".join(f"{i},{i * i}\n" for i in range(rows)))
        with open("notes.md", "a") as notes:
            notes.write(f"saved {name}\n")
        Path("input.csv").read_text()
        scratch = Path("scratch.tmp")
        scratch.write_text("temporary")
        scratch.unlink()
        return f"saved {rows} rows to {name}"

    assistant = llm_agent("assistant", Script([
        Turn(tool_calls=(ToolCall("save_table", {"name": "squares.csv", "rows": 3}, id="call_save_1"),)),
        Turn("Saved. TERMINATE")], name="assistant"))
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER", is_termination_msg=terminates)
    register_function(save_table, caller=assistant, executor=user, description="Save a table.")
    capture.instrument([user, assistant])
    user.initiate_chat(assistant, message="Save the squares.", max_turns=3, silent=True)

    (tool,) = stored.events("tool_call")
    assert json.loads(tool["inputs"])["call_id"] == "call_save_1"
    files = {f["file_path"]: f for f in stored.table("files")}
    assert sorted(files) == ["notes.md", "squares.csv"]
    gens = {e["id"]: e for e in stored.events("file_gen")}
    for path, operation in (("squares.csv", "create"), ("notes.md", "update")):
        row = files[path]
        assert row["content_hash"] == hashlib.sha256((tmp_path / path).read_bytes()).hexdigest()
        assert row["generating_agent"] == "user"
        assert gens[row["event_id"]]["parent_event_id"] == tool["id"]
        assert gens[row["event_id"]]["event_subtype"] == operation


def test_tmp_code_scripts_are_the_code_runs_script_not_a_product(stored, tmp_path: Path) -> None:
    work = tmp_path / "work"
    run_research_group(work, "custom", capture.instrument)
    (code,) = stored.events("code_exec")
    outputs = json.loads(code["outputs"])
    scripts = sorted(p.name for p in work.glob("tmp_code_*.py"))
    assert len(scripts) == 1 and outputs["scripts"] == scripts
    assert outputs["code_file"] is not None and Path(outputs["code_file"]).name == scripts[0]
    assert [f["file_path"] for f in stored.table("files")] == ["result.txt"]


def chatty(name: str) -> ConversableAgent:
    """An agent without a model that answers every message with its name and a turn number."""
    agent = ConversableAgent(name, llm_config=False, human_input_mode="NEVER")
    turns = iter(range(1, 100))

    def reply(recipient: Any, messages: Any = None, sender: Any = None, config: Any = None) -> tuple[bool, str]:
        return True, f"{name} turn {next(turns)}"

    agent.register_reply([ConversableAgent, None], reply)
    return agent


def selection_group(method: str, rounds: int) -> tuple[GroupChatManager, GroupChat]:
    agents = [chatty(name) for name in ("alpha", "beta", "gamma")]
    chat = GroupChat(agents=agents, messages=[], max_round=rounds, speaker_selection_method=method)
    return GroupChatManager(groupchat=chat, llm_config=False), chat


def transitions(stored) -> list[tuple[str, str, str]]:
    return [(json.loads(e["inputs"])["from"], json.loads(e["inputs"])["to"], json.loads(e["meta"])["method"])
            for e in stored.events("handoff")]


def test_manual_speaker_selection_follows_the_humans_choices(stored) -> None:
    manager, chat = selection_group("manual", rounds=5)
    human = ScriptedHuman(["3", "2", "3", "1"])
    capture.instrument(manager)
    with IOStream.set_default(human):
        chat.agents[0].initiate_chat(manager, message="alpha opens")
    speakers = [m["name"] for m in chat.messages]
    assert speakers == ["alpha", "gamma", "beta", "gamma", "alpha"]
    assert transitions(stored) == [(a, b, "manual") for a, b in pairwise(speakers)]
    assert len(human.prompts) == 4 and not human.answers


def test_random_speaker_selection_matches_the_transcript(stored) -> None:
    manager, chat = selection_group("random", rounds=8)
    capture.instrument(manager)
    random.seed(17)
    with IOStream.set_default(SilentStream()):
        chat.agents[0].initiate_chat(manager, message="alpha opens", silent=True)
    speakers = [m["name"] for m in chat.messages]
    assert len(speakers) == 8 and len(set(speakers[1:])) > 1
    assert transitions(stored) == [(a, b, "random") for a, b in pairwise(speakers)]
    replies = [e["agent_name"] for e in stored.events("agent_call") if e["depth"] == 1]
    assert replies == speakers[1:]


def test_human_input_through_the_threaded_run_api(stored) -> None:
    """``run()`` asks the human on its worker thread with an ``InputRequestEvent`` the caller answers."""
    assistant = llm_agent("assistant", Script([Turn("Draft ready.", prompt_tokens=9, completion_tokens=3),
                                               Turn("Revised. TERMINATE", prompt_tokens=19, completion_tokens=3)],
                                              name="threaded"))
    capture.instrument(assistant)
    response = assistant.run(message="Write the draft.", max_turns=2, user_input=True)
    prompts = []
    for event in response.events:
        if event.type == "input_request":
            prompts.append(event.content.prompt)
            time.sleep(0.03)
            event.content.respond("make it shorter")
    approvals = stored.events("approval_requested")
    assert [json.loads(e["inputs"])["prompt"] for e in approvals] == prompts and len(prompts) == 1
    assert json.loads(approvals[0]["outputs"])["answer"] == "make it shorter"
    assert approvals[0]["event_subtype"] == "modified" and approvals[0]["duration_ms"] >= 30
    (run,) = stored.table("workflow_runs")
    assert {e["run_id"] for e in approvals} == {run["id"]}
