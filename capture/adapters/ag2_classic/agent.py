"""Per-instance wrappers of one ConversableAgent: replies, LLM calls, tool calls, code runs, messages, chat starts.

Every wrapper runs the original exactly once with the caller's arguments and returns (or raises) exactly what it
returned (or raised); the capture around it is guarded (:mod:`capture.adapters.guarded`).
"""

import functools
import os
import weakref
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from contextvars import copy_context
from typing import Any

from capture import api
from capture.adapters import patching
from capture.adapters.ag2_classic.chat import chat_scope, is_manager, record_transition
from capture.adapters.ag2_classic.fanout import FanOut
from capture.adapters.ag2_classic.threads import (
    ReplyFrame,
    adopt,
    hand_over,
    open_reply,
    pop_reply,
    push_reply,
    snapshot,
    stashed,
)
from capture.adapters.common import HumanInput, WriteWatch, record_written_files
from capture.adapters.guarded import Guarded, attempt, excerpt, message_text, name_of
from capture.adapters.workdir import changes, scan, script_files
from capture.core.context import current_run_var

_children: "weakref.WeakKeyDictionary[Any, list[weakref.ref]]" = weakref.WeakKeyDictionary()
_send_hooks: "weakref.WeakSet[Any]" = weakref.WeakSet()


def adopt_child(owner: Any, child: Any) -> None:
    """Remember that ``child`` (a client, executor or temporary agent) was instrumented on behalf of ``owner``."""
    _children.setdefault(owner, []).append(weakref.ref(child))


def children_of(owner: Any) -> list[Any]:
    """What was instrumented on behalf of ``owner`` (undone with it), once each."""
    alive = [ref() for ref in _children.pop(owner, ())]
    unique = {id(child): child for child in alive if child is not None}
    return list(unique.values())


def _arg(args: tuple, kwargs: dict, index: int, name: str) -> Any:
    return kwargs[name] if name in kwargs else (args[index] if len(args) > index else None)


def _last_message(messages: Any) -> Any:
    return messages[-1] if isinstance(messages, list) and messages else None


# -- replies (agent_call) + speaker transitions -------------------------------------------------------------


class ReplyScope:
    """One reply, opened by the constructor and closed by :meth:`close` (which never raise): adopt/auto-run context,
    the transition handoff, the ``agent_call`` span and its frame. Plain calls rather than nested guarded context
    managers: it runs on every reply, and every layer is a Python call."""

    __slots__ = ("agent", "frame", "span", "stack")

    def __init__(self, agent: Any, args: tuple, kwargs: dict) -> None:
        """``args`` and ``kwargs``: those of ``generate_reply`` (AG2 passes ``sender=`` by keyword)."""
        sender = kwargs["sender"] if "sender" in kwargs else (args[1] if len(args) > 1 else None)
        messages = kwargs["messages"] if "messages" in kwargs else (args[0] if args else None)
        self.agent = agent
        self.frame: ReplyFrame | None = None
        self.span: api.Span | None = None
        self.stack: ExitStack | None = None
        try:
            if current_run_var.get() is None:
                self.stack = chat_scope(sender, agent, _last_message(messages), entry="generate_reply")
                self.stack.__enter__()
            name = agent.name
            if sender is not None and is_manager(sender):
                record_transition(agent, name, sender)
            if messages is None and sender is not None:
                messages = getattr(agent, "_oai_messages", {}).get(sender)
            last = messages[-1] if isinstance(messages, list) and messages else None
            self.span = span = api.span("agent_call", agent_name=name, owned=True, inputs={
                "sender": name_of(sender), "message": excerpt(last)})
            span.__enter__()
            if span.id is not None:
                self.frame = frame = ReplyFrame(span, copy_context())
                push_reply(agent, frame)
        except Exception as exc:  # noqa: BLE001
            patching.capture_failed("reply.enter", exc)

    def close(self, reply: Any, exc: BaseException | None) -> None:
        """The reply returned ``reply``, or raised ``exc``: record its end and leave its context."""
        frame = self.frame
        if frame is not None:
            span = frame.span
            try:
                pop_reply(self.agent, frame)
                if exc is not None:
                    api.record_event("error", "agent_call", agent_name=self.agent.name,
                                     error_message=f"{type(exc).__name__}: {exc}", status="failed",
                                     parent_event_id=span.id)
                else:
                    span.set_outputs({"reply": excerpt(reply), "replied": reply is not None})
                    if frame.llm_calls:
                        span.set_meta(llm_calls=frame.llm_calls, prompt_tokens=frame.prompt_tokens,
                                      completion_tokens=frame.completion_tokens, cost_usd=frame.cost_usd,
                                      model=frame.model)
            except Exception as failure:  # noqa: BLE001
                patching.capture_failed("reply.finish", failure)
        if self.span is not None:
            self.span.__exit__(None if exc is None else type(exc), exc, None)
        if self.stack is not None:
            try:
                self.stack.__exit__(None if exc is None else type(exc), exc, None if exc is None else exc.__traceback__)
            except Exception as failure:  # noqa: BLE001
                patching.capture_failed("reply.exit", failure)


def _scoped(scope: type, agent: Any, original: Any) -> Any:
    """``original`` inside a ``scope(agent, args, kwargs)`` (:class:`ReplyScope`, :class:`ToolScope`), closed with
    its result or exception; the original alone once ``agent`` is uninstrumented."""
    record = patching.record_of(agent)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not record.live:
            return original(*args, **kwargs)
        opened = scope(agent, args, kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            opened.close(None, exc)
            raise
        opened.close(result, None)
        return result

    return wrapper


def _a_scoped(scope: type, agent: Any, original: Any) -> Any:
    """:func:`_scoped` for a coroutine function."""
    record = patching.record_of(agent)

    @functools.wraps(original)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not record.live:
            return await original(*args, **kwargs)
        opened = scope(agent, args, kwargs)
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            opened.close(None, exc)
            raise
        opened.close(result, None)
        return result

    return wrapper


# -- LLM calls (llm_call) -------------------------------------------------------------------------------------


def _usage_key(summary: Any) -> tuple:
    """A client's usage summary as it stands, compared with ``==`` before and after a call: unchanged usage means
    the response came from AG2's cache. The pairs are enough, no copy of the per-model dicts: AG2 Classic (0.10 to
    0.14, ``OpenAIWrapper._update_usage``) replaces a model's dict on every update and only rebinds the total."""
    return tuple(summary.items()) if summary else ()


def _wrap_client_create(owner: Any, client: Any, original: Any) -> Any:
    record = patching.record_of(client)

    @functools.wraps(original)
    def create(**config: Any) -> Any:
        if not record.live:
            return original(**config)
        agent = config.get("agent") or owner
        frame = open_reply(agent)
        if frame is not None and current_run_var.get() is None:  # a thread hop: the reply's context, adopted
            with adopt(frame.context):
                return _traced_create(client, agent, frame, original, config)
        return _traced_create(client, agent, frame, original, config)

    return create


def _traced_create(client: Any, agent: Any, frame: ReplyFrame | None, original: Any, config: dict) -> Any:
    """``original(**config)`` inside an ``llm_call`` span (plain calls, no guard objects: one per LLM call); the
    usage summary is compared before and after to tell a cached response."""
    name = name_of(agent)
    span: api.Span | None = None
    try:
        before = _usage_key(getattr(client, "actual_usage_summary", None))
        span = api.span("llm_call", agent_name=name, owned=True,
                        inputs={"messages": len(config.get("messages") or ())}).__enter__()
    except Exception as exc:  # noqa: BLE001
        patching.capture_failed("llm", exc)
    try:
        response = original(**config)
    except BaseException as exc:
        if isinstance(exc, Exception):
            attempt("llm.error", api.record_event, "error", "llm_call", agent_name=name,
                    error_message=f"{type(exc).__name__}: {exc}", status="failed")
        if span is not None:
            span.__exit__(type(exc), exc, exc.__traceback__)
        raise
    if span is not None:
        try:
            cached = before == _usage_key(getattr(client, "actual_usage_summary", None))
            _finish_llm(span, frame, name, response, cached)
        except Exception as exc:  # noqa: BLE001
            patching.capture_failed("llm.finish", exc)
        span.__exit__(None, None, None)
    return response


def _finish_llm(span: Any, frame: ReplyFrame | None, name: str | None, response: Any, cached: bool) -> None:
    usage = getattr(response, "usage", None)
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    cost = float(getattr(response, "cost", 0.0) or 0.0)
    model = getattr(response, "model", None)
    choices = getattr(response, "choices", None)
    message = getattr(choices[0], "message", None) if choices else None
    calls = getattr(message, "tool_calls", None)
    span.set_outputs({"content": excerpt(getattr(message, "content", None)),
                      "tool_calls": [c.get("function", {}).get("name") if isinstance(c, dict) else
                                     getattr(getattr(c, "function", None), "name", None) for c in calls]
                      if calls else []})
    span.set_meta(model=model, prompt_tokens=prompt, completion_tokens=completion,
                  total_tokens=prompt + completion, cost_usd=cost, cached=cached)
    api.record_cost(agent_name=name, model=model, prompt_tokens=prompt, completion_tokens=completion,
                    cost_usd=cost, event_id=span.id)
    if frame is not None:
        frame.llm_calls += 1
        frame.prompt_tokens += prompt
        frame.completion_tokens += completion
        frame.cost_usd += cost
        frame.model = model


def _wrap_reply_from_client(agent: Any, original: Any) -> Any:
    record = patching.record_of(agent)

    @functools.wraps(original)
    def generate_oai_reply_from_client(llm_client: Any, *args: Any, **kwargs: Any) -> Any:
        if record.live and llm_client is not None and not patching.is_active(llm_client):
            attempt("llm.client", _instrument_client, agent, llm_client)
        return original(llm_client, *args, **kwargs)

    return generate_oai_reply_from_client


def _instrument_client(agent: Any, client: Any) -> None:
    if patching.activate(client):
        patching.patch(client, "create", lambda original: _wrap_client_create(agent, client, original))
        adopt_child(agent, client)


# -- tool calls (tool_call) -----------------------------------------------------------------------------------


def _tool_inputs(args: tuple, kwargs: dict) -> dict[str, Any]:
    call = _arg(args, kwargs, 0, "func_call") or {}
    return {"name": call.get("name"), "arguments": excerpt(call.get("arguments")),
            "call_id": _arg(args, kwargs, 1, "call_id")}


def _finish_tool(agent: Any, span: Any, result: Any, written: dict[str, bool], root: str) -> None:
    ok, payload = result
    content = payload.get("content") if isinstance(payload, dict) else payload
    span.set_outputs({"content": excerpt(content), "success": bool(ok)})
    if not ok:
        span.fail(str(content)[:2000])
        api.record_event("error", "tool_call", agent_name=agent.name, error_message=str(content)[:2000],
                             status="failed")
    record_written_files(written, span.id, agent.name, root)


class ToolScope:
    """One tool call, opened by the constructor and closed by :meth:`close` (which never raise): the reply's context
    adopted on a thread hop, the ``tool_call`` span and the watch of the files the tool writes. Plain calls rather
    than guarded context managers, as :class:`ReplyScope`."""

    __slots__ = ("adopted", "agent", "root", "span", "watch")

    def __init__(self, agent: Any, args: tuple, kwargs: dict) -> None:
        self.agent = agent
        self.span: api.Span | None = None
        self.root = os.getcwd()
        self.adopted = adopt(stashed(agent))
        self.adopted.__enter__()
        try:
            self.span = api.span("tool_call", agent_name=agent.name, inputs=_tool_inputs(args, kwargs),
                                 owned=True).__enter__()
        except Exception as exc:  # noqa: BLE001
            patching.capture_failed("tool", exc)
        self.watch = WriteWatch()
        self.watch.__enter__()

    def close(self, result: Any, exc: BaseException | None) -> None:
        """The tool returned ``result``, or raised ``exc``: record its end and the files it wrote."""
        self.watch.__exit__(None, None, None)
        span = self.span
        if span is not None:
            if exc is None:
                try:
                    _finish_tool(self.agent, span, result, self.watch.written, self.root)
                except Exception as failure:  # noqa: BLE001
                    patching.capture_failed("tool.finish", failure)
            span.__exit__(None if exc is None else type(exc), exc, None if exc is None else exc.__traceback__)
        self.adopted.__exit__(None, None, None)


# -- human input (approval_requested) -------------------------------------------------------------------------


def _wrap_get_human_input(agent: Any, original: Any) -> Any:
    @functools.wraps(original)
    def get_human_input(prompt: str, *args: Any, **kwargs: Any) -> Any:
        if not patching.is_active(agent):
            return original(prompt, *args, **kwargs)
        with adopt(stashed(agent)), HumanInput(agent.name, prompt, "get_human_input") as asked:
            asked.answer = original(prompt, *args, **kwargs)
        return asked.answer

    return get_human_input


def _wrap_a_get_human_input(agent: Any, original: Any) -> Any:
    @functools.wraps(original)
    async def a_get_human_input(prompt: str, *args: Any, **kwargs: Any) -> Any:
        if not patching.is_active(agent):
            return await original(prompt, *args, **kwargs)
        with adopt(stashed(agent)), HumanInput(agent.name, prompt, "a_get_human_input") as asked:
            asked.answer = await original(prompt, *args, **kwargs)
        return asked.answer

    return a_get_human_input


# -- code execution (code_exec + file_gen) --------------------------------------------------------------------


def _run_code(agent: Any, work_dir: Any, blocks: list[tuple[str, str]], call: Any) -> Any:
    """Run ``call()`` inside a ``code_exec`` span, then record files it created or changed under ``work_dir``."""
    with adopt(stashed(agent)):
        before = scan(work_dir)
        inputs = {"language": blocks[0][0] if blocks else None, "blocks": len(blocks),
                  "code": excerpt("\n\n".join(code for _, code in blocks))}
        with Guarded("code", lambda: api.span("code_exec", agent_name=agent.name, inputs=inputs, owned=True)) as span:
            result = call()
            if span is not None:
                attempt("code.finish", _finish_code, agent, span, work_dir, before, result)
    return result


def _finish_code(agent: Any, span: Any, work_dir: Any, before: dict, result: Any) -> None:
    if isinstance(result, tuple):
        exit_code, output, code_file = result[0], result[1], None
    else:
        exit_code, output = result.exit_code, result.output
        code_file = getattr(result, "code_file", None)
    created = changes(before, scan(work_dir))
    scripts = script_files(created)
    span.set_outputs({"exit_code": exit_code, "output": excerpt(output), "code_file": code_file, "scripts": scripts})
    if exit_code:
        span.fail(f"exit code {exit_code}")
        api.record_event("error", "code_exec", agent_name=agent.name, status="failed",
                             error_message=f"exit code {exit_code}: {str(output)[:1000]}")
    for path, operation in created:
        if path not in scripts:
            api.record_file(f"{work_dir}/{path}", event_id=span.id, root=work_dir, agent_name=agent.name,
                                operation=operation)


def _wrap_executor(agent: Any, executor: Any, original: Any) -> Any:
    @functools.wraps(original)
    def execute_code_blocks(code_blocks: Any) -> Any:
        if not patching.is_active(executor):
            return original(code_blocks)
        blocks = [(getattr(b, "language", None), getattr(b, "code", "")) for b in code_blocks]
        return _run_code(agent, getattr(executor, "work_dir", None), blocks, lambda: original(code_blocks))

    return execute_code_blocks


def _wrap_legacy_code(agent: Any, original: Any) -> Any:
    @functools.wraps(original)
    def execute_code_blocks(code_blocks: Any) -> Any:
        if not patching.is_active(agent):
            return original(code_blocks)
        config = agent._code_execution_config if isinstance(agent._code_execution_config, dict) else {}
        return _run_code(agent, config.get("work_dir"), [tuple(b) for b in code_blocks],
                         lambda: original(code_blocks))

    return execute_code_blocks


def _instrument_executor(agent: Any) -> None:
    executor = agent.__dict__.get("_code_executor")
    if executor is not None and hasattr(executor, "execute_code_blocks") and patching.activate(executor):
        patching.patch(executor, "execute_code_blocks", lambda original: _wrap_executor(agent, executor, original))
        adopt_child(agent, executor)


# -- messages (send hook) -------------------------------------------------------------------------------------


def _send_hook(agent: Any) -> Any:
    """The ``process_message_before_send`` hook of ``agent``: one ``message`` event per send, except a group
    manager's round fan-out, which is one ``broadcast`` listing its recipients (:mod:`capture.adapters.ag2_classic.fanout`).
    It runs for every message, so it reads ``agent``'s patch record itself (:func:`patching.record_reader`) and takes
    the common message shape (a dict with text content) without the helpers' calls."""
    fan_out = FanOut() if is_manager(agent) else None
    current = patching.record_reader(agent)

    def process_message_before_send(sender: Any = None, message: Any = None, recipient: Any = None,
                                    silent: bool = False) -> Any:
        try:  # inline rather than attempt(): this runs for every message
            if fan_out is not None and silent and message is fan_out.message and fan_out.continues(recipient):
                return message  # a later send of the round's fan-out, already recorded
            record = current()
            if record is None or not record.live:
                return message
            quiet = bool(silent)
            meta: dict[str, Any] = {"silent": quiet}
            text = None
            if type(message) is dict:
                calls = message.get("tool_calls")
                if calls:
                    meta["tool_call_ids"] = [c.get("id") for c in calls]
                role = message.get("role")
                if role:
                    meta["role"] = role
                text = message.get("content")
            elif type(message) is str:
                text = message
            if type(text) is not str or not text:
                text = message_text(message)
            recipients = fan_out.opens(agent, message, recipient) if quiet and fan_out is not None else None
            if recipients is not None:
                api.record_broadcast(name_of(sender), recipients, text, meta=meta, owned=True)
            else:
                api.record_message(name_of(sender), name_of(recipient), text,
                                   silent=quiet and is_manager(sender), meta=meta, owned=True)
        except Exception as exc:  # noqa: BLE001 - capture must never break the run
            patching.capture_failed("message", exc)
        return message

    return process_message_before_send


# -- chat starts ----------------------------------------------------------------------------------------------


def _wrap_initiate_chat(agent: Any, original: Any) -> Any:
    @functools.wraps(original)
    def initiate_chat(recipient: Any, *args: Any, **kwargs: Any) -> Any:
        if not patching.is_active(agent):
            return original(recipient, *args, **kwargs)
        with _chat_start(agent, recipient, kwargs.get("message")):
            return original(recipient, *args, **kwargs)

    return initiate_chat


def _wrap_a_initiate_chat(agent: Any, original: Any) -> Any:
    @functools.wraps(original)
    async def a_initiate_chat(recipient: Any, *args: Any, **kwargs: Any) -> Any:
        if not patching.is_active(agent):
            return await original(recipient, *args, **kwargs)
        with _chat_start(agent, recipient, kwargs.get("message")):
            return await original(recipient, *args, **kwargs)

    return a_initiate_chat


@contextmanager
def _chat_start(agent: Any, recipient: Any, message: Any) -> Iterator[None]:
    if recipient is not None and not patching.is_active(recipient):
        attempt("chat.recipient", instrument_agent, recipient, owner=agent)
    stack = attempt("chat.start", chat_scope, agent, recipient, message, entry="initiate_chat")
    if stack is None:
        yield
        return
    with Guarded("chat.scope", lambda: stack):
        yield


def _wrap_run(agent: Any, original: Any) -> Any:
    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        if patching.is_active(agent):
            snap = snapshot()
            attempt("run.handover", hand_over, agent, snap)
            recipient = _arg(args, kwargs, 0, "recipient")
            if recipient is not None:
                attempt("run.handover", hand_over, recipient, snap)
        return original(*args, **kwargs)

    return run


def _wrap_executor_factory(agent: Any, original: Any) -> Any:
    @contextmanager
    def create_or_get_executor(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with original(*args, **kwargs) as executor:
            if patching.is_active(agent) and executor is not None:
                attempt("run.executor", instrument_agent, executor, owner=agent)
            yield executor

    return create_or_get_executor


# -- instrument / uninstrument one agent ----------------------------------------------------------------------

_WRAPPERS = (
    ("generate_reply", functools.partial(_scoped, ReplyScope)),
    ("a_generate_reply", functools.partial(_a_scoped, ReplyScope)),
    ("_generate_oai_reply_from_client", _wrap_reply_from_client),
    ("execute_function", functools.partial(_scoped, ToolScope)),
    ("a_execute_function", functools.partial(_a_scoped, ToolScope)),
    ("get_human_input", _wrap_get_human_input),
    ("a_get_human_input", _wrap_a_get_human_input),
    ("initiate_chat", _wrap_initiate_chat),
    ("a_initiate_chat", _wrap_a_initiate_chat),
    ("run", _wrap_run),
    ("_create_or_get_executor", _wrap_executor_factory),
)


def instrument_agent(agent: Any, owner: Any = None) -> None:
    """Wrap ``agent``'s own methods (idempotent); ``owner`` undoes it with itself when given."""
    if not patching.activate(agent):
        return
    if owner is not None:
        adopt_child(owner, agent)
    for name, make in _WRAPPERS:
        if hasattr(agent, name):
            patching.patch(agent, name, lambda original, make=make: make(agent, original))
    if agent.__dict__.get("_code_executor") is not None:
        _instrument_executor(agent)
    elif isinstance(agent.__dict__.get("_code_execution_config"), dict):
        patching.patch(agent, "execute_code_blocks", lambda original: _wrap_legacy_code(agent, original))
    if agent not in _send_hooks:
        agent.register_hook("process_message_before_send", _send_hook(agent))
        _send_hooks.add(agent)


def uninstrument_agent(agent: Any) -> bool:
    """Restore ``agent`` (and the clients, executors and temporary agents instrumented for it)."""
    for child in children_of(agent):
        if hasattr(child, "register_hook"):
            uninstrument_agent(child)
        else:
            patching.restore(child)
    return patching.restore(agent)
