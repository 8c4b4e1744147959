"""A run's script: every agent turn, LLM usage, tool call and code execution, drawn once from the seed.

Both engines play the same script: the AG2 engine makes real agents say and do it (scripted model clients,
real tools and code execution), the fast engine turns it straight into store rows. Drawing everything here, from
one ``random.Random`` per run, is what makes a seed reproduce the same event streams in either engine.
"""

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from workloads.code import BUGS, MISSING_MODULES, CodeRun, install_run, python_run
from workloads.families import (
    ENGINEER,
    FAMILIES,
    IDEAS,
    MODE_WEIGHTS,
    MODES,
    PlanStep,
    TaskFamily,
    families_for,
    usable_modes,
)
from workloads.profiles import LlmUsage, draw_code_ms, draw_tool_ms, draw_usage, lognormal

TOOL_EXECUTOR = "_Group_Tool_Executor"
SUMMARY_FILE = "data/results_summary.md"
RATE_LIMIT_ERROR = ("Error code: 429 - {'error': {'message': 'Rate limit reached for gpt-4.1 in organization "
                    "org-sim on tokens per min (TPM): Limit 30000, Used 29870. Please try again in 2.3s.', "
                    "'type': 'tokens', 'code': 'rate_limit_exceeded'}}")
SIM_EPOCH = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
OUTCOMES = ("success", "retry", "installer", "rate_limit", "abandoned")


@dataclass(frozen=True)
class ToolCall:
    """A tool the LLM asks for, run by the tool executor; ``files`` are what the tool writes."""

    name: str
    arguments: dict
    result: str
    duration_ms: int
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Turn:
    """One agent speaking once: an LLM reply (maybe asking for a tool), a tool execution or a code execution."""

    agent: str
    content: str
    usage: LlmUsage | None = None
    tool_call: ToolCall | None = None  # requested by this (LLM) turn
    executes: ToolCall | None = None  # run by this tool-executor turn
    code: CodeRun | None = None  # run by this executor turn
    rate_limited: bool = False  # the LLM call raises a 429


@dataclass
class NodeScript:
    """One DAG node: its chat's turns and how it ends (``completed``, ``failed`` or left ``running``)."""

    name: str
    node_type: str
    agent: str
    description: str
    turns: list[Turn] = field(default_factory=list)
    status: str = "completed"
    approval: str | None = None  # HITL: "approved" or "pending" (abandoned)
    approval_wait_ms: int = 0
    node_id: str = ""


@dataclass
class RunScript:
    """Everything one simulated run does, plus its ground truth."""

    index: int
    seed: int
    run_id: str
    session_id: str
    mode: str
    family: TaskFamily
    params: dict
    task: str
    outcome: str
    n_attempts: int
    started_at: datetime
    nodes: list[NodeScript]
    status: str
    config: dict

    @property
    def work_name(self) -> str:
        """The run's working-directory name."""
        return f"run_{self.index:06d}_{self.run_id[:8]}"


class _Draw:
    """The run's random source plus deterministic ids."""

    def __init__(self, seed: int, index: int) -> None:
        self.rng = random.Random(f"skillmine-sim:{seed}:{index}")

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


def session_id_for(seed: int) -> str:
    """The session every run of one simulation belongs to."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"skillmine-sim-session:{seed}"))


def run_start(seed: int, index: int) -> datetime:
    """Runs start every ~7 simulated minutes (jittered), so a simulation spans realistic wall time."""
    jitter = random.Random(f"skillmine-sim-start:{seed}:{index}").uniform(0, 240)
    return SIM_EPOCH + timedelta(seconds=index * 420 + jitter)


def _llm(d: _Draw, agent: str, content: str, tool: ToolCall | None = None) -> Turn:
    return Turn(agent, content, usage=draw_usage(d.rng, agent), tool_call=tool)


def _tool(d: _Draw, name: str, arguments: dict, result: str, files: dict[str, bytes] | None = None) -> ToolCall:
    return ToolCall(name, arguments, result, draw_tool_ms(d.rng), files or {})


def _with_tool(d: _Draw, agent: str, content: str, tool: ToolCall) -> list[Turn]:
    """An LLM turn asking for a tool, then the tool executor running it."""
    return [_llm(d, agent, content, tool), Turn(TOOL_EXECUTOR, tool.result, executes=tool)]


def _plan_json(steps: list[PlanStep]) -> bytes:
    import json

    plan = {"sub_tasks": [{"sub_task": s.text, "sub_task_agent": s.agent, "bullet_points": [s.text]}
                          for s in steps]}
    return json.dumps(plan, indent=2).encode()


def _planning_turns(d: _Draw, task: str, steps: list[PlanStep], reviews: int) -> list[Turn]:
    plan = [{"sub_task": s.text, "sub_task_agent": s.agent} for s in steps]
    turns = _with_tool(d, "plan_setter", "Setting plan constraints.",
                       _tool(d, "record_plan_constraints", {"needed_agents": sorted({s.agent for s in steps})},
                             "Plan constraints recorded."))
    for review in range(reviews + 1):
        turns += [_llm(d, "planner", f"Plan for: {task}"), _llm(d, "planner_response_formatter", f"Plan: {plan}")]
        turns += _with_tool(d, "plan_recorder", "Recording the plan.",
                            _tool(d, "record_plan", {"plan": plan}, "Plan recorded.",
                                  {"planning/final_plan.json": _plan_json(steps)}))
        if review < reviews:
            turns += [_llm(d, "plan_reviewer", "Review: add checks of the outputs."),
                      _llm(d, "reviewer_response_formatter", "Recommendations: check the outputs.")]
            turns += _with_tool(d, "review_recorder", "Recording the review.",
                                _tool(d, "record_review", {"recommendations": ["check the outputs"]},
                                      "Review recorded."))
    return turns + _with_tool(d, "terminator", "Planning done.",
                              _tool(d, "terminate_session", {}, "Session terminated."))


def _exec_reply(run: CodeRun) -> str:
    """What an AG2 executor answers after running a block."""
    outcome = "execution failed" if run.exit_code else "execution succeeded"
    return f"exitcode: {run.exit_code} ({outcome})\nCode output: {run.output}"


def _transfer(d: _Draw, status: str, next_agent: str, fix: str = "") -> list[Turn]:
    return _with_tool(d, "executor_response_formatter", f"Execution status: {status}. Transfer to {next_agent}.",
                      _tool(d, "post_execution_transfer",
                            {"next_agent_suggestion": next_agent, "execution_status": status,
                             "fix_suggestion": fix},
                            f"Execution status: {status}. Transfer to {next_agent}."))


def _engineer_turns(d: _Draw, producer: str, params: dict, filename: str, outcome: str,
                    n_attempts: int) -> list[Turn]:
    """The engineer cycle, with retries after a Traceback or the installer detour."""
    turns: list[Turn] = []
    bugs = list(BUGS)
    for attempt in range(1, n_attempts + 1):
        bug = d.rng.choice(bugs) if outcome == "retry" and attempt < n_attempts else None
        module = d.rng.choice(MISSING_MODULES) if outcome == "installer" else None
        run = python_run(producer, params, filename, draw_code_ms(d.rng), bug=bug, missing_module=module)
        lead = "Writing the code." if attempt == 1 else "Fixing the error from the previous attempt."
        turns += [_llm(d, "engineer", f"{lead}\n```python\n{run.code}\n```"),
                  _llm(d, "engineer_response_formatter", f"```python\n{run.code}\n```"),
                  Turn("executor", _exec_reply(run), code=run)]
        if module:
            install = install_run(module, draw_code_ms(d.rng))
            turns += _transfer(d, "failure", "installer", f"install {module}")
            turns += [_llm(d, "installer", f"```bash\n{install.code}\n```"),
                      Turn("executor_bash", _exec_reply(install), code=install)]
            turns += _transfer(d, "success", "engineer_response_formatter", "re-run the code")
            run = python_run(producer, params, filename, draw_code_ms(d.rng))
            turns += [_llm(d, "engineer_response_formatter", f"```python\n{run.code}\n```"),
                      Turn("executor", _exec_reply(run), code=run)]
        if run.exit_code:
            turns += _transfer(d, "failure", "engineer", run.output.rstrip().rsplit("\n", 1)[-1])
        else:
            turns += _transfer(d, "success", "control")
    return turns


def _researcher_turns(d: _Draw, producer: str, params: dict, filename: str) -> list[Turn]:
    run = python_run(producer, params, filename, draw_code_ms(d.rng))
    return [_llm(d, "researcher", "Summary of the literature and results."),
            _llm(d, "researcher_response_formatter", f"```python\n{run.code}\n```"),
            Turn("researcher_executor", _exec_reply(run), code=run)]


def _control(d: _Draw, agent: str, step: int, status: str) -> list[Turn]:
    tool = "record_status" if agent == "control" else "record_status_starter"
    return _with_tool(d, agent, f"Step {step}: {status}.",
                      _tool(d, tool, {"current_status": status, "current_plan_step_number": step},
                            f"Status recorded: step {step} {status}."))


def _step_node(d: _Draw, number: int, step: PlanStep, run_params: dict, task: str, outcome: str,
               n_attempts: int, faulty: bool, opener: bool) -> NodeScript:
    node = NodeScript(f"step_{number}", "agent", step.agent, step.text)
    if opener:
        node.turns += _control(d, "control" if number == 1 else "control_starter", number, "in progress")
    filename = f"codebase/step_{number}_{step.producer}.py" if opener else f"codebase/{step.producer}.py"
    if step.producer == "results_summary":
        node.turns += _researcher_turns(d, "results_summary", {"task": task, "summary_file": SUMMARY_FILE},
                                        filename)
    elif step.agent == ENGINEER:
        node.turns += _engineer_turns(d, step.producer, run_params, filename,
                                      outcome if faulty else "success", n_attempts if faulty else 1)
    else:
        node.turns += _researcher_turns(d, step.producer, run_params, filename)
    node.turns += _control(d, "control", number, "completed")
    return node


def _idea_nodes(d: _Draw, params: dict) -> list[NodeScript]:
    from workloads.artefacts import produce_generate_ideas

    n_steps = d.rng.choice([4, 5, 6])
    nodes = []
    for number in range(1, n_steps + 1):
        maker = number % 2 == 1
        agent = "idea_maker" if maker else "idea_hater"
        text = ("Generate and improve ideas" if maker else "Critique the ideas")
        node = NodeScript(f"step_{number}", "agent", agent, text)
        node.turns += _control(d, "control_starter", number, "in progress")
        node.turns += [_llm(d, agent, f"{text} about {params['topic']}."),
                       _llm(d, "idea_maker_nest" if maker else "idea_hater_response_formatter",
                            f"Formatted: {text.lower()}.")]
        if number == n_steps:
            node.turns += _with_tool(d, "idea_saver", "Saving the selected ideas.",
                                     _tool(d, "record_ideas", {"n_ideas": params["n_ideas"]}, "Ideas recorded.",
                                           produce_generate_ideas(params)))
        node.turns += _control(d, "control", number, "completed")
        nodes.append(node)
    return nodes


def _draw_outcome(d: _Draw, mode: str, family: TaskFamily) -> tuple[str, int]:
    if mode == "human_in_the_loop" and d.rng.random() < 0.35:
        return "abandoned", 1
    roll = d.rng.random()
    if family.kind == ENGINEER:
        if roll < 0.18:
            return "retry", d.rng.choice([2, 2, 3, 3, 4])
        if roll < 0.26:
            return "installer", 1
        if roll < 0.32:
            return "rate_limit", 1
        return "success", 1
    return ("rate_limit", 1) if roll < 0.08 else ("success", 1)


def _rate_limit(d: _Draw, nodes: list[NodeScript]) -> None:
    """A 429 on one LLM call of a working node: that node and every later one fail, nothing after runs."""
    candidates = [n for n in nodes if n.node_type == "agent"]
    victim = d.rng.choice(candidates)
    llm_turns = [i for i, t in enumerate(victim.turns) if t.usage is not None]
    cut = d.rng.choice(llm_turns)
    failing = victim.turns[cut]
    victim.turns = victim.turns[:cut] + [Turn(failing.agent, "", usage=failing.usage, rate_limited=True)]
    victim.status = "failed"
    for later in nodes[nodes.index(victim) + 1:]:
        later.turns, later.status = [], "failed"


def build_run_script(seed: int, index: int, *, modes: tuple[str, ...] = MODES,
                     families: tuple[str, ...] = tuple(FAMILIES)) -> RunScript:
    """The script of run ``index`` of the simulation seeded ``seed``, restricted to ``modes`` and ``families``."""
    d = _Draw(seed, index)
    usable = usable_modes(modes, families)
    mode = d.rng.choices(usable, weights=[MODE_WEIGHTS[m] for m in usable])[0]
    family = d.rng.choice(families_for(mode, families))
    params = family.make_params(d.rng)
    task = family.task(params)
    outcome, n_attempts = _draw_outcome(d, mode, family)
    run_id = d.uuid()
    nodes: list[NodeScript] = []
    if mode == "one_shot":
        step = family.plan[0]
        execute = _step_node(d, 1, step, params, task, outcome, n_attempts, True, opener=False)
        execute.name, execute.node_type = "execute", "agent"
        nodes.append(execute)
    else:
        steps = list(family.plan) if family.kind != IDEAS else []
        planning = NodeScript("planning", "planning", "planner", "HITL Planning" if mode == "human_in_the_loop"
                              else "Idea Planning Phase" if mode == "idea_generation" else "Planning")
        plan_steps = steps or [PlanStep("idea_maker", "Generate and critique ideas", "generate_ideas")]
        planning.turns = _planning_turns(d, task, plan_steps, reviews=1)
        nodes.append(planning)
        if mode == "human_in_the_loop":
            approval = NodeScript("approval", "approval", "admin", "Plan approval")
            approval.approval = "pending" if outcome == "abandoned" else "approved"
            approval.approval_wait_ms = round(lognormal(d.rng, 90_000, 0.8))
            approval.status = "running" if outcome == "abandoned" else "completed"
            nodes.append(approval)
        if outcome != "abandoned":
            if family.kind == IDEAS:
                nodes += _idea_nodes(d, params)
            else:
                nodes += [_step_node(d, i, s, params, task, outcome, n_attempts, i == 1, opener=True)
                          for i, s in enumerate(steps, start=1)]
    if outcome != "abandoned":
        terminator = NodeScript("terminator", "terminator", "terminator", "Terminate the session")
        terminator.turns = _with_tool(d, "terminator", "Task complete.",
                                      _tool(d, "terminate_session", {}, "Session terminated."))
        nodes.append(terminator)
    if outcome == "rate_limit":
        _rate_limit(d, nodes)
    for node in nodes:
        node.node_id = d.uuid()
    status = {"abandoned": "executing", "rate_limit": "failed"}.get(outcome, "completed")
    config = {"model": "gpt-4.1-2025-04-14", "maxRounds": 25, "maxAttempts": 4, "nPlanReviews": 1,
              "maxPlanSteps": 4, "approvalMode": "after_planning" if mode == "human_in_the_loop" else None,
              "simulated": True}
    return RunScript(index, seed, run_id, session_id_for(seed), mode, family, params, task, outcome, n_attempts,
                     run_start(seed, index), nodes, status, config)
