"""The recorder drives any Sink: queue items laid out as capture.core.items' named tuples (kind first), results counted
in stats."""

import threading
from typing import Any

from capture.api import Span
from capture.core.items import END, EVENT, MESSAGE, RUN, EndItem, EventItem, MessageItem
from capture.recorder.processor import Recorder
from capture.sinks.base import WriteResult


class ListSink:
    """A sink that keeps what it is given (another destination than the store, as an OTLP exporter would be)."""

    def __init__(self) -> None:
        self.items: list[tuple] = []
        self.threads: set[str] = set()
        self.closed = False

    def write(self, items: list[tuple]) -> WriteResult:
        self.items.extend(items)
        self.threads.add(threading.current_thread().name)
        return WriteResult(written=len(items))

    def spill(self, items: list[tuple], *, newer: bool) -> WriteResult:
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
    kinds = [item[0] for item in sink.items]
    assert kinds == [RUN, EVENT, END, MESSAGE]
    assert sink.items[0][1]["id"] == run.id  # a rare kind travels as a (kind, row) pair
    event = EventItem._make(sink.items[1])
    assert (event.kind, event.id, event.run, event.node_id, event.execution_order, event.event_type,
            event.event_subtype, event.agent_name, event.inputs, event.status, event.at) == (
        EVENT, eid, run, "node-1", 1, "tool_call", "start", "engineer", {"a": 1}, "running", 123)
    end = EndItem._make(sink.items[2])
    assert (end.kind, end.event_id, end.started, end.failed, end.outputs) == (END, eid, 123, False, {"ok": True})
    assert isinstance(end.ended, int) and end.ended > 123
    message = MessageItem._make(sink.items[3])
    assert (message.kind, message.id, message.parent_event_id, message.depth, message.execution_order,
            message.recipient, message.silent, message.tokens) == (MESSAGE, mid, eid, 2, 2, ["a", "b"], True, 5)
    assert sink.threads == {"skillmine-writer"} and sink.closed
    assert stats["written"] == 4 and stats["dropped"] == 0 and stats["capture_rate"] == 1.0


def test_payloads_are_copied_when_queued_unless_handed_over(settings_for):
    sink = ListSink()
    recorder = Recorder(settings_for("sqlite://"), sink=sink, install_exit_handlers=False)
    given, handed = {"a": 1}, {"b": 2}
    try:
        with Span(recorder, "tool_call", "x", given, None, "start", None) as outer:
            given["a"] = 99  # the caller keeps changing its dict after the span started
            with Span(recorder, "tool_call", "x", handed, None, "start", None, copies=False) as inner:
                assert (inner.run, inner.depth, inner.node_id) == (outer.run, 1, None)  # a span is its own state
        assert recorder.flush(10)
    finally:
        recorder.close()
    starts = [EventItem._make(item) for item in sink.items if item[0] == EVENT]
    assert [event.inputs for event in starts] == [{"a": 1}, {"b": 2}]
    assert starts[0].inputs is not given and starts[1].inputs is handed
    assert starts[1].parent_event_id == outer.id
