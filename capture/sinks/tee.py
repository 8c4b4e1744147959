"""Two sinks fed the same batches: the capture store (the record of truth) and a live exporter beside it.

What the recorder counts (written, spooled, dropped) is the first sink's; the second's figures are merged into
:meth:`TeeSink.stats` under its own names (the first's win where both report one). Neither sink raises, so one
failing never costs the other its batch.
"""

from typing import Any

from capture.sinks.base import Sink, WriteResult


class TeeSink:
    """A :class:`capture.sinks.base.Sink` handing every batch to ``first`` and then to ``second``."""

    def __init__(self, first: Sink, second: Sink) -> None:
        self.first, self.second = first, second

    def write(self, items: list[tuple]) -> WriteResult:
        """Both write the batch; the first's result is the recorder's."""
        result = self.first.write(items)
        self.second.write(items)
        return result

    def spill(self, items: list[tuple], *, newer: bool) -> WriteResult:
        """Both keep the items; the first's result is the recorder's."""
        result = self.first.spill(items, newer=newer)
        self.second.spill(items, newer=newer)
        return result

    def idle(self) -> None:
        """Both retry what they kept."""
        self.first.idle()
        self.second.idle()

    def after_fork(self) -> None:
        """Both let go of the parent's files and connections."""
        self.first.after_fork()
        self.second.after_fork()

    def close(self) -> None:
        """Both close."""
        self.first.close()
        self.second.close()

    def stats(self) -> dict[str, Any]:
        """The second's figures overlaid with the first's."""
        return {**self.second.stats(), **self.first.stats()}
