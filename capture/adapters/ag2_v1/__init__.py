"""AG2 v1 (``import ag2``, ``ag2>=1.2``) instrumentation: ``instrument(target)`` / ``uninstrument(target)``.

A target is an ``ag2.Agent``, a list of agents, or an ``ag2.network`` ``Hub`` (what is said on its channels, speaker
transitions, channel ends; agents it registers from then on are instrumented with it). Capture goes through v1's
public extension points: one :class:`~capture.adapters.ag2_v1.middleware.CaptureMiddleware` inserted outermost in
each agent (turns, LLM calls, tool calls, human input), the environment of each ``SandboxCodeTool`` (exit code, output, files), sub-agents exposed
with ``Agent.as_tool`` (instrumented with their parent, a ``handoff`` before each delegation), and a hub listener.
v1 reports no cost: it is computed from :mod:`capture.adapters.ag2_v1.pricing` and marked ``cost_source:
"computed"``. AG2 is imported only when an agent is instrumented. Tools passed per ``ask(tools=...)`` rather than
to the agent are captured as plain tool calls.
"""

import weakref
from typing import Any

from capture.adapters import patching
from capture.adapters.ag2_v1.network import instrument_hub, uninstrument_hub
from capture.adapters.ag2_v1.pricing import DEFAULT_PRICES, Price, price_for, reset_prices, set_prices

__all__ = ["DEFAULT_PRICES", "Price", "instrument", "is_instrumented", "is_v1", "price_for", "reset_prices",
           "set_prices", "uninstrument"]

# agent -> (its capture middleware factory, the objects instrumented with it)
_installed: "weakref.WeakKeyDictionary[Any, tuple[Any, list[Any]]]" = weakref.WeakKeyDictionary()


def is_v1(target: Any) -> bool:
    """Whether ``target`` (or the first item of a list) is an AG2 v1 object (its class lives in the ``ag2``
    package; AG2 Classic's live in ``autogen``)."""
    if isinstance(target, (list, tuple)):
        return bool(target) and is_v1(target[0])
    module = type(target).__module__
    return module == "ag2" or module.startswith("ag2.")


def is_instrumented(target: Any) -> bool:
    """Whether ``target`` itself is currently instrumented."""
    return patching.is_active(target)


def _is_hub(target: Any) -> bool:
    return hasattr(target, "register_listener") and hasattr(target, "unregister_listener")


def _check(target: Any) -> None:
    if not (_is_hub(target) or hasattr(target, "insert_middleware")):
        raise TypeError(f"capture.instrument() needs an AG2 v1 Agent, a list of agents or a network Hub; got "
                        f"{type(target).__name__}: {target!r:.80}")


def _instrument_agent(agent: Any) -> None:
    from ag2 import Middleware
    from ag2.tools.code import SandboxCodeTool
    from ag2.tools.subagents.subagent_tool import SubagentTool

    from capture.adapters.ag2_v1.code import instrument_code_tool
    from capture.adapters.ag2_v1.middleware import CaptureMiddleware

    if not patching.activate(agent):
        return
    code_tools: set[str] = set()
    subagents: dict[str, str] = {}
    owned: list[Any] = []
    for tool in agent.tools:
        if isinstance(tool, SandboxCodeTool):
            code_tools.add(tool.name)
            owned.append(instrument_code_tool(tool))
        elif isinstance(tool, SubagentTool):
            subagents[tool.name] = tool.agent.name
            if not patching.is_active(tool.agent):
                _instrument_agent(tool.agent)
                owned.append(tool.agent)
    factory = Middleware(CaptureMiddleware, agent=weakref.ref(agent), code_tools=frozenset(code_tools),
                         subagents=subagents)
    agent.insert_middleware(factory)
    _installed[agent] = (factory, owned)


def _uninstrument_agent(agent: Any) -> None:
    factory, owned = _installed.pop(agent, (None, []))
    if factory is not None and factory in agent._middleware:
        agent._middleware.remove(factory)
    for child in owned:
        if child in _installed:
            _uninstrument_agent(child)
        else:
            patching.restore(child)
    patching.restore(agent)


def _each(target: Any, hub_action: Any, agent_action: Any) -> Any:
    """Apply the hub or agent action to ``target`` (each item of a list); returns ``target``."""
    if isinstance(target, (list, tuple)):
        for item in target:
            _each(item, hub_action, agent_action)
        return target
    _check(target)
    (hub_action if _is_hub(target) else agent_action)(target)
    return target


def instrument(target: Any, *, prices: "dict[str, Price | tuple[float, float]] | None" = None) -> Any:
    """Capture everything ``target`` does from now on (``prices`` adds to the price table); returns ``target``."""
    if prices:
        set_prices(prices)
    return _each(target, lambda hub: instrument_hub(hub, _instrument_agent), _instrument_agent)


def uninstrument(target: Any) -> Any:
    """Restore ``target`` (and what was instrumented with it) to exactly its original behaviour; returns it."""
    return _each(target, lambda hub: uninstrument_hub(hub, _uninstrument_agent), _uninstrument_agent)
