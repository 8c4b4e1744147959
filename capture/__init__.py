"""skillmine capture: record what AG2 multi-agent runs do into the capture store, without slowing them down.

The manual API (``run``, ``node``, ``span``, ``record_*``, ``flush``, ``stats``) is re-exported here;
``instrument(target)`` / ``uninstrument(target)`` hook AG2 objects: AG2 Classic's (:mod:`capture.adapters.ag2_classic`)
or AG2 v1's (:mod:`capture.adapters.ag2_v1`), chosen by the object; imported only when called so that importing
``capture`` never imports AG2.
"""

from typing import Any

from capture.api import (
    annotate_run,
    configure,
    current_node_id,
    current_run_id,
    current_span_id,
    flush,
    get_recorder,
    node,
    record_broadcast,
    record_cost,
    record_event,
    record_file,
    record_message,
    run,
    shutdown,
    span,
    stats,
)
from capture.core.context import bind
from capture.core.settings import CaptureSettings


def instrument(target: Any) -> Any:
    """Hook an AG2 object (Classic agent, group chat, pattern, ...; or v1 agent, list of agents, network hub) into
    capture; see :mod:`capture.adapters.ag2_classic` and :mod:`capture.adapters.ag2_v1`."""
    from capture.adapters import adapter_for

    return adapter_for(target).instrument(target)


def uninstrument(target: Any) -> Any:
    """Undo :func:`instrument` for ``target``."""
    from capture.adapters import adapter_for

    return adapter_for(target).uninstrument(target)


__all__ = ["CaptureSettings", "annotate_run", "bind", "configure", "current_node_id", "current_run_id",
           "current_span_id", "flush", "get_recorder", "instrument", "node", "record_broadcast", "record_cost", "record_event", "record_file",
           "record_message", "run", "shutdown", "span", "stats", "uninstrument"]
