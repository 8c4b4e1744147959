"""Capture raises no audit events of its own on the agents' thread.

The tool-write watch (``capture.adapters.common``) installs a process-wide audit hook at the first watched tool
call, and from then on every audit event in the process calls it. An ``id()`` raises one (``builtins.id``): when the
adapter keyed its registries by ``id(obj)``, 480 of the 817 audit events of the overhead benchmark's run were
capture's own, ~1.1 M instructions per 40-round run (benchmarks/RESULTS.md, "the recorder-split regression found").
"""

import sys
import threading
from collections import Counter

from ag2_scenarios import two_agent_tool_chat

import capture

_counts: Counter[str] = Counter()
_watched: dict[str, int | None] = {"thread": None}


def _count(event: str, args: tuple) -> None:
    if threading.get_ident() == _watched["thread"]:
        _counts[event] += 1


def _audit_events_of_chat(instrumented: bool) -> Counter[str]:
    """Audit events raised on this thread while the two-agent tool chat runs."""
    _counts.clear()
    _watched["thread"] = threading.get_ident()
    try:
        two_agent_tool_chat(capture.instrument if instrumented else None)
    finally:
        _watched["thread"] = None
    return Counter(_counts)


def test_a_captured_chat_raises_the_audit_events_of_the_uncaptured_chat_only(stored) -> None:
    sys.addaudithook(_count)  # stays for the process (hooks cannot be removed); counts only while a chat is watched
    _audit_events_of_chat(True)  # installs the tool-write hook and fills first-call caches
    uncaptured = _audit_events_of_chat(False)
    captured = _audit_events_of_chat(True)
    tool_calls = stored.events("tool_call")
    assert len(tool_calls) == 2 and {e["status"] for e in tool_calls} == {"completed"}  # the watched tool ran
    assert captured == uncaptured, (captured, uncaptured)
