"""Offline AG2 Classic scenarios driven by scripted model clients (real agents, real executors, no network)."""

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autogen import ConversableAgent, GroupChat, GroupChatManager, register_function
from autogen.agentchat import initiate_group_chat
from autogen.agentchat.group import (
    AgentTarget,
    ContextExpression,
    ContextVariables,
    ExpressionContextCondition,
    OnCondition,
    OnContextCondition,
    ReplyResult,
    StringLLMCondition,
    TerminateTarget,
)
from autogen.agentchat.group.patterns import DefaultPattern
from autogen.coding import LocalCommandLineCodeExecutor

from workloads.scripted_llm import (
    Script,
    ToolCall,
    Turn,
    scripted_llm_config,
    scripted_selection,
    transfer_to,
    use_script,
)

logging.getLogger("autogen.oai.client").setLevel(logging.WARNING)

CODE = "```python\nfrom pathlib import Path\nPath('result.txt').write_text('42')\nprint('wrote result')\n```"


def terminates(message: dict[str, Any]) -> bool:
    """Every scenario ends on a message containing TERMINATE."""
    return "TERMINATE" in str(message.get("content") or "")


def llm_agent(name: str, script: Script, **kwargs: Any) -> ConversableAgent:
    """A ConversableAgent whose model is ``script``."""
    agent = ConversableAgent(name, llm_config=scripted_llm_config(f"model-{name}"), human_input_mode="NEVER",
                             **kwargs)
    return use_script(agent, script)


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


Setup = Callable[[Any], Any] | None


def two_agent_tool_chat(setup: Setup = None) -> tuple[Any, ConversableAgent, ConversableAgent]:
    """An assistant proposes ``add(2, 3)``; a user proxy executes it; the assistant answers and terminates."""
    script = Script([
        Turn(tool_calls=(ToolCall("add", {"a": 2, "b": 3}, id="call_add_1"),),
             prompt_tokens=50, completion_tokens=7, cost_usd=0.01, latency_ms=300),
        Turn("The sum is 5. TERMINATE", prompt_tokens=80, completion_tokens=6, cost_usd=0.02, latency_ms=200),
    ], name="assistant")
    assistant = llm_agent("assistant", script)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER", is_termination_msg=terminates)
    register_function(add, caller=assistant, executor=user, description="Add two integers.")
    if setup is not None:
        setup([user, assistant])
    result = user.initiate_chat(assistant, message="add 2 and 3", max_turns=4, silent=True)
    return result, assistant, user


def research_group(work_dir: Path, method: str) -> tuple[GroupChatManager, GroupChat, list[ConversableAgent],
                                                         Script | None]:
    """planner → engineer (writes code) → executor (runs it, writing result.txt) → planner (TERMINATE); with
    ``auto`` selection also the selector's script."""
    planner = llm_agent("planner", Script([
        Turn("Plan: write 42 to result.txt.", prompt_tokens=40, completion_tokens=9, cost_usd=0.004),
        Turn("Done. TERMINATE", prompt_tokens=90, completion_tokens=3, cost_usd=0.006),
    ], name="planner"))
    engineer = llm_agent("engineer", Script([
        Turn(CODE, prompt_tokens=60, completion_tokens=30, cost_usd=0.012),
    ], name="engineer"))
    executor = ConversableAgent("executor", llm_config=False, human_input_mode="NEVER",
                                code_execution_config={"executor": LocalCommandLineCodeExecutor(
                                    work_dir=work_dir, timeout=30)})
    agents = [planner, engineer, executor]
    order = iter(["planner", "engineer", "executor", "planner"])
    selection: Any = method
    if method == "custom":
        selection = lambda last, chat: chat.agent_by_name(next(order))
    chat = GroupChat(agents=agents, messages=[], max_round=6, speaker_selection_method=selection,
                     allow_repeat_speaker=False if method == "auto" else None)
    selector = scripted_selection(chat, ["planner", "engineer", "executor", "planner"]) if method == "auto" else None
    manager = GroupChatManager(groupchat=chat, llm_config=False if method != "auto" else scripted_llm_config(),
                               is_termination_msg=terminates)
    return manager, chat, agents, selector


def run_research_group(work_dir: Path, method: str, setup: Setup = None) -> tuple[Any, GroupChat, list,
                                                                                  Script | None]:
    """Start the research group chat from the executor (it plays the user proxy that posts the task)."""
    manager, chat, agents, selector = research_group(work_dir, method)
    if setup is not None:
        setup(manager)
    executor = agents[2]
    if method == "round_robin":
        chat.agents[:] = [agents[2], agents[0], agents[1]]
    result = executor.initiate_chat(manager, message="Compute the answer and save it.", silent=True)
    return result, chat, agents, selector


def relay_group(**chat_options: Any) -> tuple[GroupChatManager, GroupChat]:
    """Three rounds in round-robin order: ``starter`` opens, ``b`` tells a secret, ``c`` ends the chat."""
    starter = ConversableAgent("starter", llm_config=False, human_input_mode="NEVER")
    b = llm_agent("b", Script([Turn("b: the secret is 42.", prompt_tokens=10, completion_tokens=6, cost_usd=0.001)],
                              name="b"))
    c = llm_agent("c", Script([Turn("c: noted. TERMINATE", prompt_tokens=14, completion_tokens=4, cost_usd=0.001)],
                              name="c"))
    chat = GroupChat(agents=[starter, b, c], messages=[], max_round=5, speaker_selection_method="round_robin",
                     **chat_options)
    return GroupChatManager(groupchat=chat, llm_config=False, is_termination_msg=terminates), chat


def build_handoff_pattern() -> tuple[DefaultPattern, list[ConversableAgent]]:
    """A DefaultPattern exercising every handoff kind once, in this order:

    triage --LLM condition--> researcher --ReplyResult--> writer --context condition--> reviewer
    --after-work--> closer --after-work (terminate).
    """
    triage = llm_agent("triage", Script([transfer_to("researcher", prompt_tokens=30, completion_tokens=4,
                                                     cost_usd=0.003)], name="triage"))
    writer = llm_agent("writer", Script([], name="writer"))
    reviewer = llm_agent("reviewer", Script([Turn("Reviewed: fine.", prompt_tokens=70, completion_tokens=4,
                                                  cost_usd=0.007)], name="reviewer"))
    closer = llm_agent("closer", Script([Turn("All done. TERMINATE", prompt_tokens=20, completion_tokens=4,
                                              cost_usd=0.002)], name="closer"))

    def save_finding(finding: str, context_variables: ContextVariables) -> ReplyResult:
        """Save a research finding."""
        context_variables["found"] = True
        return ReplyResult(message=f"saved {finding}", target=AgentTarget(writer),
                           context_variables=context_variables)

    researcher = llm_agent("researcher", Script([
        Turn(tool_calls=(ToolCall("save_finding", {"finding": "H0=70"}, id="call_save_1"),),
             prompt_tokens=45, completion_tokens=8, cost_usd=0.005),
    ], name="researcher"), functions=[save_finding])
    triage.handoffs.add_llm_condition(OnCondition(target=AgentTarget(researcher),
                                                  condition=StringLLMCondition("Research is needed.")))
    writer.handoffs.add_context_condition(OnContextCondition(
        target=AgentTarget(reviewer), condition=ExpressionContextCondition(ContextExpression("${found} == True"))))
    reviewer.handoffs.set_after_work(AgentTarget(closer))
    closer.handoffs.set_after_work(TerminateTarget())
    agents = [triage, researcher, writer, reviewer, closer]
    pattern = DefaultPattern(initial_agent=triage, agents=agents, context_variables=ContextVariables({"found": False}))
    return pattern, agents


def handoff_pattern(setup: Setup = None) -> tuple[Any, Any, Any, list[ConversableAgent]]:
    """Run :func:`build_handoff_pattern` with ``initiate_group_chat``."""
    pattern, agents = build_handoff_pattern()
    if setup is not None:
        setup(pattern)
    result, context, last = initiate_group_chat(pattern=pattern, messages="Find H0.", max_rounds=12)
    return result, context, last, agents


async def square(x: int) -> int:
    """Square a number, slowly (concurrent with the other tools)."""
    await asyncio.sleep(0.05)
    return x * x


async def broken(x: int) -> int:
    """A tool that always fails."""
    await asyncio.sleep(0.01)
    raise ValueError(f"cannot handle {x}")


async def async_tool_chat(setup: Setup = None) -> tuple[Any, ConversableAgent, ConversableAgent]:
    """a_initiate_chat: the assistant asks for three tools at once (two succeed, one raises); the proxy runs them
    concurrently with ``asyncio.gather``."""
    script = Script([
        Turn(tool_calls=(ToolCall("square", {"x": 3}, id="call_sq_3"), ToolCall("square", {"x": 4}, id="call_sq_4"),
                         ToolCall("broken", {"x": 5}, id="call_broken_5")),
             prompt_tokens=33, completion_tokens=21, cost_usd=0.004),
        Turn("9 and 16; 5 failed. TERMINATE", prompt_tokens=64, completion_tokens=9, cost_usd=0.006),
    ], name="async")
    assistant = llm_agent("assistant", script)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER", is_termination_msg=terminates)
    for tool in (square, broken):
        register_function(tool, caller=assistant, executor=user, description=tool.__doc__)
    if setup is not None:
        setup([user, assistant])
    result = await user.a_initiate_chat(assistant, message="square 3 and 4, and try 5", max_turns=3, silent=True)
    return result, assistant, user


def nested_chat(setup: Setup = None) -> tuple[Any, ConversableAgent, ConversableAgent, ConversableAgent]:
    """The writer answers the user only after a nested chat with a critic (CMBAgent's ``*_nest`` agents)."""
    writer = llm_agent("writer", Script([], name="writer"))
    critic = llm_agent("critic", Script([Turn("Critique: tighten the claim.", prompt_tokens=25,
                                               completion_tokens=6, cost_usd=0.0025)], name="critic"))
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER", is_termination_msg=lambda m: True)
    writer.register_nested_chats([{"recipient": critic, "message": "Critique: H0 = 70.", "max_turns": 1,
                                   "summary_method": "last_msg"}], trigger=user)
    if setup is not None:
        setup([user, writer])
    result = user.initiate_chat(writer, message="Write the claim.", max_turns=1, silent=True)
    return result, user, writer, critic


CONTROL_CYCLE = ["engineer", "engineer_response_formatter", "executor", "executor_response_formatter", "control",
                 "terminator"]


def control_chat(work_dir: Path, step: int, setup: Setup = None) -> tuple[Any, list[ConversableAgent]]:
    """One CMBAgent control chat (reference §11): engineer → engineer_response_formatter → executor (runs the code,
    writing ``data/step_<n>.csv``) → executor_response_formatter (``post_execution_transfer``) → control
    (``record_status``) → terminator (``terminate_session``); tools run on ``_Group_Tool_Executor``."""
    code = (f"```python\nfrom pathlib import Path\nPath('data').mkdir(exist_ok=True)\n"
            f"Path('data/step_{step}.csv').write_text('x,y\\n{step},{step * step}\\n')\nprint('step {step} ok')\n```")
    terminator = llm_agent("terminator", Script([Turn(tool_calls=(ToolCall("terminate_session", {},
                                                                           id=f"call_term_{step}"),),
                                                      prompt_tokens=1200, completion_tokens=2, cost_usd=0.0025)],
                                                name=f"terminator{step}"))

    def terminate_session() -> ReplyResult:
        """End the session."""
        return ReplyResult(message="Session terminated.", target=TerminateTarget())

    terminator.register_for_llm(description="End the session.")(terminate_session)
    control = llm_agent("control", Script([Turn(tool_calls=(ToolCall("record_status", {"current_status": "completed"},
                                                                     id=f"call_status_{step}"),),
                                                prompt_tokens=7300, completion_tokens=119, cost_usd=0.026)],
                                          name=f"control{step}"))

    def record_status(current_status: str) -> ReplyResult:
        """Record the step status."""
        return ReplyResult(message=f"Status: {current_status}", target=AgentTarget(terminator))

    control.register_for_llm(description="Record the step status.")(record_status)
    erf = llm_agent("executor_response_formatter", Script([Turn(tool_calls=(ToolCall(
        "post_execution_transfer", {"next_agent_suggestion": "control", "execution_status": "success"},
        id=f"call_transfer_{step}"),), prompt_tokens=13000, completion_tokens=45, cost_usd=0.027)],
        name=f"erf{step}"))

    def post_execution_transfer(next_agent_suggestion: str, execution_status: str) -> ReplyResult:
        """Route after the execution."""
        return ReplyResult(message=f"Execution status: {execution_status}. Transfer to {next_agent_suggestion}.",
                           target=AgentTarget(control))

    erf.register_for_llm(description="Route after the execution.")(post_execution_transfer)
    executor = ConversableAgent("executor", llm_config=False, human_input_mode="NEVER",
                                code_execution_config={"executor": LocalCommandLineCodeExecutor(
                                    work_dir=work_dir, timeout=30)})
    formatter = llm_agent("engineer_response_formatter", Script([Turn(code, prompt_tokens=8500,
                                                                      completion_tokens=310, cost_usd=0.02)],
                                                                 name=f"formatter{step}"))
    engineer = llm_agent("engineer", Script([Turn(f"Step {step}: write the table with numpy-free Python.",
                                                  prompt_tokens=8900, completion_tokens=270, cost_usd=0.024)],
                                            name=f"engineer{step}"))
    engineer.handoffs.set_after_work(AgentTarget(formatter))
    formatter.handoffs.set_after_work(AgentTarget(executor))
    executor.handoffs.set_after_work(AgentTarget(erf))
    agents = [engineer, formatter, executor, erf, control, terminator]
    pattern = DefaultPattern(initial_agent=engineer, agents=agents)
    if setup is not None:
        setup(pattern)
    result, _, _ = initiate_group_chat(pattern=pattern, messages=f"Step {step}: tabulate squares.", max_rounds=20)
    return result, agents
