"""The capture middleware for AG2 v1: installed outermost on an agent, it wraps every turn, LLM call, tool execution
and human-input request, so durations and nesting come from the call chain itself (``shared/reference/ag2.md`` §3).

One middleware instance lives for one turn (AG2 builds it per ``ask``), which is where the turn's LLM usage is
summed. Everything recorded is guarded: a capture failure is counted, never raised into the agent.
"""

import json
import os
import weakref
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from ag2.events import ClientToolCallEvent, ModelResponse, ToolCallEvent, ToolErrorEvent
from ag2.middleware import BaseMiddleware

from capture import api
from capture.adapters import patching
from capture.adapters.ag2_v1.code import CodeRun, code_runs, parse_result
from capture.adapters.ag2_v1.network import channel_scope
from capture.adapters.ag2_v1.pricing import price_for
from capture.adapters.common import HumanInput, record_written_files, watch_writes
from capture.adapters.guarded import Guarded, attempt, excerpt
from capture.core.context import current_run_var

TASK_CHARS = 500


def event_text(event: Any) -> str:
    """The text of a v1 event: a request's text parts, a message's or response's content, else its type."""
    parts = getattr(event, "parts", None)
    if parts is not None:
        return "\n".join(str(getattr(p, "content", getattr(p, "data", p))) for p in parts)
    message = getattr(event, "message", None)
    if message is not None:
        return str(getattr(message, "content", message))
    content = getattr(event, "content", None)
    return type(event).__name__ if content is None else str(content)


def _arguments(event: ToolCallEvent) -> dict[str, Any]:
    try:
        value = json.loads(event.arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@contextmanager
def _turn_scope(agent_name: str, event: Any, context: Any) -> Iterator[None]:
    """The run a turn records into: the caller's, else its network channel's, else a new run and node named after the
    agent (a nested turn, e.g. a sub-agent's, always joins its caller's run)."""
    if current_run_var.get() is not None:
        yield
        return
    with channel_scope(context) as joined, ExitStack() as stack:
        if not joined:
            task = event_text(event)[:TASK_CHARS]
            stack.enter_context(Guarded("v1.run", lambda: api.run(agent_name, task=task,
                                                                      meta={"source": "ag2v1", "entry": "ask"})))
            stack.enter_context(Guarded("v1.node", lambda: api.node(agent_name, agent=agent_name)))
        yield


class CaptureMiddleware(BaseMiddleware):
    """Records one agent's turns (``agent_call``), LLM calls (``llm_call`` + cost row), tool calls (``tool_call``,
    ``code_exec`` for sandbox code tools, a ``handoff`` before a sub-agent runs) and human input
    (``approval_requested``)."""

    def __init__(self, event: Any, context: Any, *, agent: "weakref.ref[Any]", code_tools: frozenset[str],
                 subagents: dict[str, str]) -> None:
        super().__init__(event, context)
        self.agent = agent  # weakly: the agent holds the factory that holds this reference
        self.agent_name: str = agent().name
        self.code_tools = code_tools
        self.subagents = subagents
        self.llm_calls = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost_usd: float | None = 0.0
        self.models: list[str] = []

    def _active(self) -> bool:
        agent = self.agent()
        return agent is not None and patching.is_active(agent)

    async def _spanned(self, where: str, event_type: str, inputs: dict[str, Any],
                       call: Callable[[], Awaitable[Any]], finish: Callable[..., None], *extra: Any) -> Any:
        """Run ``call()`` inside an ``event_type`` span: an exception is recorded as an ``error`` event and re-raised;
        a result is passed to ``finish(span, result, *extra)``."""
        with Guarded(where, lambda: api.span(event_type, agent_name=self.agent_name, inputs=inputs)) as span:
            try:
                result = await call()
            except Exception as exc:
                attempt(f"{where}.error", api.record_event, "error", event_type, agent_name=self.agent_name,
                        error_message=f"{type(exc).__name__}: {exc}", status="failed")
                raise
            if span is not None:
                attempt(f"{where}.finish", finish, span, result, *extra)
        return result

    async def on_turn(self, call_next: Any, event: Any, context: Any) -> ModelResponse:
        if not self._active():
            return await call_next(event, context)
        # The turn's span is opened here rather than through _spanned: every resumption of the whole turn passes
        # through this frame, so one frame less is measurable (the short LLM and tool spans do not matter).
        inputs = {"message": excerpt(event_text(event))}
        with _turn_scope(self.agent_name, event, context), Guarded("v1.turn", lambda: api.span(
                "agent_call", agent_name=self.agent_name, inputs=inputs)) as span:
            try:
                response = await call_next(event, context)
            except Exception as exc:
                attempt("v1.turn.error", api.record_event, "error", "agent_call", agent_name=self.agent_name,
                        error_message=f"{type(exc).__name__}: {exc}", status="failed")
                raise
            if span is not None:
                attempt("v1.turn.finish", self._finish_turn, span, response)
        return response

    def _finish_turn(self, span: Any, response: ModelResponse) -> None:
        span.set_outputs({"reply": excerpt(event_text(response)), "replied": response.message is not None})
        if self.llm_calls:
            span.set_meta(llm_calls=self.llm_calls, prompt_tokens=self.prompt_tokens,
                          completion_tokens=self.completion_tokens, cost_usd=self.cost_usd,
                          cost_source="computed" if self.cost_usd is not None else "unpriced", model=self.models[-1])

    async def on_llm_call(self, call_next: Any, events: Any, context: Any) -> ModelResponse:
        if not self._active():
            return await call_next(events, context)
        return await self._spanned("v1.llm", "llm_call", {"messages": len(events)}, lambda: call_next(events, context),
                                   self._finish_llm)

    def _finish_llm(self, span: Any, response: ModelResponse) -> None:
        usage = response.usage
        prompt = int(usage.prompt_tokens or 0)
        completion = int(usage.completion_tokens or 0)
        model = response.model
        price = price_for(model)
        cost = price.cost(prompt, completion) if price is not None else None
        calls = [{"id": c.id, "name": c.name} for c in response.tool_calls.calls] if response.tool_calls else []
        span.set_outputs({"content": excerpt(event_text(response) if response.message is not None else None),
                          "tool_calls": calls})
        span.set_meta(model=model, provider=response.provider, finish_reason=response.finish_reason,
                      prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion,
                      cost_usd=cost, cost_source="computed" if cost is not None else "unpriced")
        if cost is not None:
            api.record_cost(agent_name=self.agent_name, model=model, prompt_tokens=prompt,
                                completion_tokens=completion, cost_usd=cost, event_id=span.id)
        self.llm_calls += 1
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost
        self.models.append(model)

    async def on_tool_execution(self, call_next: Any, event: ToolCallEvent, context: Any) -> Any:
        if not self._active():
            return await call_next(event, context)
        if event.name in self.code_tools:
            return await self._code(call_next, event, context)
        inputs = {"name": event.name, "arguments": excerpt(event.arguments), "call_id": event.id}
        target = self.subagents.get(event.name)
        written: dict[str, bool] = {}

        async def call() -> Any:
            if target is not None:
                attempt("v1.handoff", api.record_event, "handoff", "delegation", agent_name=self.agent_name,
                        inputs={"from": self.agent_name, "to": target}, meta={"tool": event.name,
                                                                              "call_id": event.id})
            with watch_writes(written):
                return await call_next(event, context)

        return await self._spanned("v1.tool", "tool_call", inputs, call, self._finish_tool, written, os.getcwd())

    def _finish_tool(self, span: Any, result: Any, written: dict[str, bool], root: str) -> None:
        if isinstance(result, ClientToolCallEvent):
            span.set_outputs({"client_side": True, "success": True})
            return
        content = event_text(result.result)
        ok = not isinstance(result, ToolErrorEvent)
        span.set_outputs({"content": excerpt(content), "success": ok})
        if not ok:
            message = f"{type(result.error).__name__}: {result.error}"
            span.fail(message[:2000])
            api.record_event("error", "tool_call", agent_name=self.agent_name, error_message=message[:2000],
                                 status="failed")
        record_written_files(written, span.id, self.agent_name, root)

    async def _code(self, call_next: Any, event: ToolCallEvent, context: Any) -> Any:
        args = _arguments(event)
        inputs = {"language": args.get("language"), "blocks": 1, "code": excerpt(args.get("code")),
                  "call_id": event.id, "tool": event.name}
        runs: list[CodeRun] = []

        async def call() -> Any:
            with code_runs(runs):
                return await call_next(event, context)

        return await self._spanned("v1.code", "code_exec", inputs, call, self._finish_code, runs)

    def _finish_code(self, span: Any, result: Any, runs: list[CodeRun]) -> None:
        if runs:
            run = runs[-1]
            exit_code, output = run.exit_code, run.output
        elif isinstance(result, ToolErrorEvent) or not hasattr(result, "result"):
            message = (f"{type(result.error).__name__}: {result.error}" if isinstance(result, ToolErrorEvent)
                       else "the code tool returned no result")
            span.set_outputs({"exit_code": None, "output": None})
            span.fail(message[:2000])
            api.record_event("error", "code_exec", agent_name=self.agent_name, status="failed",
                                 error_message=message[:2000])
            return
        else:  # the environment that ran was not reachable: the exit code is in the result text
            run = None
            exit_code, output = parse_result(event_text(result.result))
        span.set_outputs({"exit_code": exit_code, "output": excerpt(output),
                          "scripts": run.scripts if run is not None else []})
        if exit_code:
            span.fail(f"exit code {exit_code}")
            api.record_event("error", "code_exec", agent_name=self.agent_name, status="failed",
                                 error_message=f"exit code {exit_code}: {str(output)[:1000]}")
        for path, operation in run.files if run is not None else ():
            api.record_file(f"{run.work_dir}/{path}", event_id=span.id, root=run.work_dir,
                                agent_name=self.agent_name, operation=operation)

    async def on_human_input(self, call_next: Any, event: Any, context: Any) -> Any:
        if not self._active():
            return await call_next(event, context)
        with HumanInput(self.agent_name, event.content, "hitl_hook") as asked:
            answer = await call_next(event, context)
            asked.answer = answer.content
        return answer
