"""Offline AG2 Classic scenarios driven by scripted model clients (real agents, real executors, no network)."""

import logging
from pathlib import Path
from typing import Any

from autogen import ConversableAgent, GroupChat, GroupChatManager, register_function
from autogen.agentchat import initiate_group_chat
from autogen.agentchat.group import (AgentTarget, ContextExpression, ContextVariables, ExpressionContextCondition,
                                     OnCondition, OnContextCondition, ReplyResult, StringLLMCondition,
                                     TerminateTarget)
from autogen.agentchat.group.patterns import DefaultPattern
from autogen.coding import LocalCommandLineCodeExecutor

from workloads.scripted_llm import (Script, ToolCall, Turn, scripted_llm_config, scripted_selection, transfer_to,
                                    use_script)

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


def two_agent_tool_chat() -> tuple[Any, ConversableAgent, ConversableAgent]:
    """An assistant proposes ``add(2, 3)``; a user proxy executes it; the assistant answers and terminates."""
    script = Script([
        Turn(tool_calls=(ToolCall("add", {"a": 2, "b": 3}, id="call_add_1"),),
             prompt_tokens=50, completion_tokens=7, cost_usd=0.01, latency_ms=300),
        Turn("The sum is 5. TERMINATE", prompt_tokens=80, completion_tokens=6, cost_usd=0.02, latency_ms=200),
    ], name="assistant")
    assistant = llm_agent("assistant", script)
    user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER", is_termination_msg=terminates)
    register_function(add, caller=assistant, executor=user, description="Add two integers.")
    result = user.initiate_chat(assistant, message="add 2 and 3", max_turns=4, silent=True)
    return result, assistant, user


def research_group(work_dir: Path, method: str) -> tuple[GroupChatManager, GroupChat, list[ConversableAgent]]:
    """planner → engineer (writes code) → executor (runs it, writing result.txt) → planner (TERMINATE)."""
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
        selection = lambda last, chat: chat.agent_by_name(next(order))  # noqa: E731
    chat = GroupChat(agents=agents, messages=[], max_round=6, speaker_selection_method=selection,
                     allow_repeat_speaker=False if method == "auto" else None)
    if method == "auto":
        scripted_selection(chat, ["planner", "engineer", "executor", "planner"])
    manager = GroupChatManager(groupchat=chat, llm_config=False if method != "auto" else scripted_llm_config(),
                               is_termination_msg=terminates)
    return manager, chat, agents


def run_research_group(work_dir: Path, method: str) -> tuple[Any, GroupChatManager, GroupChat, list]:
    """Start the research group chat from the executor (it plays the user proxy that posts the task)."""
    manager, chat, agents = research_group(work_dir, method)
    executor = agents[2]
    if method == "round_robin":
        chat.agents[:] = [agents[2], agents[0], agents[1]]
    result = executor.initiate_chat(manager, message="Compute the answer and save it.", silent=True)
    return result, manager, chat, agents


def handoff_pattern() -> tuple[Any, Any, Any, list[ConversableAgent]]:
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
    result, context, last = initiate_group_chat(pattern=pattern, messages="Find H0.", max_rounds=12)
    return result, context, last, agents
