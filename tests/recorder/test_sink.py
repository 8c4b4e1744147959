"""The recorder drives any Sink: queue items laid out as capture.core.items' named tuples, results counted in stats."""

import threading
from typing import Any

from capture.core.items import END, EVENT, MESSAGE, RUN, EndItem, EventItem, MessageItem
from capture.recorder.processor import Recorder
from capture.sinks.base import WriteResult


class ListSink:
    """A sink that keeps what it is given (another destination than the store, as an OTLP exporter would be)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, Any]] = []
        self.threads: set[str] = set()
        self.closed = False

    def write(self, items: list[tuple[int, Any]]) -> WriteResult:
        self.items.extend(items)
        self.threads.add(threading.current_thread().name)
        return WriteResult(written=len(items))

    def spill(self, items: list[tuple[int, Any]], *, newer: bool) -> WriteResult:
        return WriteResult(dropped=len(items))

    def idle(self) -> None:
        pass

    def after_fork(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def stats(self) -> dict[str, Any]:
        return {"spool_pending": 0, "database_available": True}


def test_a_custom_sink_gets_named_items_on_the_writer_thread(settings_for):
    sink = ListSink()
    recorder = Recorder(settings_for("sqlite://"), sink=sink, install_exit_handlers=False)
    try:
        run = recorder.open_run(name="r")
        eid = recorder.event(run, "tool_call", "start", "node-1", None, 1, "engineer", {"a": 1}, None, None,
                             "running", None, None, 123)
        recorder.end_span(eid, 123, False, {"ok": True}, None, None)
        mid = recorder.message(run, "node-1", eid, 2, "engineer", ["a", "b"], "hi", 5, True, None)
        assert recorder.flush(10)
        stats = recorder.stats()
    finally:
        recorder.close()
    kinds = [kind for kind, _ in sink.items]
    assert kinds == [RUN, EVENT, END, MESSAGE]
    event = EventItem._make(sink.items[1][1])
    assert (event.id, event.run, event.node_id, event.execution_order, event.event_type, event.event_subtype,
            event.agent_name, event.inputs, event.status, event.at) == (eid, run, "node-1", 1, "tool_call", "start",
                                                                        "engineer", {"a": 1}, "running", 123)
    end = EndItem._make(sink.items[2][1])
    assert (end.event_id, end.started, end.failed, end.outputs) == (eid, 123, False, {"ok": True})
    assert isinstance(end.ended, int) and end.ended > 123
    message = MessageItem._make(sink.items[3][1])
    assert (message.id, message.parent_event_id, message.depth, message.execution_order, message.recipient,
            message.silent, message.tokens) == (mid, eid, 2, 2, ["a", "b"], True, 5)
    assert sink.threads == {"skillmine-writer"} and sink.closed
    assert stats["written"] == 4 and stats["dropped"] == 0 and stats["capture_rate"] == 1.0
