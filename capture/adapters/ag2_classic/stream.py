"""An IOStream tee: AG2's semantic events (handoffs, termination, errors) become capture events; every call is
forwarded unchanged to the stream it wraps, so what the user sees (console, ``run()`` responses) is untouched."""

from typing import Any

from capture import api
from capture.adapters.ag2_classic.threads import ChatState
from capture.adapters.guarded import attempt, name_of

# AG2 event class -> handoff mechanism.
HANDOFF_EVENTS = {
    "AfterWorksTransitionEvent": "after_work",
    "OnConditionLLMTransitionEvent": "llm_condition",
    "OnContextConditionTransitionEvent": "context_condition",
    "ReplyResultTransitionEvent": "reply_result",
}
RECORDED = frozenset(HANDOFF_EVENTS) | {"TerminationEvent", "ErrorEvent"}
_UNRECORDED: set[type] = set()  # event classes seen whose name is not in RECORDED


class CaptureTee:
    """Wraps the active IOStream for one chat; records what AG2 announces only through events."""

    def __init__(self, inner: Any, chat: ChatState) -> None:
        self._inner, self._chat = inner, chat

    def print(self, *objects: Any, sep: str = " ", end: str = "\n", flush: bool = False) -> None:
        self._inner.print(*objects, sep=sep, end=end, flush=flush)

    def input(self, prompt: str = "", *, password: bool = False) -> str:
        return self._inner.input(prompt, password=password)

    def send(self, message: Any) -> None:
        event = getattr(message, "content", message)
        kind = type(event)
        if kind not in _UNRECORDED:  # most events (every message printed) are skipped by one set look-up
            if kind.__name__ in RECORDED:
                attempt("stream", self._record, kind.__name__, event)
            else:
                _UNRECORDED.add(kind)
        self._inner.send(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _record(self, kind: str, event: Any) -> None:
        if kind in HANDOFF_EVENTS:
            target = event.transition_target
            target_name = target.display_name() if hasattr(target, "display_name") else str(target)
            source = name_of(event.source_agent)
            self._chat.pending_targets[target_name] = HANDOFF_EVENTS[kind]
            api.record_event("handoff", HANDOFF_EVENTS[kind], agent_name=source,
                                 inputs={"from": source, "to": target_name},
                                 meta={"target_type": type(target).__name__, "ag2_event": kind})
        elif kind == "TerminationEvent":
            api.record_event("info", "termination", agent_name=name_of(event.sender),
                                 outputs={"reason": event.termination_reason},
                                 meta={"recipient": name_of(event.recipient)})
        else:
            api.record_event("error", "ag2", error_message=str(event.error), status="failed")
