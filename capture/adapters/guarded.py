"""Capture context managers entered and exited without ever raising into the agent run, and cheap excerpts."""

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any

from capture.adapters.patching import capture_failed

EXCERPT_CHARS = 2000


class Guarded:
    """Enter ``factory()`` (a capture context manager); failures are counted, the wrapped call always runs."""

    __slots__ = ("cm", "factory", "value", "where")

    def __init__(self, where: str, factory: Callable[[], AbstractContextManager[Any]]) -> None:
        self.where, self.factory, self.cm, self.value = where, factory, None, None

    def __enter__(self) -> Any:
        try:
            self.cm = self.factory()
            self.value = self.cm.__enter__()
        except Exception as exc:  # noqa: BLE001 - capture must never break the run
            self.cm = None
            capture_failed(self.where, exc)
        return self.value

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if self.cm is not None:
            try:
                self.cm.__exit__(exc_type, exc, tb)
            except Exception as failure:  # noqa: BLE001
                capture_failed(self.where, failure)
        return False


def attempt(where: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a capture function; a failure is counted and ``None`` returned."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        capture_failed(where, exc)
        return None


def name_of(agent: Any) -> str | None:
    """An agent's name (or the string itself, or ``None``)."""
    if agent is None or isinstance(agent, str):
        return agent
    return getattr(agent, "name", None) or type(agent).__name__


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> Any:
    """A short, detached, JSON-friendly view of a message or reply (AG2 may mutate the original later)."""
    if isinstance(value, str):  # the common cases first: a message's text, a message dict
        return value if len(value) <= limit else value[:limit] + "…"
    if isinstance(value, dict):
        return _excerpt_dict(value, limit)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [excerpt(v, limit) for v in value[:20]]
    return excerpt(str(value), limit)


def _excerpt_dict(value: dict, limit: int) -> dict[str, Any]:
    """:func:`excerpt` of a message dict: its content, tool call ids and names, role and name."""
    out: dict[str, Any] = {}
    get = value.get
    if "content" in value:
        content = value["content"]
        out["content"] = content if type(content) is str and len(content) <= limit else excerpt(content, limit)
    calls = get("tool_calls")
    if calls:
        out["tool_calls"] = [{"id": c.get("id"), "name": (c.get("function") or {}).get("name")}
                             for c in calls if isinstance(c, dict)]
    function_call = get("function_call")
    if function_call:
        out["function_call"] = function_call.get("name")
    role, name = get("role"), get("name")
    if role is not None:
        out["role"] = role
    if name is not None:
        out["name"] = name
    return out


def message_text(message: Any) -> str:
    """The text stored in ``messages.content``: the content, or the tool calls when there is none."""
    if isinstance(message, str):
        return message
    if isinstance(message, dict):
        content = message.get("content")
        if isinstance(content, str) and content:
            return content
        calls = message.get("tool_calls")
        if calls:
            return json.dumps([{"id": c.get("id"), "function": c.get("function")} for c in calls], default=str)
        return "" if content is None else json.dumps(content, default=str)
    return str(message)
