"""Offline AG2 v1 scenarios run under capture, in the AG2 v1 environment (``SKILLMINE_AG2V1_PYTHON``).

``python v1_scenarios.py <scenario> <database url> <work dir> [runs]`` runs one scenario with capture writing to the
(already migrated) store and prints, as JSON, AG2 v1's own record of what happened: every event each agent's stream
carried (seen by a plain v1 observer, independent of capture's middleware) and the hub's write-ahead log. The tests
in this folder compare the store against that record. Models are scripted with ``ag2.testing.TestConfig``; code runs
in a real local sandbox; no network.
"""

import asyncio
import json
import sys
import threading
import time
from collections import defaultdict
from itertools import pairwise
from pathlib import Path
from typing import Any

from ag2 import Agent, Context, observer
from ag2.events import (
    HumanInputRequest,
    HumanMessage,
    ModelMessage,
    ModelResponse,
    ToolCallEvent,
    ToolCallsEvent,
    ToolErrorEvent,
    ToolResultEvent,
    Usage,
    UsageEvent,
)
from ag2.knowledge import MemoryKnowledgeStore
from ag2.network import WORKFLOW_TYPE, Hub
from ag2.network.transitions import AgentTarget, FromSpeaker, Transition, TransitionGraph
from ag2.testing import TestClient, TestConfig
from ag2.tools import LocalEnvironment, SandboxCodeTool

import capture
from capture.adapters.ag2_v1 import is_instrumented, set_prices
from capture.adapters.ag2_v1.code import running_environment

CODE = "from pathlib import Path\nPath('result.txt').write_text('42')\nprint('wrote result')"
TASK = "Compute the answer and save it."
HUMAN_DELAY_S = 0.05


class ContinuingScript(TestConfig):
    """A scripted model that continues across asks (``TestConfig`` restarts its script on every ``ask``, and a
    network agent gets one ask per envelope)."""

    def create(self) -> TestClient:
        if getattr(self, "_client", None) is None:
            self._client = TestClient(*self.events, raise_tool_errors=self._raise_tool_errors)
        return self._client


def reply(text: str | None = None, *calls: ToolCallEvent, tokens: tuple[int, int] = (10, 5),
          model: str = "gpt-4o-mini") -> ModelResponse:
    """One scripted model response with usage (the only way v1's test model reports tokens)."""
    return ModelResponse(ModelMessage(text) if text is not None else None, tool_calls=ToolCallsEvent(list(calls)),
                         usage=Usage(prompt_tokens=tokens[0], completion_tokens=tokens[1]), model=model,
                         provider="scripted", finish_reason="tool_calls" if calls else "stop")


def call(name: str, call_id: str, **arguments: Any) -> ToolCallEvent:
    return ToolCallEvent(name, id=call_id, arguments=json.dumps(arguments))


class Record:
    """AG2 v1's own record: every event on each agent's streams, by agent, in order."""

    def __init__(self) -> None:
        self.events: dict[str, list[Any]] = defaultdict(list)
        self._lock = threading.Lock()

    def watch(self, agent: Agent) -> Agent:
        async def seen(event: Any) -> None:
            with self._lock:
                self.events[agent.name].append(event)

        agent.add_observer(observer(None, seen))
        return agent

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, events in self.events.items():
            usage = [e for e in events if isinstance(e, UsageEvent) and e.kind == "model_call"]
            out[name] = {
                "llm_calls": sum(isinstance(e, ModelResponse) for e in events),
                "prompt_tokens": sum(int(e.usage.prompt_tokens or 0) for e in usage),
                "completion_tokens": sum(int(e.usage.completion_tokens or 0) for e in usage),
                "models": [e.model for e in usage],
                "tool_calls": [{"id": e.id, "name": e.name} for e in events if type(e) is ToolCallEvent],
                "tool_results": [{"id": e.parent_id, "error": isinstance(e, ToolErrorEvent)}
                                 for e in events if isinstance(e, ToolResultEvent)],
                "human": [e.content for e in events if isinstance(e, HumanMessage)],
            }
        return out


def answer_human(request: HumanInputRequest) -> str:
    """The scripted human: thinks for a moment, then approves with a remark."""
    time.sleep(HUMAN_DELAY_S)
    return "approved: keep the units"


def research_agents(work: Path, record: Record, *, team: bool) -> list[Agent]:
    """planner → engineer → executor (runs the engineer's code in a local sandbox, writing result.txt) → planner.

    With ``team`` the planner first consults a ``critic`` sub-agent (``as_tool``), and the engineer writes notes with
    a tool and asks a human to approve them before handing over.
    """
    planner_tools: list[Any] = []
    if team:
        critic = record.watch(Agent("critic", config=ContinuingScript(
            reply("Critique: state the units.", tokens=(12, 4), model="acme-small"))))
        planner_tools.append(critic.as_tool(name="critic", description="Ask the critic to review a plan."))
    planner = Agent("planner", config=ContinuingScript(
        *((reply(None, call("critic", "call_critic_1", objective="Review: write 42 to result.txt.")),)
          if team else ()),
        reply("Plan: write 42 to result.txt.", tokens=(40, 9)),
        reply("Done. TERMINATE", tokens=(90, 3))), tools=planner_tools)

    def write_notes(text: str) -> str:
        """Write the engineer's notes next to the code."""
        Path(work, "notes.md").write_text(text)
        return "notes written"

    async def approve(question: str, ctx: Context) -> str:
        """Ask a human to approve the plan."""
        return await ctx.input(question)

    engineer_script = [reply(f"```python\n{CODE}\n```", tokens=(60, 30))]
    if team:
        engineer_script[:0] = [reply(None, call("write_notes", "call_notes_1", text="# Notes\nwrite 42")),
                               reply(None, call("approve", "call_approve_1", question="Run the code?"))]
    engineer = Agent("engineer", config=ContinuingScript(*engineer_script),
                     tools=[write_notes, approve] if team else [], hitl_hook=answer_human)
    executor = Agent("executor", config=ContinuingScript(
        reply(None, call("run_code", "call_code_1", code=CODE, language="python"), tokens=(70, 20)),
        reply("exitcode: 0 (execution succeeded)", tokens=(85, 6))),
        tools=[SandboxCodeTool(LocalEnvironment(work / "sandbox"))])
    return [record.watch(agent) for agent in (planner, engineer, executor)]


async def run_workflow(agents: list[Agent], record: Record, *, hub_capture: str = "on") -> dict[str, Any]:
    """Register the agents on an in-process hub and run one workflow channel from a ``user``: the task goes to the
    planner, then engineer, executor and the planner again; the hub's WAL gives the speaker order. ``hub_capture``:
    ``on`` (the hub instrumented before it registers the agents), ``off``, or ``undone`` (instrumented, then undone
    after the registrations)."""
    hub = await Hub.open(MemoryKnowledgeStore(), expectation_sweep_interval=0)
    if hub_capture != "off":
        capture.instrument(hub)
    user = await hub.register(Agent("user", config=TestConfig("unused")))
    clients = [await hub.register(agent) for agent in agents]
    instrumented = [is_instrumented(agent) for agent in agents]
    if hub_capture == "undone":
        capture.uninstrument(hub)
    ids = {c.agent.name: c.agent_id for c in [user, *clients]}
    order = ["user", "planner", "engineer", "executor", "planner"]
    graph = TransitionGraph(initial_speaker=ids["user"], max_turns=len(order), transitions=[
        Transition(FromSpeaker(ids[a]), AgentTarget(ids[b])) for a, b in pairwise(order)])
    channel = await user.open(type=WORKFLOW_TYPE, target=order[1:4], knobs={"graph": graph.to_dict()})
    await channel.send(TASK)
    for _ in range(400):
        if channel.is_terminal():
            break
        await asyncio.sleep(0.01)
    info = await channel.info()
    wal = await hub.read_wal(channel.channel_id)
    names = {v: k for k, v in ids.items()}
    await hub.close()
    speech = [e for e in wal if e.event_type in ("ag2.msg.text", "ag2.packet")]
    return {"speakers": [names[e.sender_id] for e in speech],
            "said": [e.event_data.get("text", e.event_data.get("body")) for e in speech],
            "close_reason": info.close_reason, "channel_id": channel.channel_id,
            "instrumented_at_registration": instrumented}


def team(work: Path, runs: int) -> dict[str, Any]:
    """The full team (tools, sub-agent, human input, sandboxed code) on a hub, captured without a ``capture.run``;
    only the hub is instrumented (before it registers the agents)."""
    record = Record()
    agents = research_agents(work, record, team=True)  # instrumented by the hub as it registers them
    workflow = asyncio.run(run_workflow(agents, record))
    return {"workflow": workflow, "agents": record.summary()}


def research(work: Path, runs: int) -> dict[str, Any]:
    """``runs`` plain research workflows, each in its own ``capture.run`` (mode one_shot), for mining."""
    out = []
    for index in range(runs):
        record = Record()
        agents = research_agents(work / f"run{index}", record, team=False)
        capture.instrument(agents)
        with capture.run("research", mode="one_shot", task=TASK) as handle:
            workflow = asyncio.run(run_workflow(agents, record))
        out.append({"run_id": handle.id, "workflow": workflow, "agents": record.summary()})
    return {"runs": out}


async def slow_square(x: int) -> int:
    """Square a number, slowly (concurrent with the other agents' tools)."""
    await asyncio.sleep(0.02)
    return x * x


def worker(name: str, record: Record) -> Agent:
    """An agent asking for two squares in one response, then answering."""
    return record.watch(Agent(name, config=TestConfig(
        reply(None, call("slow_square", f"{name}_a", x=2), call("slow_square", f"{name}_b", x=3)),
        reply(f"{name}: 4 and 9")), tools=[slow_square]))


def concurrent(work: Path, runs: int) -> dict[str, Any]:
    """Three agents asked at once with ``asyncio.gather`` inside one run, then two more on their own threads (each
    its own event loop and, outside any run, its own run)."""
    record = Record()
    gathered = [worker(f"gather{i}", record) for i in range(3)]
    threaded = [worker(f"thread{i}", record) for i in range(2)]
    capture.instrument(gathered + threaded)

    async def ask_all() -> None:
        await asyncio.gather(*(agent.ask("go") for agent in gathered))

    with capture.run("gathered", task="three at once") as handle:
        asyncio.run(ask_all())
    threads = [threading.Thread(target=asyncio.run, args=(agent.ask("go"),)) for agent in threaded]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"gather_run_id": handle.id, "agents": record.summary()}


def failures(work: Path, runs: int) -> dict[str, Any]:
    """A tool that raises (returned to the model), a failing code run, and a model call that raises."""
    record = Record()

    def divide(a: int, b: int) -> float:
        """Divide two numbers."""
        return a / b

    agent = record.watch(Agent("fragile", config=TestConfig(
        reply(None, call("divide", "call_div_1", a=1, b=0)),
        reply(None, call("run_code", "call_code_bad", code="raise SystemExit(3)", language="python")),
        RuntimeError("model unavailable"), raise_tool_errors=False),
        tools=[divide, SandboxCodeTool(LocalEnvironment(work / "sandbox"))]))
    capture.instrument(agent)
    try:
        asyncio.run(agent.ask("divide 1 by 0, then run code"))
        raised = None
    except RuntimeError as exc:
        raised = str(exc)
    return {"raised": raised, "agents": record.summary()}


def undo(work: Path, runs: int) -> dict[str, Any]:
    """Instrument a team, then undo it; instrument a hub, let it instrument the agents it registers, undo it; then run
    the workflow: nothing may be recorded and AG2's own objects must be as before (each agent's middleware, the code
    environment's ``run``)."""
    record = Record()
    agents = research_agents(work, record, team=False)
    environment = running_environment(agents[2].tools[0])

    def state() -> dict[str, Any]:
        return {"middleware": {a.name: [id(m.middleware) for m in a.middleware] for a in agents},
                "run_patched": "run" in vars(environment)}

    before = state()
    capture.instrument(agents)
    during = state()
    capture.uninstrument(agents)
    workflow = asyncio.run(run_workflow(agents, record, hub_capture="undone"))
    return {"workflow": workflow, "agents": record.summary(), "before": before, "during": during, "after": state()}


def hub_failure(work: Path, runs: int) -> dict[str, Any]:
    """A hub workflow whose planner's model fails: the hub reports the failed turn, nobody replies, the hub closes."""
    record = Record()
    planner = record.watch(Agent("planner", config=TestConfig(RuntimeError("model unavailable"))))

    async def go() -> dict[str, Any]:
        hub = await Hub.open(MemoryKnowledgeStore(), expectation_sweep_interval=0)
        capture.instrument(hub)
        user = await hub.register(Agent("user", config=TestConfig("unused")))
        await hub.register(planner)
        ids = {"user": user.agent_id, "planner": hub.find_agent_id("planner")}
        graph = TransitionGraph(initial_speaker=ids["user"], max_turns=3, transitions=[
            Transition(FromSpeaker(ids["user"]), AgentTarget(ids["planner"]))])
        channel = await user.open(type=WORKFLOW_TYPE, target=["planner"], knobs={"graph": graph.to_dict()})
        await channel.send(TASK)
        await asyncio.sleep(0.5)
        terminal = channel.is_terminal()
        await hub.close()
        return {"terminal_before_close": terminal}

    return {"workflow": asyncio.run(go()), "agents": record.summary()}


SCENARIOS = {"team": team, "research": research, "concurrent": concurrent, "failures": failures, "undo": undo,
             "hub_failure": hub_failure}


def main() -> None:
    scenario, url, work = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    set_prices({"acme-small": (1.0, 2.0)})
    capture.configure(database_url=url, spool_dir=work / "spool", flush_interval_s=0.05)
    result = SCENARIOS[scenario](work, runs)
    assert capture.flush(30.0), "capture did not flush"
    result["capture_stats"] = capture.stats()
    capture.shutdown()
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
