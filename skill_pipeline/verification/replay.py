"""Replay verification: a skill re-run on tasks of its family as a real AG2 group chat that the skill steers.

Tasks are the skill's member runs outside its slot-inference sample (``provenance.source_runs``), held out from
what the skill was inferred from; when a skill has too few of them the sample's runs fill up, and the statistics
say how many were held out. Each task's parameters are re-inferred from its text with the skill's template.

A replay is one group chat: the skill's step agents (code-running steps get a real
``LocalCommandLineCodeExecutor``, tool steps a tool executor), ``skill_library.ag2.skill_speaker_selection``
picking speakers, captured by ``capture`` into a replay store with ``meta.replay`` (a store of its own by
default, so mining never counts a replay as a member run). Offline, each LLM agent answers from a scripted model
(``workloads.scripted_llm``) that re-enacts the held-out run: code that writes the outputs the skill expects when
the recorded run's code finally worked, code that fails with the recorded error when it did not, and the recorded
model failure (e.g. a rate limit) at the agent that hit it. A replay passes when the chat ran the skill to its
end, the captured run succeeded, it fits the skill (conformance fitness), and every expected output type exists
as a file linked to the code execution that wrote it. A crash, a chat that ends off plan or at ``max_round``,
or a timeout fails the replay with the reason; it never raises.
"""

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

from capture.core.files import classify_file
from capture.store.capture_store import COSTS, EVENTS, FILES, RUNS
from skill_pipeline.lib.slot_values import values_from_task
from skill_pipeline.mining.conformance import SkillModel, conform, run_steps
from skill_pipeline.mining.stats import wilson_interval

TOOL_EXECUTOR = "_Group_Tool_Executor"
USER = "_User"
CODE_ACTION = "execute code"
_ERROR_PREFIX = re.compile(r"^\w+(Error|Exception): ")  # the recorded message names the exception class first
# Where a replay writes an expected output no parameter names (``classify_file`` gives each its type back).
DEFAULT_NAMES = {"plan": "replay_plan.json", "data": "data/replay_output.json", "plot": "data/replay_output.png",
                 "report": "replay_report.md", "chat": "chats/replay_chat.json",
                 "context": "context/replay_context.json", "log": "replay.log", "other": "replay_output.bin"}


@dataclass(frozen=True)
class ReplayTask:
    """One task to replay: the recorded run it comes from and what that run did."""

    source_run: str
    task: str
    params: dict[str, str]
    held_out: bool
    code_worked: bool  # the recorded run's last code execution succeeded (or it ran none)
    model_error: str | None = None  # a model failure the recorded run hit, re-enacted at ``error_agent``
    error_agent: str | None = None


@dataclass
class ReplayResult:
    """What one replay did and whether it passed (``reason`` says why not)."""

    skill: str
    version: str
    source_run: str
    run_id: str
    held_out: bool
    passed: bool
    reason: str | None
    fitness: float | None
    run_status: str | None
    outputs_found: list[str]
    duration_s: float
    cost_usd: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- tasks ----------------------------------------------------------------------------------------------------

def replay_tasks(con: Any, skill: Mapping[str, Any], count: int) -> list[ReplayTask]:
    """Up to ``count`` tasks for ``skill`` from the warehouse ``con``: held-out member runs first (finished ones,
    by id), then sample runs."""
    group = skill["provenance"].get("cluster_id")
    sample = set(skill["provenance"].get("source_runs") or [])
    rows = con.execute("SELECT r.id, r.task_description, r.status FROM run_clusters c JOIN runs r ON r.id = c.run_id "
                       "WHERE c.cluster_id = ? AND r.status IN ('completed', 'failed') ORDER BY r.id",
                       [group]).fetchall()
    ordered = [r for r in rows if r[0] not in sample] + [r for r in rows if r[0] in sample]
    tasks = []
    for run_id, text, _status in ordered[:count]:
        events = con.execute("SELECT event_type, event_subtype, agent_name, exit_code, error_message FROM events "
                             "WHERE run_id = ? ORDER BY execution_order NULLS LAST, seq", [run_id]).fetchall()
        codes = [e[3] for e in events if e[0] == "code_exec" and e[3] is not None]
        model_error = next((e for e in events if e[0] == "error" and e[1] == "llm_call" and e[4]), None)
        message = _ERROR_PREFIX.sub("", str(model_error[4]), count=1) if model_error else None
        tasks.append(ReplayTask(run_id, str(text or ""), values_from_task(skill["task_template"], str(text or "")),
                                run_id not in sample, not codes or str(codes[-1]) == "0",
                                message, str(model_error[2]) if model_error else None))
    return tasks


# --- the scripted re-enactment --------------------------------------------------------------------------------

def _output_paths(skill: Mapping[str, Any], params: Mapping[str, str], tool: str | None = None) -> dict[str, str]:
    """Expected output type -> the path the replay writes it to (a parameter naming such a file, else a default),
    for the outputs of the steps calling ``tool`` (None: of the steps without a tool; code is the script itself)."""
    wanted = {o["type"] for s in skill["steps"] if s.get("tool") == tool
              for o in s.get("expected_outputs") or []} - {"code"}
    named = {classify_file(v): v for v in params.values() if isinstance(v, str) and "." in v.rsplit("/", 1)[-1]}
    return {kind: named.get(kind) or DEFAULT_NAMES.get(kind, DEFAULT_NAMES["other"]) for kind in sorted(wanted)}


def _expected_types(skill: Mapping[str, Any], params: Mapping[str, str], wrote_code: bool) -> set[str]:
    tools = {s.get("tool") for s in skill["steps"]}
    return {kind for tool in tools for kind in _output_paths(skill, params, tool)} | ({"code"} if wrote_code else set())


def replay_code(skill: Mapping[str, Any], task: ReplayTask) -> str:
    """The python block the scripted engineer writes: the skill's outputs, or the recorded failure."""
    lines = ["# filename: codebase/replay_step.py", "from pathlib import Path", ""]
    if not task.code_worked:
        lines.append("raise RuntimeError('re-enacted failure of the recorded run')")
    for path in _output_paths(skill, task.params).values():
        lines += [f"target = Path({path!r})", "target.parent.mkdir(parents=True, exist_ok=True)",
                  f"target.write_bytes({b'replayed output of ' + path.encode()!r})", f"print('saved', {path!r})"]
    return "\n".join(lines)


def _is_code_step(step: Mapping[str, Any]) -> bool:
    return step.get("action") == CODE_ACTION and not step.get("tool")


class _Chat:
    """The agents, scripted models and walk of one replay."""

    def __init__(self, skill: Mapping[str, Any], task: ReplayTask, work: Path, *, max_round: int,
                 deadline: float, llm_config: dict[str, Any] | None) -> None:
        from autogen import ConversableAgent, GroupChat, GroupChatManager
        from autogen.coding import LocalCommandLineCodeExecutor

        from skill_library.ag2 import skill_speaker_selection
        from workloads import scripted_llm

        self.skill, self.task, self.deadline, self.timed_out = skill, task, deadline, False
        steps = list(skill["steps"])
        code_agents = {s["agent"] for s in steps if _is_code_step(s)}
        tools = sorted({s["tool"] for s in steps if s.get("tool")})
        agents: dict[str, Any] = {USER: ConversableAgent(USER, llm_config=False, human_input_mode="NEVER")}
        for name in dict.fromkeys(s["agent"] for s in steps):
            if name in code_agents:
                executor = LocalCommandLineCodeExecutor(work_dir=work, timeout=max(1, int(deadline - time.time())))
                agents[name] = ConversableAgent(name, llm_config=False, human_input_mode="NEVER",
                                                code_execution_config={"executor": executor, "last_n_messages": 1})
            elif llm_config is not None:
                agents[name] = ConversableAgent(name, llm_config=llm_config, human_input_mode="NEVER")
            else:
                agent = ConversableAgent(name, llm_config=scripted_llm.scripted_llm_config(), human_input_mode="NEVER",
                                         system_message=f"You are the {name} agent.")
                turns = [self._responder(name, scripted_llm) for _ in range(max_round)]
                agents[name] = scripted_llm.use_script(agent, scripted_llm.Script(turns, name=name))
        if tools:
            agents[TOOL_EXECUTOR] = ConversableAgent(TOOL_EXECUTOR, llm_config=False, human_input_mode="NEVER",
                                                     function_map={t: self._tool(t, work) for t in tools})
        self.user = agents[USER]
        self.walk = skill_speaker_selection(skill, fallback="round_robin")
        self.groupchat = GroupChat(agents=list(agents.values()), messages=[], max_round=max_round,
                                   speaker_selection_method=self._select, send_introductions=False)
        self.manager = GroupChatManager(self.groupchat, llm_config=False, name="chat_manager",
                                        is_termination_msg=lambda message: False)

    def _select(self, last_speaker: Any, groupchat: Any) -> Any:
        if time.time() > self.deadline:
            self.timed_out = True
            return None
        return self.walk(last_speaker, groupchat)

    def _tool(self, name: str, work: Path) -> Any:
        outputs = _output_paths(self.skill, self.task.params, name)

        def tool(**_: Any) -> str:
            for path in outputs.values():
                target = work / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"replayed output of " + path.encode())
            return f"{name}: done"

        tool.__name__ = name
        return tool

    def _responder(self, name: str, scripted_llm: Any) -> Any:
        def respond(_params: dict[str, Any]) -> Any:
            index = self.walk.expected
            step = self.walk.steps[index] if index is not None else {"agent": name, "action": "respond"}
            if self.task.model_error and name == self.task.error_agent:
                return scripted_llm.Turn(error=self.task.model_error)
            if step.get("tool"):
                return scripted_llm.Turn(content=f"{step['action']}.",
                                         tool_calls=(scripted_llm.ToolCall(step["tool"], {}),))
            following = self.walk.steps[index + 1] if index is not None and index + 1 < len(self.walk.steps) else {}
            if step.get("action") == "write code" or _is_code_step(following):
                return scripted_llm.Turn(content=f"```python\n{replay_code(self.skill, self.task)}\n```")
            return scripted_llm.Turn(content=f"{step['action']}: done.")

        return respond

    def finished(self) -> bool:
        """The walk performed the skill's last required step without leaving the plan."""
        required = [i for i, s in enumerate(self.walk.steps) if not s.get("optional")]
        return not self.walk.left_plan and (not required or self.walk.position >= required[-1])


# --- one replay -----------------------------------------------------------------------------------------------

def _captured(url: str, run_id: str) -> tuple[str | None, list[dict[str, Any]], list[dict[str, Any]], float]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            status = conn.execute(select(RUNS.c.status).where(RUNS.c.id == run_id)).scalar()
            events = [dict(r) for r in conn.execute(select(EVENTS).where(EVENTS.c.run_id == run_id)
                                                    .order_by(EVENTS.c.seq)).mappings()]
            files = [dict(r) for r in conn.execute(select(FILES).where(FILES.c.run_id == run_id)).mappings()]
            cost = conn.execute(select(COSTS.c.cost_usd).where(COSTS.c.run_id == run_id)).scalars().all()
    finally:
        engine.dispose()
    return status, events, files, float(sum(float(c or 0) for c in cost))


def _judge(skill: Mapping[str, Any], task: ReplayTask, status: str | None, events: list[dict[str, Any]],
           files: list[dict[str, Any]], min_fitness: float) -> tuple[str | None, float, list[str]]:
    """(reason it failed or None, fitness, output types found linked to the code execution or tool call that
    wrote them)."""
    fitness = conform(SkillModel.from_skill(skill), run_steps(events)).fitness
    code_events = {e["id"] for e in events if e["event_type"] == "code_exec"}
    producers = code_events | {e["id"] for e in events if e["event_type"] == "tool_call"}
    written = producers | {e["id"] for e in events if e["event_type"] == "file_gen"
                           and e.get("parent_event_id") in producers}
    exits = [e for e in events if e["event_type"] == "code_exec" and e["event_subtype"] in ("complete", "error")]
    linked = sorted({str(f["file_type"]) for f in files if f.get("event_id") in written})
    expected = sorted(_expected_types(skill, task.params, bool(code_events)))
    if status != "completed":
        return f"the replayed run ended {status}", fitness, linked
    if exits and exits[-1]["event_subtype"] == "error":
        return "the last code execution failed", fitness, linked
    if fitness < min_fitness:
        return f"fitness {fitness:.3f} to the skill is below {min_fitness}", fitness, linked
    missing = [kind for kind in expected if kind not in linked]
    if missing:
        return f"no {', '.join(missing)} output linked to the code execution or tool call that wrote it", fitness, linked
    return None, fitness, linked


def replay(skill: Mapping[str, Any], task: ReplayTask, *, store_url: str, work_root: Path, max_round: int = 60,
           timeout_s: float = 120.0, min_fitness: float = 0.8,
           llm_config: dict[str, Any] | None = None) -> ReplayResult:
    """Replay ``skill`` on ``task`` into the store at ``store_url`` (``capture`` must be configured on it) and
    judge the captured run. Never raises for a failing chat: the result says why it failed."""
    import logging

    from autogen.io import IOStream

    import capture
    from workloads.scripted_llm import SilentStream

    logging.getLogger("autogen.oai.client").setLevel(logging.WARNING)  # one INFO line per scripted agent
    run_id = str(uuid.uuid4())
    work = work_root / run_id
    (work / "codebase").mkdir(parents=True, exist_ok=True)
    started = time.time()
    reason: str | None = None
    meta = {"replay": {"skill": skill["name"], "version": skill["version"], "source_run": task.source_run,
                       "held_out": task.held_out}}
    with capture.run(mode=skill.get("category"), task=task.task, run_id=run_id, meta=meta) as run:
        try:
            chat = _Chat(skill, task, work, max_round=max_round, deadline=started + timeout_s, llm_config=llm_config)
            capture.instrument(chat.manager)
            try:
                with IOStream.set_default(SilentStream()):
                    chat.user.initiate_chat(chat.manager, message=task.task, clear_history=True)
            finally:
                capture.uninstrument(chat.manager)
            if chat.timed_out:
                reason = f"timed out after {timeout_s:g} s"
            elif not chat.finished():
                reason = ("left the skill's steps" if chat.walk.left_plan
                          else f"did not reach the skill's last step within max_round={max_round}")
        except Exception as exc:  # noqa: BLE001 - a crashing agent fails this replay, never the caller
            reason = f"an agent crashed: {type(exc).__name__}: {exc}"
        if reason:
            run.fail(reason)
    capture.flush(30.0)
    status, events, files, cost = _captured(store_url, run_id)
    judged, fitness, linked = _judge(skill, task, status, events, files, min_fitness)
    return ReplayResult(skill["name"], skill["version"], task.source_run, run_id, task.held_out,
                        reason is None and judged is None, reason or judged, fitness, status, linked,
                        time.time() - started, cost)


# --- statistics and promotion ---------------------------------------------------------------------------------

def replay_statistics(results: Sequence[ReplayResult]) -> dict[str, Any]:
    """Tasks tried and passed, held-out share, Wilson interval of the pass rate, fitness p50, cost and duration."""
    passed = sum(r.passed for r in results)
    low, high = wilson_interval(passed, len(results))
    fitness = sorted(r.fitness for r in results if r.fitness is not None)
    return {"tried": len(results), "passed": passed, "held_out": sum(r.held_out for r in results),
            "pass_wilson": [round(low, 4), round(high, 4)],
            "fitness_p50": round(fitness[len(fitness) // 2], 4) if fitness else None,
            "cost_usd": round(sum(r.cost_usd for r in results), 6),
            "duration_s": round(sum(r.duration_s for r in results), 3),
            "failures": sorted({r.reason for r in results if r.reason})}


def promotion_status(statistics: Mapping[str, Any], threshold: float) -> str:
    """``active`` when the Wilson lower bound of the replay pass rate reaches ``threshold``, else ``candidate``."""
    return "active" if statistics["tried"] and statistics["pass_wilson"][0] >= threshold else "candidate"


def dumps(results: Sequence[ReplayResult]) -> str:
    """Replay results as JSON lines (one per replay)."""
    return "\n".join(json.dumps(r.as_dict(), sort_keys=True) for r in results)


# --- a skill version verified end to end ----------------------------------------------------------------------

@dataclass(frozen=True)
class ReplaySettings:
    """How replays run and when they promote (see ``skill_pipeline.defs.conformance.settings``)."""

    store_url: str
    work_root: Path
    tasks: int = 10
    threshold: float = 0.4  # Wilson lower bound of the replay pass rate that promotes to active
    max_round: int = 60
    timeout_s: float = 120.0
    min_fitness: float = 0.8


def replay_store(settings: ReplaySettings) -> None:
    """Migrate the replay store and point ``capture`` at it (call once before :func:`verify_skill`). The mined
    capture store is refused: a replay counted as a member run would inflate its skill's support."""
    import capture
    from capture.core import config
    from capture.store.migrate import upgrade

    if settings.store_url == config.database_url():
        raise ValueError(f"replays cannot be captured into the mined store {settings.store_url}: set "
                         "SKILLMINE_REPLAY_DATABASE_URL to another store")

    upgrade(settings.store_url)
    capture.configure(database_url=settings.store_url, spool_dir=settings.work_root / "spool",
                      flush_interval_s=0.05)


def verify_skill(con: Any, library: Path, name: str, settings: ReplaySettings, version: str = "latest"
                 ) -> tuple[list[ReplayResult], dict[str, Any], str]:
    """Replay one skill version on its tasks, record the statistics and the resulting status in the library's
    replay records, and return (results, statistics, status)."""
    from skill_library import open_library
    from skill_library.promotion import record_replays

    skill = open_library(library).get(name, version)
    results = [replay(skill, task, store_url=settings.store_url, work_root=settings.work_root,
                      max_round=settings.max_round, timeout_s=settings.timeout_s, min_fitness=settings.min_fitness)
               for task in replay_tasks(con, skill, settings.tasks)]
    statistics = replay_statistics(results)
    status = promotion_status(statistics, settings.threshold)
    if not results:
        statistics["failures"] = ["no finished member run to take a task from"]
    record_replays(library, skill["name"], skill["version"], statistics, status)
    return results, statistics, status


def unreplayed(library: Path) -> list[tuple[str, str]]:
    """(name, version) of each skill's current version that has no replay record yet ([] without a library)."""
    from skill_library import open_library
    from skill_library.errors import LibraryNotFoundError
    from skill_library.promotion import replay_records

    try:
        rows = open_library(library).skills(include_deprecated=False)
    except LibraryNotFoundError:
        return []
    return [(r["name"], r["version"]) for r in rows if r["version"] not in replay_records(library, r["name"])]


def shutdown_capture() -> None:
    """Flush and stop the recorder replays were captured with."""
    import capture

    capture.shutdown(30.0)


def verify_library(library: Path, warehouse_path: Path, settings: ReplaySettings
                   ) -> list[tuple[str, str, dict[str, Any], str]]:
    """Replay every skill whose current version has no replay record: ``(name, version, statistics, status)``."""
    from skill_pipeline.lib import warehouse

    pending = unreplayed(library)
    if not pending:
        return []
    replay_store(settings)
    try:
        with warehouse.connect(warehouse_path) as con:
            return [(name, version, *verify_skill(con, library, name, settings, version)[1:])
                    for name, version in pending]
    finally:
        shutdown_capture()


def outcome_line(outcomes: Sequence[tuple[str, str, dict[str, Any], str]]) -> str:
    """``'3 skill versions replayed: 2 promoted, 1 left candidate'``."""
    promoted = sum(status == "active" for *_, status in outcomes)
    return f"{len(outcomes)} skill versions replayed: {promoted} promoted, {len(outcomes) - promoted} left candidate"
