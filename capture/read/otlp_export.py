"""Captured runs read from the store as OpenTelemetry GenAI spans, for ``skillmine export otlp``.

:func:`load_runs` reads a run's rows (or every run with events past a ``seq``); the spans themselves are built by
:class:`capture.otel.spans.SpanBuilder`, the builder the live sink (``capture.sinks.otlp_sink``) shares, and sent by
:func:`capture.otel.transport.send` (both re-exported here for the export's callers). Needs the ``skillmine[otel]``
extra; nothing in the recording path imports this module.
"""

from collections.abc import Iterator, Sequence

from sqlalchemy import Engine, select

from capture.otel.spans import RunRows, SpanBuilder, output_messages, to_otlp_json
from capture.otel.transport import send
from capture.read.queries import row_dict
from capture.store.models import COSTS, EVENTS, FILES, NODES, RUNS

__all__ = ["RunRows", "SpanBuilder", "load_runs", "output_messages", "send", "to_otlp_json"]


def load_runs(engine: Engine, *, run_ids: Sequence[str] = (), since_seq: int | None = None) -> Iterator[RunRows]:
    """The rows of the named runs, or of every run with events past ``since_seq`` (only those events then)."""
    with engine.connect() as conn:
        if since_seq is not None:
            run_ids = list(conn.execute(select(EVENTS.c.run_id).where(EVENTS.c.seq > since_seq)
                                        .group_by(EVENTS.c.run_id).order_by(EVENTS.c.run_id)).scalars())
        for run_id in run_ids:
            run = conn.execute(select(RUNS).where(RUNS.c.id == run_id)).first()
            if run is None:
                raise LookupError(f"run {run_id}: not in the store")
            events = select(EVENTS).where(EVENTS.c.run_id == run_id).order_by(EVENTS.c.execution_order,
                                                                               EVENTS.c.seq)
            if since_seq is not None:
                events = events.where(EVENTS.c.seq > since_seq)
            yield RunRows(
                row_dict(run), [row_dict(r) for r in conn.execute(events)],
                [row_dict(r) for r in conn.execute(select(NODES).where(NODES.c.run_id == run_id))],
                [row_dict(r) for r in conn.execute(select(FILES).where(FILES.c.run_id == run_id))],
                [row_dict(r) for r in conn.execute(select(COSTS).where(COSTS.c.run_id == run_id))])
