"""What the hot path puts on the recorder's queue: tuples whose first field is the item's kind.

Events, span completions and messages are the frequent items: one plain tuple each, laid out as the named tuples
:data:`EventItem`, :data:`EndItem` and :data:`MessageItem` (kind first), which name and document the fields. They
carry raw values and a :func:`capture.core.clock.stamp`, nothing encoded, so the caller's thread does as little as
possible; a sink turns them into its own rows on the writer thread (:mod:`capture.sinks.store_rows` for the capture
store, unpacking in field order), and ``EventItem._make(item)`` gives a named view where speed does not matter.
Building the named tuple itself on the hot path would cost about 0.3 us more per event than the plain tuple, and a
separate ``(kind, item)`` pair one more tuple per item for the allocator and the garbage collector. Runs, nodes,
edges, files and costs are rare and travel as ``(kind, row)`` pairs, the row a dict (column names of the store's
tables); a flush marker is ``(FLUSH, threading.Event)``.
"""

import itertools
import os
import uuid
from collections import namedtuple

# Queue item kinds. FLUSH carries a threading.Event the writer sets once everything before it is durable.
RUN, NODE, EDGE, EVENT, END, FILE, MESSAGE, COST, FLUSH = range(9)

# Where an event-like item sits (after its kind): its id, run (a RunState), node, parent event, nesting depth and
# execution order.
_PLACE = ("kind", "id", "run", "node_id", "parent_event_id", "depth", "execution_order")

EventItem = namedtuple("EventItem", [*_PLACE, "event_type", "event_subtype", "agent_name", "inputs", "outputs", "meta",
                                     "status", "error_message", "duration_ms", "at"])
EventItem.__doc__ = """One event. ``at`` is a stamp: the start of a running span, else the event's end (a finished
event with a ``duration_ms`` began that much earlier)."""

EndItem = namedtuple("EndItem", ["kind", "event_id", "started", "ended", "failed", "outputs", "meta", "error_message"])
EndItem.__doc__ = """A span's completion: two stamps, whether it failed, and ``outputs``/``meta`` (``None``:
unchanged)."""

MessageItem = namedtuple("MessageItem", [*_PLACE, "sender", "recipient", "content", "tokens", "silent", "meta", "at"])
MessageItem.__doc__ = """A message between agents: one ``message`` event plus its ``messages`` row. A list of
recipients is one silent group fan-out (a ``broadcast``)."""


class _Ids:
    """UUID-shaped ids, unique per process, ~10x cheaper than ``uuid.uuid4()``: a random prefix + a counter."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        raw = uuid.uuid4().hex
        self.prefix = f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-{'89ab'[int(raw[16], 16) % 4]}{raw[17:20]}-"
        self.counter = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self.counter):012x}"


IDS = _Ids()


def new_id() -> str:
    """A fresh UUID-shaped id for an event, node or run."""
    return IDS.new()
