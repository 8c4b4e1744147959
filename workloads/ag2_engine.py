"""The AG2 engine: each run script played by real AG2 Classic agents, offline, under capture.

Per DAG node a GroupChat of the node's agents (``_User`` opens it with the node's task) follows the script's
speaker order through a custom selection function. LLM agents answer from a shared :class:`Script` of scripted
turns (usage, cost and latency per turn; a 429 is a turn that raises); ``_Group_Tool_Executor`` runs the tools
the LLMs call (real functions that record plans and ideas); executors run the code blocks for real with a
``LocalCommandLineCodeExecutor`` in the run's work directory. Everything is timed on a :class:`SimulatedClock`
that only the script advances, and recorded by ``capture.instrument`` plus ``capture.run``/``capture.node``.
"""

import logging
import os
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import capture
from capture.adapters.common import recorded_by_caller
from capture.core.clock import SimulatedClock, use_clock
from capture.store.capture_store import Batch, CaptureStore
from skillmine.console import RunProgress
from workloads import scripted_llm
from workloads.fast_engine import MANAGER, USER, tool_call_id
from workloads.ground_truth import GroundTruth, GroundTruthWriter
from workloads.script import RATE_LIMIT_ERROR, TOOL_EXECUTOR, NodeScript, RunScript, ToolCall, Turn
from workloads.summary import SimulationSummary, stored_runs

EXECUTORS = ("executor", "executor_bash", "researcher_executor")


def _executor_class():
    from autogen.coding import LocalCommandLineCodeExecutor

    class SimulatedDurationExecutor(LocalCommandLineCodeExecutor):
        """Runs code for real, then advances the simulated clock by the scripted duration of that run."""

        def __init__(self, durations: deque, clock: SimulatedClock, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._durations, self._clock = durations, clock

        def execute_code_blocks(self, code_blocks: list) -> Any:
            result = super().execute_code_blocks(code_blocks)
            self._clock.advance(self._durations.popleft())
            return result

    return SimulatedDurationExecutor


def _scripted_turn(turn: Turn, call_id: str) -> scripted_llm.Turn:
    u = turn.usage
    calls = ()
    if turn.tool_call is not None:
        calls = (scripted_llm.ToolCall(turn.tool_call.name, turn.tool_call.arguments, id=call_id),)
    return scripted_llm.Turn(content=turn.content or None, tool_calls=calls, prompt_tokens=u.prompt_tokens,
                             completion_tokens=u.completion_tokens, cost_usd=u.cost_usd, latency_ms=u.latency_ms,
                             error=RATE_LIMIT_ERROR if turn.rate_limited else None)


class _NodeChat:
    """The agents, scripts and tools of one node's group chat."""

    def __init__(self, node: NodeScript, work: Path, clock: SimulatedClock) -> None:
        from autogen import ConversableAgent, GroupChat, GroupChatManager

        self.node, self.work, self.clock = node, work, clock
        llm_turns = [t for t in node.turns if t.usage is not None]
        self.script = scripted_llm.Script([_scripted_turn(t, tool_call_id(node, n)) for n, t in
                                           enumerate(llm_turns, start=1)], clock=clock, name=node.name)
        self.tool_calls: dict[str, deque[ToolCall]] = defaultdict(deque)
        durations: deque[int] = deque()
        for turn in node.turns:
            if turn.executes is not None:
                self.tool_calls[turn.executes.name].append(turn.executes)
            if turn.code is not None:
                durations.append(turn.code.duration_ms)
        names = list(dict.fromkeys(t.agent for t in node.turns))
        agents = {USER: ConversableAgent(USER, llm_config=False, human_input_mode="NEVER")}
        executor_class = _executor_class()
        for name in names:
            if name in EXECUTORS:
                executor = executor_class(durations, clock, work_dir=work, timeout=60)
                agents[name] = ConversableAgent(name, llm_config=False, human_input_mode="NEVER",
                                                code_execution_config={"executor": executor, "last_n_messages": 1})
            elif name == TOOL_EXECUTOR:
                agents[name] = ConversableAgent(name, llm_config=False, human_input_mode="NEVER",
                                                function_map={tool: self._tool(tool) for tool in self.tool_calls})
            else:
                model = next(t.usage.model for t in node.turns if t.agent == name and t.usage is not None)
                agent = ConversableAgent(name, llm_config=scripted_llm.scripted_llm_config(model),
                                         human_input_mode="NEVER", system_message=f"You are the {name} agent.")
                agents[name] = scripted_llm.use_script(agent, self.script)
        order = iter([agents[t.agent] for t in node.turns])

        def scripted_order(last_speaker: Any, groupchat: Any) -> Any:
            return next(order, None)

        self.user = agents[USER]
        self.groupchat = GroupChat(agents=list(agents.values()), messages=[], max_round=len(node.turns) + 2,
                                   speaker_selection_method=scripted_order, send_introductions=False)
        self.manager = GroupChatManager(self.groupchat, llm_config=False, name=MANAGER,
                                        is_termination_msg=lambda message: False)

    def _tool(self, name: str) -> Callable[..., str]:
        def tool(**_: Any) -> str:
            call = self.tool_calls[name].popleft()
            self.clock.advance(call.duration_ms)
            for path in sorted(call.files):
                target = self.work / path
                target.parent.mkdir(parents=True, exist_ok=True)
                operation = "update" if target.exists() else "create"
                with recorded_by_caller():  # recorded right below, relative to the work directory
                    target.write_bytes(call.files[path])
                capture.record_file(target, root=self.work, agent_name=TOOL_EXECUTOR, operation=operation)
            return call.result

        tool.__name__ = name
        return tool

    def play(self) -> None:
        from autogen.io import IOStream

        capture.instrument(self.manager)
        try:
            with IOStream.set_default(scripted_llm.SilentStream()):
                self.user.initiate_chat(self.manager, message=self.node.description, clear_history=True)
        finally:
            capture.uninstrument(self.manager)


class Ag2Engine:
    """Plays run scripts with real AG2 agents into the store at ``url``; code runs under ``root``."""

    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root = url, Path(root)
        os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")  # no __pycache__ files in the runs' work dirs
        logging.getLogger("autogen.oai.client").setLevel(logging.WARNING)  # one INFO line per scripted agent
        capture.configure(database_url=url, spool_dir=self.root / "spool")

    def play(self, script: RunScript) -> None:
        """Run one script (blocking); its events are queued on the recorder."""
        work = self.root / script.work_name
        (work / "codebase").mkdir(parents=True, exist_ok=True)
        clock = SimulatedClock(script.started_at)
        with (use_clock(clock, process_wide=True),
              capture.run(mode=script.mode, task=script.task, run_id=script.run_id, session_id=script.session_id,
                          meta=dict(script.config)) as run):
            failure: str | None = None
            for node in script.nodes:
                failure = self._node(node, work, clock, failure)
            if failure:
                run.fail(failure)

    @staticmethod
    def _node(node: NodeScript, work: Path, clock: SimulatedClock, failure: str | None) -> str | None:
        with capture.node(node.name, agent=node.agent, node_type=node.node_type, node_id=node.node_id,
                          meta={"label": node.description, "type": node.node_type, "agent": node.agent}) as handle:
            if failure:
                handle.fail(f"not run: {failure}")
                return failure
            if node.approval:
                capture.record_event("approval_requested", "pending", agent_name="admin", status="pending",
                                     inputs={"approval_type": "plan_approval"})
                if node.approval == "approved":
                    clock.advance(node.approval_wait_ms)
                    capture.record_event("approval_requested", "approved", agent_name="admin",
                                         outputs={"resolution": "approved"})
            if node.turns:
                try:
                    _NodeChat(node, work, clock).play()
                except scripted_llm.ScriptedLLMError as exc:  # the script's 429 ends this node and the run
                    handle.fail(str(exc))
                    return f"rate limit in {node.name}"
        return None

    def run_all(self, scripts: Iterable[RunScript], writer: GroundTruthWriter, summary: SimulationSummary,
                progress: RunProgress) -> None:
        """Play every script and write its ground truth; then flush and stop the recorder, and settle what capture
        cannot express (runs abandoned at approval stay open)."""
        played: list[RunScript] = []
        store = CaptureStore.open(self.url)
        try:
            for script in scripts:
                if stored_runs(store, [script.run_id]):
                    summary.already_stored += 1
                else:
                    self.play(script)
                    played.append(script)
                truth = GroundTruth.from_script(script, "ag2")
                writer.write(truth)
                summary.count(truth)
                progress.update(summary.runs, int(capture.stats().get("enqueued", 0)))
            capture.shutdown(60.0)
            _leave_abandoned_waiting(store, [s for s in played if s.status == "executing"])
            _count(store, played, summary)
        finally:
            store.close()


def _leave_abandoned_waiting(store: CaptureStore, scripts: list[RunScript]) -> None:
    """A run abandoned at approval never ends: re-open it (``executing``) and its approval node (``running``)."""
    if not scripts:
        return
    batch = Batch()
    for script in scripts:
        batch.runs.append({"id": script.run_id, "session_id": script.session_id, "status": "executing",
                           "completed_at": None})
        for node in script.nodes:
            if node.status == "running":
                batch.nodes.append({"id": node.node_id, "run_id": script.run_id, "session_id": script.session_id,
                                    "status": "running"})
    store.write_batch(batch)


def _count(store: CaptureStore, scripts: list[RunScript], summary: SimulationSummary) -> None:
    from sqlalchemy import func, select

    from capture.store.capture_store import COSTS, EVENTS, FILES, MESSAGES

    ids = [s.run_id for s in scripts]
    with store.engine.connect() as conn:
        for attribute, table in (("events", EVENTS), ("files", FILES), ("messages", MESSAGES), ("costs", COSTS)):
            total = 0
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                total += conn.execute(select(func.count()).select_from(table)
                                      .where(table.c.run_id.in_(chunk))).scalar_one()
            setattr(summary, attribute, total)
