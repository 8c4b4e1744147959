"""The contract between the recorder and where its records go, after OpenTelemetry's ``SpanExporter``.

The recorder owns the queue, the writer thread, flush, close, fork and signals, and knows nothing of the backend;
a :class:`Sink` owns the destination: how queue items become its rows or messages, what is retried, what is kept
locally and which failures are the data's fault. A later exporter (OTLP, say) is another class with these methods.
"""

from typing import Any, NamedTuple, Protocol


class WriteResult(NamedTuple):
    """What became of the queue items handed to a sink (they add up to the items given)."""

    written: int = 0  # in the destination now
    spooled: int = 0  # kept locally, to be written later
    dropped: int = 0  # lost: could not even be kept locally


class Sink(Protocol):
    """Where the recorder's batches go. No method raises: failures are reported through ``on_error`` (given to the
    sink by the recorder) and in the result."""

    def write(self, items: list[tuple]) -> WriteResult:
        """Take one batch of queue items, tuples whose first field is the kind (see :mod:`capture.core.items`), on
        the writer thread."""
        ...

    def spill(self, items: list[tuple], *, newer: bool) -> WriteResult:
        """Keep items durable right now, on the caller's thread: the queue is full (``newer``: these items are
        newer than the queue) or the process is exiting with the writer stuck."""
        ...

    def idle(self) -> None:
        """The writer has nothing queued: retry what was kept earlier, if anything."""
        ...

    def after_fork(self) -> None:
        """In a forked child: let go of the parent's files and connections without closing them."""
        ...

    def close(self) -> None:
        """Release files and connections; what is kept locally stays for the next process."""
        ...

    def stats(self) -> dict[str, Any]:
        """Sink-specific health figures, merged into :meth:`capture.recorder.processor.Recorder.stats`."""
        ...
