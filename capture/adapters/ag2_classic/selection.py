"""LLM calls of ``auto`` speaker selection: AG2 builds a fresh speaker-selection agent for every selection, on the
shallow copy of the GroupChat that ``run_chat`` receives (``shared/reference/ag2.md`` §2.2, §2.6), so the copy's
agent factory is wrapped and only the selector's LLM path is instrumented (its internal two-agent chat is not part
of the transcript and is not recorded as messages)."""

import functools
from typing import Any

from capture.adapters import patching
from capture.adapters.ag2_classic.agent import _wrap_reply_from_client, adopt_child
from capture.adapters.guarded import attempt


def _wrap_factory(groupchat: Any, original: Any) -> Any:
    @functools.wraps(original)
    def create_internal_agents(*args: Any, **kwargs: Any) -> Any:
        agents = original(*args, **kwargs)
        if patching.is_active(groupchat):
            attempt("selection", _instrument_selector, agents[1])
        return agents

    return create_internal_agents


def _instrument_selector(selector: Any) -> None:
    if patching.activate(selector):
        patching.patch(selector, "_generate_oai_reply_from_client",
                       lambda original: _wrap_reply_from_client(selector, original))


def instrument_selection(manager: Any) -> None:
    """Record the LLM calls (and costs) of ``manager``'s ``auto`` speaker selections under its reply."""
    copies = [entry.get("config") for entry in getattr(manager, "_reply_func_list", ())]
    for groupchat in [manager.groupchat, *copies]:
        if hasattr(groupchat, "_create_internal_agents") and patching.activate(groupchat):
            patching.patch(groupchat, "_create_internal_agents", lambda original, g=groupchat: _wrap_factory(g, original))
            adopt_child(manager, groupchat)
