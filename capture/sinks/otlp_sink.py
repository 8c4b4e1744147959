"""The live OTLP sink: the recorder's batches exported over OTLP/HTTP as GenAI spans while the run records.

The spans are the ones ``skillmine export otlp`` builds from the store for the same run: the rows come from the
store sink's own :class:`~capture.sinks.store_rows.RowBuilder` (redacted and encoded as the store gets them), the
store's row preparation (:mod:`capture.store.records`, plus the tables' insert defaults) and the shared
:class:`capture.otel.spans.SpanBuilder`. A span cannot change once sent, so an event is held from its start item
until its end item; a completed event (a message, a point event) is built at once; a ``file_gen`` event waits for
its file row for at most one more write. The run's ``invoke_workflow`` root span is built when the run closes, with
the run's DAG nodes and the files and costs no event claimed. Built spans go to a
:class:`~capture.otel.sender.SpanSender`, whose own thread sends them: a slow or dead endpoint holds up neither an
agent nor the recorder's writer (nor the store sink beside it); it retries after a back-off and counts drops.

Bounds: at most ``max_held`` open events, completions whose start has not arrived, DAG nodes of open runs and file
and cost rows waiting for their span, together; past that the oldest open event is exported unfinished
(``skillmine.event.open``, as the store export shows an event still running; its end, when it comes, is counted in
``otlp_unmatched_ends``), then the oldest open run's root span goes out with the nodes, files and costs held so far
(and again at the run's close, with the later ones). Spans waiting for the endpoint are capped at ``max_pending`` (the oldest are
dropped). At close every open event is exported unfinished and every open run's root span as it stands, in one last
pass (none if the endpoint failed last); what is not sent then is dropped. Drops are counted
(``otlp_dropped_spans`` in :meth:`OtlpSink.stats`) and said at close. Nothing is spooled to disk: a trace backend is
not the record of truth (the store is; ``sink="store+otlp"`` keeps both). Imported on the writer thread, and only
when configured.
"""

import logging
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings
from capture.otel.sender import SpanSender
from capture.otel.spans import RunRows, SpanBuilder
from capture.otel.transport import OtlpTransport
from capture.sinks.base import WriteResult
from capture.sinks.store_rows import RowBuilder
from capture.store.bulk import SHAPES
from capture.store.records import prepare_cost, prepare_event, prepare_file, prepare_node, prepare_run

log = logging.getLogger(__name__)

MAX_HELD = 10_000
MAX_PENDING = 20_000
EXPORT_TIMEOUT_S = 5.0  # per request, the SDK exporter's own retries included
ARTEFACTS = ("files", "costs")  # rows linked to an event (or, without one, to the run)
# How the store prepares each kind of row, and the table whose insert defaults it then gets.
PREPARE = {"runs": (prepare_run, "workflow_runs"), "nodes": (prepare_node, "dag_nodes"),
           "files": (prepare_file, "files"), "costs": (prepare_cost, "cost_records")}
# Each table's constant insert defaults (a function default, e.g. a time, the store takes at its own insert).
DEFAULTS = {table: {c: v for c, v, call in SHAPES[table].defaults if not call} for _, table in PREPARE.values()}


class OtlpSink:
    """A :class:`capture.sinks.base.Sink` exporting spans to ``settings.otlp_endpoint`` as the run records."""

    def __init__(self, settings: CaptureSettings, redactor: Redactor,
                 on_error: Callable[[str, BaseException | str], None], *, transport: OtlpTransport | None = None,
                 max_held: int = MAX_HELD, max_pending: int = MAX_PENDING) -> None:
        self.settings = settings
        self._on_error = on_error
        self._rows = RowBuilder(redactor, settings.max_payload_bytes)
        self._builder = SpanBuilder(content=settings.otlp_content, redactor=redactor)
        self._transport = transport
        self.max_held, self.max_pending = max_held, max_pending
        self._sender = SpanSender(self._connection, on_error, max_pending=max_pending)
        self._reset()

    def _reset(self) -> None:
        """Empty state and zero counts (a new sink, or a forked child's)."""
        self._runs: dict[str, dict[str, Any]] = {}  # run id -> the run's row so far, while it is open
        self._nodes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)  # run id -> node id -> row
        self._open: OrderedDict[str, dict[str, Any]] = OrderedDict()  # event id -> start row, until its end
        self._early: OrderedDict[str, dict[str, Any]] = OrderedDict()  # event id -> end changes, before its start
        self._finished: list[dict[str, Any]] = []  # event rows to build spans from
        self._waiting_files: set[str] = set()  # file_gen events already kept back once for their file row
        self._closing: dict[str, None] = {}  # runs whose root span is due, in order
        self._artefacts: dict[str, dict[tuple[str, str | None], list[dict[str, Any]]]] = {
            kind: defaultdict(list) for kind in ARTEFACTS}  # (run id, event id) -> rows
        self._spilled: deque[tuple] = deque()  # items handed over on a caller's thread
        self._counts = dict.fromkeys(("bad_records", "evicted_events", "unmatched_ends", "late_artefacts",
                                      "late_nodes"), 0)

    # -- the Sink protocol -----------------------------------------------------------------------------------

    def write(self, items: list[tuple]) -> WriteResult:
        """Take a batch into the held state, then build and send the spans it completed."""
        try:
            self._take(items)
        except Exception as exc:  # noqa: BLE001 - a capture bug must not cost more than this batch
            self._on_error("otlp prepare", exc)
            return WriteResult(dropped=len(items))
        self._send()
        return WriteResult(written=len(items))

    def spill(self, items: list[tuple], *, newer: bool) -> WriteResult:
        """Keep items for the writer (a caller's thread: one append, nothing built or sent here). They are newer
        than the queue (or the queue's last, at exit), so they are taken once it is drained: in :meth:`idle`, or at
        close."""
        if len(self._spilled) + len(items) > self.max_pending:
            return WriteResult(dropped=len(items))
        self._spilled.extend(items)
        return WriteResult(spooled=len(items))

    def idle(self) -> None:
        """The queue is drained: take what callers spilled; send the ``file_gen`` spans kept back for their file."""
        if self._spilled:
            self.write(self._take_spilled())
        elif self._finished:
            self._send()

    def after_fork(self) -> None:
        """The parent's held events and pending spans stay the parent's; the child gets its own connection."""
        self._transport = None
        self._sender.after_fork()
        self._reset()

    def close(self) -> None:
        """Export every open event unfinished and every open run's root span, once; count and say what is lost."""
        try:
            self._take(self._take_spilled())
            self._finished.extend(self._open.values())
            self._open.clear()
            self._counts["unmatched_ends"] += len(self._early)
            self._early.clear()
            self._waiting_files.update(r["id"] for r in self._finished)
            self._closing.update(dict.fromkeys(self._runs))
            self._send()
        except Exception as exc:  # noqa: BLE001 - a sink never raises
            self._on_error("otlp close", exc)
        self._sender.close(EXPORT_TIMEOUT_S + 1)
        dropped = self._sender.counts["dropped_spans"]
        if dropped:
            log.warning("skillmine capture: %d spans were not exported to %s (endpoint unavailable or too many "
                        "waiting)", dropped, self.settings.otlp_endpoint)

    def stats(self) -> dict[str, Any]:
        """Spans exported, dropped and pending, events held open, and whether the endpoint takes spans."""
        sender = self._sender.stats()
        pending = sender["pending_spans"] + len(self._finished)
        return {"spool_pending": pending, "bad_records": self._counts["bad_records"],
                "database_available": self._sender.available, "otlp_held_events": len(self._open),
                "otlp_held_nodes": sum(len(nodes) for nodes in self._nodes.values()),
                **{f"otlp_{k}": v for k, v in {**sender, **self._counts, "pending_spans": pending}.items()
                   if k != "bad_records"}}

    # -- held state ------------------------------------------------------------------------------------------

    def _take_spilled(self) -> list[tuple]:
        out = []
        while self._spilled:
            out.append(self._spilled.popleft())
        return out

    def _take(self, items: list[tuple]) -> None:
        """Merge a batch's rows into what is held: runs, nodes, open events, artefacts and finished events."""
        if not items:
            return
        batch = self._rows.batch(items)
        for row in batch["runs"]:
            self._runs.setdefault(row["id"], {}).update(row)
            if row.get("completed_at") is not None:
                self._closing[row["id"]] = None
        for row in batch["nodes"]:
            self._nodes[row["run_id"]].setdefault(row["id"], {}).update(row)
        for kind in ARTEFACTS:
            for row in batch[kind]:
                self._artefacts[kind][(row["run_id"], row.get("event_id"))].append(row)
        for row in batch["events"]:
            row.update(self._early.pop(row["id"], {}))
            if row["status"] == "running" and row["completed_at"] is None:
                self._open[row["id"]] = row
            else:
                self._finished.append(row)
        for changes in batch["event_updates"]:
            row = self._open.pop(changes["id"], None)
            if row is None:
                self._early[changes["id"]] = changes
            else:
                row.update(changes)
                self._finished.append(row)
        self._bound()

    def _held(self) -> int:
        return (len(self._open) + len(self._early) + sum(len(nodes) for nodes in self._nodes.values())
                + sum(len(rows) for held in self._artefacts.values() for rows in held.values()))

    def _bound(self) -> None:
        """Past ``max_held``: export the oldest open event unfinished, else let go of the oldest run's nodes, files
        and costs (with its root span, sent again at its close with what comes later)."""
        held = self._held()
        while held > self.max_held:
            if self._open:
                self._finished.append(self._open.popitem(last=False)[1])
                self._counts["evicted_events"] += 1
            elif self._early:
                self._early.popitem(last=False)
                self._counts["unmatched_ends"] += 1
            else:
                runs = [*self._nodes, *(key[0] for kind in ARTEFACTS for key in self._artefacts[kind])]
                if not runs:
                    return
                self._release(runs[0])
                now = self._held()
                if now >= held:  # only files and costs of events about to be sent: they go with them
                    return
                held = now
                continue
            held -= 1

    def _release(self, run_id: str) -> None:
        """Send the run's root span now (it stays open here); the nodes and artefacts of a run not open here (closed
        already) have no span to go with and are let go (the artefacts counted as late)."""
        if run_id in self._runs:
            self._build_root(run_id, keep_run=True)
            return
        self._nodes.pop(run_id, None)
        self._unclaimed(run_id)

    # -- spans -----------------------------------------------------------------------------------------------

    def _build(self) -> None:
        """Spans of the finished events (with their files and costs), then the root spans of closed runs."""
        by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
        keep = []
        for row in self._finished:
            eid = row["id"]
            if row["event_type"] == "file_gen" and eid not in self._waiting_files and \
                    (row["run_id"], eid) not in self._artefacts["files"]:
                self._waiting_files.add(eid)  # its file row is one item behind: give it one more write
                keep.append(row)
                continue
            self._waiting_files.discard(eid)
            prepared = self._prepared("events", row)
            if prepared is not None:
                by_run[row["run_id"]].append(prepared)
        self._finished = keep
        for run_id, events in by_run.items():
            linked = {kind: self._linked(kind, run_id, [e["id"] for e in events]) for kind in ARTEFACTS}
            self._sender.put(self._builder.event_spans(RunRows({"id": run_id}, events, [], **linked)))
        for run_id in list(self._closing):
            self._build_root(run_id)

    def _build_root(self, run_id: str, *, keep_run: bool = False) -> None:
        """Queue the run's workflow span (its files and costs no held event claims, late ones too, go with it) and
        let go of the run (``keep_run``: of its nodes only)."""
        self._closing.pop(run_id, None)
        self._sender.put([self._root_span(run_id, keep_run)])

    def _root_span(self, run_id: str, keep_run: bool) -> ReadableSpan:
        """The run's workflow span, built from the run's row, nodes and unclaimed files and costs."""
        linked = self._unclaimed(run_id)
        row = self._runs.get(run_id) if keep_run else self._runs.pop(run_id, None)
        run = (self._prepared("runs", row) if row else None) or {"id": run_id, "session_id": None}
        return self._builder.workflow_span(RunRows(run, [], self._whole_nodes(run_id), **linked))

    def _whole_nodes(self, run_id: str) -> list[dict[str, Any]]:
        """The run's prepared nodes, taken out of the held state. A node's end without its start (the start went
        with an earlier root, past the bound) would read as a new node with default columns: it is left out and
        counted in ``otlp_late_nodes``."""
        rows = list(self._nodes.pop(run_id, {}).values())
        whole = [row for row in rows if "order_index" in row]  # the recorder's node start always sets it
        self._counts["late_nodes"] += len(rows) - len(whole)
        return [n for n in (self._prepared("nodes", row) for row in whole) if n]

    def _unclaimed(self, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """The run's prepared files and costs that no held event claims (the run's own, and late ones, which are
        counted), taken out of the held state and unlinked from their events."""
        still = {r["id"] for r in self._finished} | set(self._open)
        linked: dict[str, list[dict[str, Any]]] = {}
        for kind in ARTEFACTS:
            keys = [k for k in self._artefacts[kind] if k[0] == run_id and k[1] not in still]
            self._counts["late_artefacts"] += sum(len(self._artefacts[kind][k]) for k in keys if k[1] is not None)
            linked[kind] = [{**row, "event_id": None} for row in self._linked(kind, run_id, [k[1] for k in keys])]
        return linked

    def _linked(self, kind: str, run_id: str, event_ids: list[str | None]) -> list[dict[str, Any]]:
        """The prepared file or cost rows of these events of the run, taken out of the held state."""
        held = self._artefacts[kind]
        rows = [row for eid in event_ids for row in held.pop((run_id, eid), ())]
        return [p for p in (self._prepared(kind, row) for row in rows) if p is not None]

    def _prepared(self, kind: str, row: dict[str, Any]) -> dict[str, Any] | None:
        """The row as the store would hold it (prepared, with the table's insert defaults); a row the store would
        refuse costs only itself."""
        try:
            if kind == "events":
                return prepare_event(row, max_payload_bytes=self.settings.max_payload_bytes)
            prepare, table = PREPARE[kind]
            return {**DEFAULTS[table], **prepare(row)}
        except Exception as exc:  # noqa: BLE001 - BadRecord, or a value the preparation cannot take
            self._counts["bad_records"] += 1
            self._on_error("otlp bad record", exc)
            return None

    def _send(self) -> None:
        """Build what is due and hand it to the sender (a span that cannot be built costs its batch only)."""
        try:
            self._build()
        except Exception as exc:  # noqa: BLE001
            self._on_error("otlp build", exc)

    def _connection(self) -> OtlpTransport:
        if self._transport is None:
            self._transport = OtlpTransport(self.settings.otlp_endpoint or "", protocol=self.settings.otlp_protocol,
                                            timeout=EXPORT_TIMEOUT_S)
        return self._transport
