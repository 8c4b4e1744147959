"""Token sequences from execution events.

A token names one step: ``"<event_type>:<agent>"``, plus the tool name for ``tool_call``
(``tool_call:control:record_status``) and an outcome marker for ``code_exec``
(``code_exec:executor:ok`` / ``code_exec:executor:fail``).

Granularity (which event types become tokens):

- ``coarse``: ``agent_call`` only.
- ``standard``: ``agent_call``, ``tool_call``, ``code_exec``, ``approval_requested``, ``error``.
- ``fine``: every event type (unknown types included) except ``message`` and ``llm_call``,
  which duplicate ``agent_call``; ``file_gen`` carries the file type.

Call-like events may be recorded as a ``start`` and a later ``complete``/``error`` event; one
token is emitted per call (the start), and the completion only updates its outcome marker.

Plumbing agents (chat manager, tool executor, user proxy) are not steps: their tool and code executions are
attributed to the calling agent (``roles.attribute_callers``), and an agent's ``agent_call`` immediately followed
by its own tool call or code execution is absorbed into that one step (``control`` asking for ``record_status``
is the single step ``tool_call:control:record_status``).
"""
from __future__ import annotations

import functools
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .roles import attribute_callers

GRANULARITIES = ("coarse", "standard", "fine")

CALL_LIKE = frozenset({"agent_call", "llm_call", "tool_call", "code_exec"})
_TYPES_BY_GRANULARITY: dict[str, frozenset[str] | None] = {
    "coarse": frozenset({"agent_call"}),
    "standard": frozenset({"agent_call", "tool_call", "code_exec", "approval_requested", "error"}),
    "fine": None,  # everything except _NOISE
}
_NOISE = frozenset({"message", "llm_call"})
_FAILED_STATUSES = frozenset({"failed", "error", "errored", "failure"})
_UNSAFE = re.compile(r"[\s:]+")


def normalise_agent(name: Any) -> str:
    """Agent name as used in tokens: None/empty -> 'unknown'; spaces and colons -> '_'."""
    if name is None:
        return "unknown"
    text = _UNSAFE.sub("_", str(name).strip())
    return text or "unknown"


def normalise_tool(name: Any) -> str:
    """Tool name as used in tokens: drops AG2's ``_closure`` suffix; None -> 'unknown'."""
    if name is None:
        return "unknown"
    text = _UNSAFE.sub("_", str(name).strip())
    text = text.removesuffix("_closure")
    return text or "unknown"


def _meta(event: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = event.get("meta")
    return meta if isinstance(meta, Mapping) else {}


def tool_name(event: Mapping[str, Any]) -> str:
    meta = _meta(event)
    name = meta.get("tool_name")
    if name is None:
        inputs = event.get("inputs")
        if isinstance(inputs, Mapping):
            name = inputs.get("tool_name") or inputs.get("name")
    return normalise_tool(name)


def code_exec_failed(event: Mapping[str, Any]) -> bool:
    """True when a code_exec event reports a nonzero exit code or a failed status."""
    meta = _meta(event)
    code = meta.get("exit_code")
    if code is None and isinstance(event.get("outputs"), Mapping):
        code = event["outputs"].get("exit_code")
    if code is not None:
        try:
            return int(code) != 0
        except (TypeError, ValueError):
            return True
    status = str(event.get("status") or "").lower()
    return status in _FAILED_STATUSES or str(event.get("event_subtype") or "").lower() == "error"


def event_token(event: Mapping[str, Any], granularity: str = "standard") -> str | None:
    """The token for one event, or None when the granularity drops it."""
    if granularity not in _TYPES_BY_GRANULARITY:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    etype = _UNSAFE.sub("_", str(event.get("event_type") or "unknown").strip()) or "unknown"
    keep = _TYPES_BY_GRANULARITY[granularity]
    if (keep is not None and etype not in keep) or (keep is None and etype in _NOISE):
        return None
    agent = normalise_agent(event.get("agent_name"))
    if etype == "tool_call":
        return f"tool_call:{agent}:{tool_name(event)}"
    if etype == "code_exec":
        return f"code_exec:{agent}:{'fail' if code_exec_failed(event) else 'ok'}"
    if etype == "file_gen":
        ftype = _meta(event).get("file_type") or "file"
        return f"file_gen:{agent}:{normalise_tool(ftype)}"
    return f"{etype}:{agent}"


def parse_token(token: str) -> tuple[str, str, str | None]:
    """``'tool_call:control:record_status'`` -> ``('tool_call', 'control', 'record_status')``."""
    parts = token.split(":", 2)
    if len(parts) == 1:
        return parts[0], "unknown", None
    if len(parts) == 2:
        return parts[0], parts[1], None
    return parts[0], parts[1], parts[2]


def order_events(events: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Events in execution order: by ``execution_order`` then ``seq``.

    Events without an ``execution_order`` inherit the order of the event stored just before
    them (by ``seq``), so they stay where the store put them.
    """
    by_seq = sorted(events, key=lambda e: (e.get("seq") is None, e.get("seq") or 0))
    keyed = []
    last = None
    for i, ev in enumerate(by_seq):
        eo = ev.get("execution_order")
        if eo is None:
            eo = last if last is not None else float("-inf")
        else:
            last = eo
        keyed.append((eo, i, ev))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [ev for _, _, ev in keyed]


def token_events(
    events: Sequence[Mapping[str, Any]], granularity: str = "standard"
) -> list[tuple[str, Mapping[str, Any]]]:
    """(token, source event) pairs for the events of ONE run or node, in execution order."""
    out: list[list[Any]] = []
    pending: dict[tuple[str, str, str | None], list[int]] = defaultdict(list)
    for ev in attribute_callers(order_events(events)):
        tok = event_token(ev, granularity)
        if tok is None:
            continue
        etype = str(ev.get("event_type") or "")
        subtype = str(ev.get("event_subtype") or "").lower()
        if etype in CALL_LIKE:
            etype_, agent, _detail = parse_token(tok)
            key = (etype_, agent, tool_name(ev) if etype == "tool_call" else None)
            if subtype == "start":
                pending[key].append(len(out))
            elif subtype in ("complete", "completed", "error", "end") and pending[key]:
                idx = pending[key].pop()
                if etype == "code_exec":  # completion carries the outcome
                    out[idx][0] = tok
                # keep the richer event (completion has outputs / exit code)
                out[idx][1] = {**out[idx][1], **{k: v for k, v in ev.items() if v is not None}}
                continue
        out.append([tok, ev])
    return _absorb_own_calls([(t, e) for t, e in out])


_ACTING = ("tool_call:", "code_exec:")


def _absorb_own_calls(pairs: list[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, Mapping[str, Any]]]:
    """Drop an ``agent_call:X`` token directly followed by a tool call or code execution of the same agent X."""
    kept = []
    for i, (tok, ev) in enumerate(pairs):
        if tok.startswith("agent_call:") and i + 1 < len(pairs):
            nxt = pairs[i + 1][0]
            if nxt.startswith(_ACTING) and parse_token(nxt)[1] == tok.split(":", 1)[1]:
                continue
        kept.append((tok, ev))
    return kept


def run_token_events(
    events: Iterable[Mapping[str, Any]], granularity: str = "standard"
) -> dict[str, list[tuple[str, Mapping[str, Any]]]]:
    """Per run: (token, event) pairs."""
    by_run: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for ev in events:
        by_run[str(ev.get("run_id"))].append(ev)
    return {rid: token_events(evs, granularity) for rid, evs in sorted(by_run.items())}


def run_sequences(
    events: Iterable[Mapping[str, Any]], granularity: str = "standard"
) -> dict[str, list[str]]:
    """Per run: the token sequence (runs with no kept events map to an empty list)."""
    return {rid: [t for t, _ in te] for rid, te in run_token_events(events, granularity).items()}


def node_sequences(
    events: Iterable[Mapping[str, Any]], granularity: str = "standard"
) -> dict[tuple[str, str | None], list[str]]:
    """Per (run_id, node_id): the token sequence. Events without a node go under node_id None."""
    by_node: dict[tuple[str, str | None], list[Mapping[str, Any]]] = defaultdict(list)
    for ev in events:
        nid = ev.get("node_id")
        by_node[(str(ev.get("run_id")), None if nid is None else str(nid))].append(ev)
    keys = sorted(by_node, key=lambda k: (k[0], k[1] is not None, k[1] or ""))
    return {k: [t for t, _ in token_events(by_node[k], granularity)] for k in keys}


# --- canonical form used for clustering and patterns ---------------------------------------

def canonical_token(token: str) -> str | None:
    """Token as used for clustering: code_exec outcome dropped, error tokens dropped (None).

    Failed attempts of a retry loop then look like the successful attempt, so the loop
    collapses to one block and retry variants cluster with the clean run.
    """
    if token.startswith("error:"):
        return None
    if token.startswith("code_exec:"):
        etype, agent, _ = parse_token(token)
        return f"{etype}:{agent}"
    return token


def canonical_sequence(tokens: Sequence[str]) -> list[str]:
    return [c for c in (canonical_token(t) for t in tokens) if c is not None]


@functools.lru_cache(maxsize=65_536)
def _canonical_of(tokens: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(canonical_sequence(tokens))


def canonical_tuple(tokens: Sequence[str]) -> tuple[str, ...]:
    """``canonical_sequence`` as a tuple, cached: the runs of a skill share a few sequences, so a group of
    thousands of members canonicalises a handful."""
    return _canonical_of(tuple(tokens))
