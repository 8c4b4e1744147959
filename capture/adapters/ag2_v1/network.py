"""AG2 v1 networks (``ag2.network``): a hub listener records what is said, who speaks after whom, channel ends and
failed turns.

Each channel is one capture scope. A channel opened inside a ``capture.run()`` records into that run; otherwise the
listener opens a run (and one node for the channel) in a private copy of the context and closes it with the channel.
Agent turns the hub starts for that channel find the run through the channel in their ``Context`` (see
:func:`channel_scope`), so a whole workflow lands in one run whichever task drives each turn. Network ids are random
hex: events carry agent *names* (``hub.name_for``). Agents registered with ``hub.register`` after the hub was
instrumented are instrumented with it; instrument agents registered otherwise (or earlier) yourself.
"""

import contextvars
import functools
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from capture import api
from capture.adapters import patching
from capture.adapters.guarded import attempt
from capture.core.context import current_node_var, current_run_var, current_span_var

CHANNEL_DEPENDENCY = "ag2.network.channel"
SPEECH = frozenset({"ag2.msg.text", "ag2.packet"})
ENDS = frozenset({"closed", "expired"})


class ChannelScope:
    """Where a channel's events go: a copied context holding its run (and node), plus what closes them."""

    def __init__(self, channel_id: str, kind: str) -> None:
        self.context = contextvars.copy_context()
        self.handles: list[Any] = []
        if self.context.run(current_run_var.get) is None:
            for handle in (api.run(f"{kind} channel", meta={"source": "ag2v1", "entry": "network",
                                                                  "channel_id": channel_id}),
                           api.node(kind, node_type="channel", meta={"channel_id": channel_id})):
                self.context.run(handle.__enter__)
                self.handles.append(handle)

    def record(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call a capture function inside the channel's context."""
        return self.context.run(fn, *args, **kwargs)

    def fail(self, message: str) -> None:
        """Mark the run this scope opened failed (it still closes with the channel)."""
        if self.handles:
            self.handles[0].fail(message)

    def close(self) -> None:
        """Close the run and node this scope opened (innermost first)."""
        for handle in reversed(self.handles):
            self.context.run(handle.__exit__, None, None, None)
        self.handles.clear()


_scopes: dict[str, ChannelScope] = {}
_lock = threading.Lock()


@contextmanager
def channel_scope(context: Any) -> Iterator[bool]:
    """Join the run of the channel an agent turn belongs to (when that turn starts outside any run); yields
    whether it did."""
    channel = (getattr(context, "dependencies", None) or {}).get(CHANNEL_DEPENDENCY)
    scope = _scopes.get(getattr(channel, "channel_id", None)) if channel is not None else None
    if scope is None:
        yield False
        return
    tokens = [(var, var.set(scope.context.get(var))) for var in (current_run_var, current_node_var,
                                                                  current_span_var)]
    try:
        yield True
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def _closing(state: Any) -> bool:
    """Whether the turn just folded ends the channel (a workflow's terminate target or its turn cap), so that nobody
    follows it."""
    if getattr(state, "pending_close_reason", ""):
        return True
    limit = (getattr(state, "graph_data", None) or {}).get("max_turns")
    return limit is not None and getattr(state, "turn_count", 0) >= limit


class CaptureListener:
    """A ``HubListener``: what each participant said (``message``), speaker transitions (``handoff``/``transition``),
    channel ends (``info``), failed turns (``error``)."""

    def __init__(self, hub: Any) -> None:
        self._hub = weakref.ref(hub)  # the hub holds this listener
        self.channels: set[str] = set()  # its channels with an open scope

    @property
    def hub(self) -> Any:
        return self._hub()

    def _name(self, agent_id: str | None) -> str | None:
        return self.hub.name_for(agent_id, default=agent_id) if agent_id else None

    async def on_channel_event(self, channel_id: str, kind: str, payload: dict) -> None:
        if not patching.is_active(self.hub):
            return
        if kind == "opened":
            metadata = payload.get("metadata")
            channel_type = getattr(getattr(metadata, "manifest", None), "type", "channel")
            scope = attempt("v1.channel.open", ChannelScope, channel_id, channel_type)
            if scope is not None:
                with _lock:
                    _scopes[channel_id] = scope
                    self.channels.add(channel_id)
        elif kind in ENDS:
            self.end(channel_id, payload.get("reason") or kind)

    def end(self, channel_id: str, reason: str) -> None:
        """The channel is over: its ``termination`` event, then its scope closes."""
        with _lock:
            scope = _scopes.pop(channel_id, None)
            self.channels.discard(channel_id)
        if scope is not None:
            attempt("v1.channel.end", scope.record, api.record_event, "info", "termination",
                    outputs={"reason": reason}, meta={"channel_id": channel_id})
            attempt("v1.channel.close", scope.close)

    def end_all(self, reason: str) -> None:
        """End every channel of this hub still open (the hub closes without closing them)."""
        for channel_id in sorted(self.channels):
            self.end(channel_id, reason)

    async def on_envelope_posted(self, envelope: Any, metadata: Any) -> None:
        scope = _scopes.get(envelope.channel_id)
        if scope is None or envelope.event_type not in SPEECH or not patching.is_active(self.hub):
            return
        attempt("v1.message", self._message, scope, envelope, metadata)
        state = attempt("v1.channel.state", self.hub.adapter_state, envelope.channel_id)
        following = getattr(state, "expected_next_speaker", None)
        if following is None or _closing(state):
            return
        speaker, target = self._name(envelope.sender_id), self._name(following)
        attempt("v1.transition", scope.record, api.record_event, "handoff", "transition", agent_name=target,
                inputs={"from": speaker, "to": target},
                meta={"method": metadata.manifest.type, "channel_id": envelope.channel_id,
                      "envelope_id": envelope.envelope_id, "turn": getattr(state, "turn_count", None)})

    def _message(self, scope: ChannelScope, envelope: Any, metadata: Any) -> None:
        """The speech as a ``message``: a ``broadcast`` to the other participants (the audience, when one is set)."""
        sender = self._name(envelope.sender_id)
        audience = envelope.audience or [p.agent_id for p in metadata.participants if p.agent_id != envelope.sender_id]
        data = envelope.event_data or {}
        content = data.get("text", data.get("body", ""))
        meta = {"channel_id": envelope.channel_id, "envelope_id": envelope.envelope_id, "kind": envelope.event_type}
        recipients = [self._name(agent_id) for agent_id in audience]
        if len(recipients) == 1:
            scope.record(api.record_message, sender, recipients[0], content, meta=meta)
        else:
            scope.record(api.record_broadcast, sender, recipients, content, meta=meta)

    async def on_turn_failed(self, channel_id: str, agent_id: str, envelope_id: str, exc: BaseException) -> None:
        scope = _scopes.get(channel_id)
        if scope is not None and patching.is_active(self.hub):
            attempt("v1.turn_failed", scope.fail, f"turn of {self._name(agent_id)} failed: {type(exc).__name__}: {exc}")
            attempt("v1.turn_failed", scope.record, api.record_event, "error", "turn_failed",
                    agent_name=self._name(agent_id), error_message=f"{type(exc).__name__}: {exc}", status="failed",
                    meta={"channel_id": channel_id, "envelope_id": envelope_id})


_listeners: "weakref.WeakKeyDictionary[Any, CaptureListener]" = weakref.WeakKeyDictionary()
_registered: "weakref.WeakKeyDictionary[Any, list[Any]]" = weakref.WeakKeyDictionary()  # agents the hub instrumented


def _wrap_register(hub: Any, original: Any, instrument_agent: Any) -> Any:
    @functools.wraps(original)
    async def register(agent: Any, *args: Any, **kwargs: Any) -> Any:
        if patching.is_active(hub) and not patching.is_active(agent):
            attempt("v1.hub.register", instrument_agent, agent)
            if patching.is_active(agent):
                _registered.setdefault(hub, []).append(agent)
        return await original(agent, *args, **kwargs)

    return register


def _wrap_close(hub: Any, original: Any) -> Any:
    @functools.wraps(original)
    async def close(*args: Any, **kwargs: Any) -> Any:
        try:
            return await original(*args, **kwargs)
        finally:
            listener = _listeners.get(hub)
            if listener is not None:
                attempt("v1.hub.close", listener.end_all, "hub_closed")

    return close


def instrument_hub(hub: Any, instrument_agent: Any) -> None:
    """Register the capture listener on ``hub``, instrument every agent registered through ``hub.register`` from now
    on with ``instrument_agent``, and end the runs of channels still open when the hub closes (idempotent)."""
    if patching.activate(hub):
        listener = CaptureListener(hub)
        _listeners[hub] = listener
        hub.register_listener(listener)
        patching.patch(hub, "register", lambda original: _wrap_register(hub, original, instrument_agent))
        patching.patch(hub, "close", lambda original: _wrap_close(hub, original))


def uninstrument_hub(hub: Any, uninstrument_agent: Any) -> None:
    """Remove the capture listener from ``hub`` and undo the agents it instrumented."""
    listener = _listeners.pop(hub, None)
    if listener is not None:
        hub.unregister_listener(listener)
    for agent in _registered.pop(hub, []):
        uninstrument_agent(agent)
    patching.restore(hub)
