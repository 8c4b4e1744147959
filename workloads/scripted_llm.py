"""A scripted, offline AG2 Classic ``ModelClient``: real agents, real ``OpenAIWrapper``, no network.

A :class:`Script` is a thread-safe queue of turns shared by every client instance built for the agents that use it,
so the script survives AG2 rebuilding ``agent.client`` whenever tool signatures change (``shared/reference/ag2.md``
§4.1). Each turn carries its own usage (prompt/completion tokens), cost and simulated latency; when a
:class:`capture.core.clock.SimulatedClock` is active the latency advances it. :func:`scripted_selection` scripts the
``auto`` speaker selection (§4.2) and :func:`transfer_to` picks a generated ``transfer_to_*`` tool (§4.3).
"""

from __future__ import annotations

import itertools
import json
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from capture.core import clock as capture_clock

CLIENT_CLASS_NAME = "ScriptedLLM"
SELECTOR_CLASS_NAME = "ScriptedSelector"


class SilentStream:
    """An AG2 IOStream that prints nothing: a thousand scripted chats would flood the terminal, and console
    printing is not part of what a benchmark should measure."""

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
        return None

    def send(self, message: Any) -> None:
        return None

    def input(self, prompt: str = "", *, password: bool = False) -> str:
        return ""


class ScriptExhausted(RuntimeError):
    """The agent asked the scripted model for more turns than the script holds."""


class ScriptedLLMError(RuntimeError):
    """A failure the script asked the model to raise (models an API error)."""


@dataclass(frozen=True)
class ToolCall:
    """One OpenAI-style tool call the scripted model proposes."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class Turn:
    """One scripted model response. ``None`` usage fields are derived from the request and reply sizes."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float = 0.0
    error: str | None = None


TurnSpec = Turn | str | Callable[[dict[str, Any]], "Turn | str"]


def as_turn(spec: Turn | str) -> Turn:
    """Accept a plain string as a text turn."""
    if isinstance(spec, Turn):
        return spec
    if isinstance(spec, str):
        return Turn(content=spec)
    raise TypeError(f"a scripted turn must be a Turn, a str or a callable returning one, got {type(spec).__name__}")


@dataclass
class _Message:
    content: str | None
    tool_calls: list[dict[str, Any]] | None
    role: str = "assistant"


@dataclass
class _Choice:
    message: _Message
    finish_reason: str
    index: int = 0


@dataclass
class _Usage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass
class ScriptedResponse:
    """The response object ``OpenAIWrapper`` expects (``id``, ``model``, ``choices``, ``usage``, ``cost``)."""

    id: str
    model: str
    choices: list[_Choice]
    usage: _Usage
    cost: float


class Script:
    """Turns shared by all client instances of the agents using it; thread-safe (async replies run on threads)."""

    def __init__(self, turns: Iterable[TurnSpec] = (), *, price_per_1k: tuple[float, float] = (0.002, 0.008),
                 clock: capture_clock.SimulatedClock | None = None, name: str = "script") -> None:
        self.name = name
        self.price_per_1k = price_per_1k
        self.clock = clock
        self._turns: deque[TurnSpec] = deque(turns)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.responses: list[ScriptedResponse] = []

    def extend(self, turns: Iterable[TurnSpec]) -> None:
        """Append more turns (a workload can script as it goes)."""
        with self._lock:
            self._turns.extend(turns)

    @property
    def remaining(self) -> int:
        """Turns not yet consumed."""
        return len(self._turns)

    def respond(self, model: str, params: dict[str, Any]) -> ScriptedResponse:
        """Consume the next turn, advance the simulated clock by its latency, and build the response."""
        with self._lock:
            if not self._turns:
                raise ScriptExhausted(f"{self.name}: no scripted turn left for a call to model {model!r}")
            spec = self._turns.popleft()
            number = next(self._ids)
        turn = as_turn(spec(params) if callable(spec) else spec)
        simulated = self.clock or active_simulated_clock()
        if simulated is not None and turn.latency_ms:
            simulated.advance(turn.latency_ms)
        if turn.error is not None:
            raise ScriptedLLMError(turn.error)
        tool_calls = [
            {"id": call.id or f"call_{self.name}_{number}_{i}", "type": "function",
             "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
            for i, call in enumerate(turn.tool_calls)
        ] or None
        prompt = turn.prompt_tokens if turn.prompt_tokens is not None else _estimate_tokens(params.get("messages"))
        completion = (turn.completion_tokens if turn.completion_tokens is not None
                      else _estimate_tokens(turn.content or "") + 10 * len(turn.tool_calls))
        cost = (turn.cost_usd if turn.cost_usd is not None
                else (prompt * self.price_per_1k[0] + completion * self.price_per_1k[1]) / 1000)
        response = ScriptedResponse(
            id=f"{self.name}-{number}", model=model,
            choices=[_Choice(_Message(turn.content, tool_calls), "tool_calls" if tool_calls else "stop")],
            usage=_Usage(prompt, completion), cost=cost,
        )
        with self._lock:
            self.responses.append(response)
        return response


def _estimate_tokens(value: Any) -> int:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return max(1, math.ceil(len(text) / 4))


def active_simulated_clock() -> capture_clock.SimulatedClock | None:
    """The :class:`SimulatedClock` behind :func:`capture.core.clock.now`, if one is active in this context or process."""
    for candidate in (capture_clock._clock.get(), capture_clock._process_clock[0]):
        if isinstance(candidate, capture_clock.SimulatedClock):
            return candidate
    return None


class ScriptedLLM:
    """Classic ``ModelClient`` replaying a :class:`Script` (``register_model_client(ScriptedLLM, script=...)``)."""

    def __init__(self, config: dict[str, Any], script: Script | None = None, **_: Any) -> None:
        if script is None:
            raise ValueError(f"{type(self).__name__} for model {config.get('model')!r} needs script=Script(...)")
        self.model = config.get("model", "scripted")
        self.script = script

    def create(self, params: dict[str, Any]) -> ScriptedResponse:
        return self.script.respond(self.model, params)

    def message_retrieval(self, response: ScriptedResponse) -> list[str] | list[dict[str, Any]]:
        out: list[Any] = []
        for choice in response.choices:
            message = choice.message
            if message.tool_calls:
                out.append({"role": "assistant", "content": message.content, "tool_calls": message.tool_calls})
            else:
                out.append(message.content)
        return out

    def cost(self, response: ScriptedResponse) -> float:
        return response.cost

    @staticmethod
    def get_usage(response: ScriptedResponse) -> dict[str, Any]:
        return {"prompt_tokens": response.usage.prompt_tokens, "completion_tokens": response.usage.completion_tokens,
                "total_tokens": response.usage.total_tokens, "cost": response.cost, "model": response.model}


def scripted_llm_config(model: str = "scripted-model", client_class: str = CLIENT_CLASS_NAME) -> dict[str, Any]:
    """An ``llm_config`` naming the scripted client; no disk cache so every call reaches the script."""
    return {"config_list": [{"model": model, "model_client_cls": client_class}], "cache_seed": None}


def use_script(agent: Any, script: Script) -> Any:
    """Register ``script`` as ``agent``'s model and keep it registered across client rebuilds; returns the agent."""

    def register() -> None:
        agent.register_model_client(model_client_cls=ScriptedLLM, script=script)

    if not getattr(agent, "_scripted_llm_rebuild_guard", False):
        for name in ("update_tool_signature", "update_function_signature"):
            inner = getattr(agent, name)

            def rebuilt(*args: Any, _inner: Callable[..., Any] = inner, **kwargs: Any) -> Any:
                result = _inner(*args, **kwargs)
                register()
                return result

            setattr(agent, name, rebuilt)
        agent._scripted_llm_rebuild_guard = True
    register()
    return agent


def scripted_selection(groupchat: Any, speakers: Iterable[str], *, model: str = "scripted-selector",
                       name: str = "selector") -> Script:
    """Script the ``auto`` speaker selection of ``groupchat``: each selection answers the next agent name.

    AG2 builds the selection client with no arguments, once per selection, so the script lives on a class made
    for this group chat.
    """
    script = Script(speakers, name=name)
    selector = type(SELECTOR_CLASS_NAME, (ScriptedLLM,), {
        "__init__": lambda self, config, **kw: ScriptedLLM.__init__(self, config, script=script),
    })
    groupchat.select_speaker_auto_llm_config = scripted_llm_config(model, SELECTOR_CLASS_NAME)
    groupchat.select_speaker_auto_model_client_cls = selector
    return script


def transfer_to(target: str, **usage: Any) -> Callable[[dict[str, Any]], Turn]:
    """A turn that calls the first offered tool named ``transfer_to_<target>...`` (pattern LLM conditions)."""
    prefix = f"transfer_to_{target}"

    def pick(params: dict[str, Any]) -> Turn:
        names = [tool.get("function", {}).get("name", "") for tool in params.get("tools") or []]
        chosen = next((n for n in names if n.startswith(prefix)), None)
        if chosen is None:
            raise ScriptExhausted(f"no tool starting with {prefix!r} offered; tools were {names}")
        return Turn(tool_calls=(ToolCall(chosen),), **usage)

    return pick
