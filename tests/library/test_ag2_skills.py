"""AG2 Classic uses the library: a planner finds, loads and instantiates the plotting skill through the skill tools,
a real group chat follows the skill's steps, the captured run carries ``skill_applied`` and, re-mined, joins the
skill's group. Bad input to the tools comes back as one line naming it; the selection tolerates chats leaving the
plan. Real agents with scripted offline models (``workloads.scripted_llm``), real capture into SQLite."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from autogen import Agent, ConversableAgent, GroupChat, GroupChatManager
from autogen.io import IOStream
from mined_library import mine_library
from sqlalchemy import create_engine, text

import capture
from capture.core.clock import SimulatedClock, use_clock
from capture.store.migrate import upgrade
from skill_library import open_library
from skill_library.ag2 import SkillTools, register_skill_tools, skill_speaker_selection, skill_transitions
from skill_pipeline.lib.slot_values import values_from_task
from workloads import scripted_llm
from workloads.ag2_engine import _NodeChat
from workloads.script import build_run_script
from workloads.simulate import simulate

PLOT_TITLE = "Plot an expression over a range"


@pytest.fixture(scope="module")
def plot_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """40 simulated one-shot runs (plots and fits) mined into a library; returns the store URL and the root."""
    root = tmp_path_factory.mktemp("ag2skills")
    url = f"sqlite:///{root / 'capture.db'}"
    simulate(runs=40, seed=21, modes=("one_shot",), families=("plot_function", "fit_model"), url=url,
             ground_truth=root / "truth.jsonl")
    mine_library(url, root)
    return url, root


@pytest.fixture
def recording(plot_store: tuple[str, Path], tmp_path: Path) -> Iterator[str]:
    url = plot_store[0]
    capture.configure(database_url=url, spool_dir=tmp_path / "spool", flush_interval_s=0.05)
    yield url
    capture.shutdown()


def _last_tool_result(params: dict[str, Any]) -> str:
    return next(m["content"] for m in reversed(params["messages"]) if m.get("role") == "tool")


def _typed(values: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    return {k: int(v) if spec[k]["type"] == "integer" else float(v) if spec[k]["type"] == "number" else v
            for k, v in values.items()}


def _plot_script() -> Any:
    """A completed one-shot plotting run that needed no retry (its agents follow the mined steps once)."""
    for index in range(1000, 1100):
        script = build_run_script(99, index, modes=("one_shot",), families=("plot_function",))
        agents = [t.agent for node in script.nodes for t in node.turns]
        if script.status == "completed" and "installer" not in agents:
            return script
    raise AssertionError("no retry-free plotting run among 100 scripts")


def _plan(library_path: Path, task: str) -> tuple[str, dict[str, Any], list[str]]:
    """A planner chat: find the skill, try bad parameters, load it, instantiate it; returns name, plan, tool results."""
    chosen: dict[str, Any] = {}

    def load(params: dict[str, Any]) -> scripted_llm.Turn:
        chosen["hit"] = json.loads(_last_tool_result(params))[0]
        return scripted_llm.Turn(tool_calls=(scripted_llm.ToolCall("load_skill", {"name": chosen["hit"]["name"]}),))

    def bad_parameters(params: dict[str, Any]) -> scripted_llm.Turn:
        return scripted_llm.Turn(tool_calls=(scripted_llm.ToolCall(
            "instantiate_skill", {"name": chosen["hit"]["name"], "parameters_json": "{x_min: 0"}),))

    def instantiate(params: dict[str, Any]) -> scripted_llm.Turn:
        hit = chosen["hit"]
        values = _typed(values_from_task(hit["task_template"], task), hit["parameters"])
        return scripted_llm.Turn(tool_calls=(scripted_llm.ToolCall(
            "instantiate_skill", {"name": hit["name"], "parameters_json": json.dumps(values)}),))

    script = scripted_llm.Script([
        scripted_llm.Turn(tool_calls=(scripted_llm.ToolCall("find_skills", {"query": "plot an expression over a "
                                                                                      "range and save the figure"}),)),
        load, bad_parameters, instantiate, "The plan is ready. TERMINATE"], name="planner")
    planner = scripted_llm.use_script(ConversableAgent(
        "planner", llm_config=scripted_llm.scripted_llm_config(), human_input_mode="NEVER"), script)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER",
                            is_termination_msg=lambda m: "TERMINATE" in (m.get("content") or ""))
    register_skill_tools(library_path, caller=planner, executor=user)
    with IOStream.set_default(scripted_llm.SilentStream()):
        user.initiate_chat(planner, message=task, max_turns=6, silent=True)
    results = [r["content"] for m in planner.chat_messages[user] for r in m.get("tool_responses") or []]
    assert script.remaining == 0 and len(results) == 4, results
    return chosen["hit"]["name"], json.loads(results[-1]), results


def test_a_planner_finds_the_skill_and_a_group_chat_follows_it_into_the_same_skill_group(
        plot_store: tuple[str, Path], recording: str, tmp_path: Path) -> None:
    url, root = plot_store
    library = open_library(root / "library")
    before = {s["name"]: s for s in library.skills()}
    run = _plot_script()
    name, plan, results = _plan(root / "library", run.task)
    doc = library.get(name)
    assert doc["title"] == PLOT_TITLE and doc["category"] == "one_shot"
    assert results[2].startswith("error: parameters_json for skill") and "\n" not in results[2]
    assert plan["task"] == run.task and plan["skill"] == name

    walk = skill_speaker_selection(doc)
    (tmp_path / "work" / "codebase").mkdir(parents=True)
    clock = SimulatedClock(run.started_at)
    chats = []
    with (use_clock(clock, process_wide=True),
          capture.run(mode=run.mode, task=plan["task"], run_id=run.run_id, session_id=run.session_id,
                      meta=dict(run.config))):
        for node in run.nodes:
            with capture.node(node.name, agent=node.agent, node_type=node.node_type, node_id=node.node_id):
                chat = _NodeChat(node, tmp_path / "work", clock)
                chat.groupchat.speaker_selection_method = walk  # the skill, not the run's script, picks speakers
                chat.manager = GroupChatManager(chat.groupchat, llm_config=False, name=chat.manager.name,
                                                is_termination_msg=chat.manager._is_termination_msg)
                chat.play()
                chats.append(chat)
    assert capture.flush(10.0)

    steps = [s["agent"] for s in doc["steps"]]
    spoken = [m["name"] for chat in chats for m in chat.groupchat.messages if m["name"] in set(steps)]
    assert spoken == steps and not walk.left_plan
    assert [i for _, i in walk.history if i is not None] == list(range(len(steps)))
    assert all(chat.script.remaining == 0 for chat in chats)  # every scripted turn went to the agent it was for

    engine = create_engine(url)
    with engine.connect() as conn:
        meta = conn.execute(text("SELECT meta FROM workflow_runs WHERE id = :id"), {"id": run.run_id}).scalar_one()
    engine.dispose()
    assert json.loads(meta)["skill_applied"] == {"name": name, "version": doc["version"],
                                                 "content_hash": doc["content_hash"]}

    remined = open_library(mine_library(url, root))
    after = {s["name"]: s for s in remined.skills()}
    assert remined.release == library.release + 1
    assert after[name]["support"] == before[name]["support"] + 1
    assert after[name]["id"] == before[name]["id"]
    assert {n: s["support"] for n, s in after.items() if n != name} == \
        {n: s["support"] for n, s in before.items() if n != name}


def test_tools_answer_bad_input_with_one_line_naming_it(plot_store: tuple[str, Path], tmp_path: Path) -> None:
    library = open_library(plot_store[1] / "library")
    name = next(s["name"] for s in library.skills() if s["title"] == PLOT_TITLE)
    tools = SkillTools(library)
    answers = {
        "unknown skill": tools.load_skill("no_such_skill"),
        "unknown skill to instantiate": tools.instantiate_skill("no_such_skill", "{}"),
        "malformed JSON": tools.instantiate_skill(name, '{"x_min": '),
        "not an object": tools.instantiate_skill(name, "[1, 2]"),
        "mistyped": tools.instantiate_skill(name, json.dumps({"x_min": "zero", "bogus": 1})),
        "missing library": SkillTools(tmp_path / "nowhere").find_skills("plot"),
    }
    for case, answer in answers.items():
        assert answer.startswith("error: ") and "\n" not in answer, case
    assert "no skill named 'no_such_skill'" in answers["unknown skill"]
    assert "no skill named 'no_such_skill'" in answers["unknown skill to instantiate"]
    assert f"parameters_json for skill '{name}' is not valid JSON" in answers["malformed JSON"]
    assert "must be an object, got array" in answers["not an object"]
    assert "parameter 'x_min': expected integer, got string 'zero'" in answers["mistyped"]
    assert "unknown parameter 'bogus'" in answers["mistyped"]
    assert "(parameters: expression, output_file, x_max, x_min)" in answers["mistyped"]
    assert str(tmp_path / "nowhere") in answers["missing library"]
    hits = json.loads(tools.find_skills("plot an expression"))
    assert hits[0]["name"] == name and hits[0]["parameters"]["x_min"] == {"type": "integer", "required": True}
    assert tools.find_skills("zzzz qqqq") == "no skill matches 'zzzz qqqq'"
    assert tools.load_skill(name).startswith(f"# {PLOT_TITLE}\n")


def _chat(names: list[str], messages: list[dict[str, Any]]) -> tuple[GroupChat, dict[str, ConversableAgent]]:
    agents = {n: ConversableAgent(n, llm_config=False, human_input_mode="NEVER") for n in names}
    return GroupChat(agents=list(agents.values()), messages=messages, max_round=20), agents


def _branching_skill(*more: dict[str, Any]) -> dict[str, Any]:
    """A skill a -> optional b -> c (1-3 times) -> d (1-3 times) -> e, then ``more`` steps."""
    return {"name": "s", "version": "1.0.0", "content_hash": "h", "steps": [
        {"agent": "a", "action": "plan"},
        {"agent": "b", "action": "review", "optional": True},
        {"agent": "c", "action": "code", "repeat": {"min": 1, "max": 3}},
        {"agent": "d", "action": "run", "repeat": {"min": 1, "max": 3}},
        {"agent": "e", "action": "report"},
        *more]}


def test_selection_tolerates_optional_and_repeated_steps_and_falls_back_off_plan() -> None:
    skill = _branching_skill()
    chat, agents = _chat(["user", "a", "b", "c", "d", "e"], [{"name": "user", "content": "go"}])
    walk = skill_speaker_selection(skill, fallback="round_robin")
    assert walk(agents["user"], chat) is agents["a"]
    assert walk(agents["a"], chat) is agents["b"]  # the optional step is offered ...
    assert walk(agents["c"], chat) is agents["d"]  # ... and skipped when c speaks instead
    assert walk(agents["d"], chat) is agents["e"]
    assert walk(agents["c"], chat) is agents["d"]  # the chat went back into the repeated group: re-entered
    assert walk(agents["d"], chat) is agents["e"]
    assert walk(agents["e"], chat) is None  # plan done: the chat ends
    assert not walk.left_plan
    walk = skill_speaker_selection(skill, fallback="round_robin")
    assert walk(agents["user"], chat) is agents["a"]
    assert walk(agents["e"], chat) == "round_robin" and walk.left_plan  # skipped required steps: off plan
    assert walk(agents["a"], chat) == "round_robin"  # stays with AG2's own selection


def test_selection_sends_tool_calls_to_their_executor_and_maps_renamed_agents() -> None:
    skill = {"name": "s", "version": "1.0.0", "content_hash": "h",
             "steps": [{"agent": "engineer", "action": "code", "tool": "save"}, {"agent": "reviewer", "action": "ok"}]}
    chat, agents = _chat(["user", "coder", "tools", "reviewer"], [{"name": "user", "content": "go"}])
    agents["tools"].register_function({"save": lambda: "saved"})
    walk = skill_speaker_selection(skill, {"engineer": agents["coder"]})
    assert walk(agents["user"], chat) is agents["coder"]
    chat.messages.append({"name": "coder", "content": None, "tool_calls": [
        {"id": "1", "type": "function", "function": {"name": "save", "arguments": "{}"}}]})
    assert walk(agents["coder"], chat) is agents["tools"]
    chat.messages.append({"name": "tools", "role": "tool", "content": "saved",
                          "tool_responses": [{"tool_call_id": "1", "role": "tool", "content": "saved"}]})
    assert walk(agents["tools"], chat) is agents["reviewer"]
    other, _ = _chat(["user", "tools2"], [])
    assert skill_speaker_selection(skill)(agents["user"], other) is None  # no agent of the next step here


def test_transitions_allow_only_the_next_steps_and_let_plumbing_speak_anywhere() -> None:
    skill = _branching_skill({"agent": "absent", "action": "archive"})
    _, agents = _chat(["user", "a", "b", "c", "d", "e", "tools"], [])
    graph = skill_transitions(skill, agents.values())
    named = {k.name: [a.name for a in v] for k, v in graph.items()}
    assert named["a"] == ["b", "c", "user", "tools"]  # b is optional: c may follow a directly
    assert named["b"] == ["c", "user", "tools"]
    assert named["c"] == ["d", "user", "tools"]
    assert named["d"] == ["e", "c", "user", "tools"]  # end of the repeated group: back to its start
    assert named["e"] == ["user", "tools"]
    assert named["user"] == ["a", "b", "c", "d", "e", "tools"]
    chat = GroupChat(agents=list(agents.values()), messages=[], max_round=5,
                     allowed_or_disallowed_speaker_transitions=graph, speaker_transitions_type="allowed")
    assert chat.allowed_speaker_transitions_dict[agents["d"]] == graph[agents["d"]]


def test_a_chat_captured_without_an_explicit_run_records_skill_applied(tmp_path: Path) -> None:
    """``capture.instrument`` opens the run itself when a chat starts outside ``capture.run()``; the marker lands in
    that run's meta, and the chat ends where the plan does."""
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    capture.configure(database_url=url, spool_dir=tmp_path / "spool", flush_interval_s=0.05)
    skill = {"name": "relay", "version": "2.1.0", "content_hash": "c0ffee",
             "steps": [{"agent": "b", "action": "note"}, {"agent": "c", "action": "answer"}]}
    try:
        chat, agents = _chat(["starter", "b", "c"], [])
        for name in ("b", "c"):
            agents[name].register_reply([Agent, None], lambda *_, n=name, **__: (True, f"{n}: done"))
        chat.speaker_selection_method = skill_speaker_selection(skill)
        manager = GroupChatManager(chat, llm_config=False, name="chat_manager")
        capture.instrument(manager)
        with IOStream.set_default(scripted_llm.SilentStream()):
            agents["starter"].initiate_chat(manager, message="go", silent=True)
        assert capture.flush(10.0)
    finally:
        capture.shutdown()
    assert [m["name"] for m in chat.messages] == ["starter", "b", "c"]
    engine = create_engine(url)
    with engine.connect() as conn:
        (meta,) = conn.execute(text("SELECT meta FROM workflow_runs WHERE meta LIKE '%skill_applied%'")).scalars()
    engine.dispose()
    stored = json.loads(meta)
    assert stored["skill_applied"] == {"name": "relay", "version": "2.1.0", "content_hash": "c0ffee"}
    assert stored["source"] == "ag2"


def _replying_chat(names: list[str], max_round: int) -> tuple[GroupChat, dict[str, ConversableAgent]]:
    """A group chat of agents that answer every turn with a fixed reply (no model)."""
    chat, agents = _chat(names, [])
    chat.max_round = max_round
    for name in names[1:]:
        agents[name].register_reply([Agent, None], lambda *_, n=name, **__: (True, f"{n}: done"))
    return chat, agents


@pytest.mark.parametrize(("repeat", "rounds"), [({"min": 3, "max": 4}, 3), ({"min": 1, "max": 4}, 1),
                                                ({"max": 2}, 1), ({"min": 2, "max": 2}, 2)])
def test_a_real_group_chat_walks_a_repeated_block_its_minimum_times(repeat: dict[str, int], rounds: int) -> None:
    """A block mined to repeat 3-4 times is walked 3 times (a replay of the skill can then fit it); a single-step
    block repeats its one agent; the chat ends where the plan does, well before ``max_round``."""
    skill = {"name": "retry", "version": "1.0.0", "content_hash": "h", "steps": [
        {"agent": "planner", "action": "plan"},
        {"agent": "engineer", "action": "code", "repeat": repeat},
        {"agent": "executor", "action": "run", "repeat": repeat},
        {"agent": "checker", "action": "check", "repeat": {"min": 2, "max": 3, "until": "success"}},
        {"agent": "reporter", "action": "report"}]}
    chat, agents = _replying_chat(["starter", "planner", "engineer", "executor", "checker", "reporter"], 40)
    walk = skill_speaker_selection(skill)
    chat.speaker_selection_method = walk
    with IOStream.set_default(scripted_llm.SilentStream()):
        agents["starter"].initiate_chat(GroupChatManager(chat, llm_config=False, name="chat_manager"),
                                        message="go", silent=True)
    assert [m["name"] for m in chat.messages] == [
        "starter", "planner", *["engineer", "executor"] * rounds, "checker", "checker", "reporter"]
    assert [i for _, i in walk.history if i is not None] == [0, *[1, 2] * rounds, 3, 3, 4]
    assert walk.rounds == {1: rounds, 3: 2} and not walk.left_plan
