"""Import an XES event log (``.xes`` or ``.xes.gz``): each case a run, each event a canonical ``agent_call``.

Parsing streams with ``xml.etree.ElementTree.iterparse`` and writes each trace as soon as it closes, then
drops it, so memory stays bounded by the largest trace. The activity (``concept:name``) goes to
``meta.activity``; ``org:resource`` (else the activity) becomes ``agent_name``; ``lifecycle:transition``
start/complete (abort → error) becomes the subtype, with the original in ``meta.lifecycle``; every other
attribute is kept in ``meta.attributes``.

A case's run id comes from the file name, the case id and its occurrence among cases of that id (not its
position, so inserting a case elsewhere changes no other run); its content hash tells a changed case ("updated" in
the summary) from one already imported.
"""

import gzip
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import Element, ParseError, iterparse

from capture.importers.common import ImportReport, SourceError, canonical, importing, member_id, stable_id
from capture.importers.merge import Contribution
from capture.importers.read_ahead import read_ahead as read_from_child
from capture.importers.read_ahead import worth_reading_ahead
from capture.store.capture_store import Batch, CaptureStore
from capture.store.records import to_utc

LIFECYCLE = {"start": ("start", "running"), "complete": ("complete", "completed"),
             "ate_abort": ("error", "failed"), "pi_abort": ("error", "failed"), "abort": ("error", "failed")}
SPECIAL_KEYS = {"concept:name", "org:resource", "time:timestamp", "lifecycle:transition"}


class _CountingReader:
    """A binary reader that remembers how many (decompressed) bytes it handed out, for error positions."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.offset = 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        self.offset += len(chunk)
        return chunk


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _value(element: Element) -> Any:
    kind, raw = _local(element.tag), element.get("value")
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except (TypeError, ValueError):
        return raw
    if kind == "boolean":
        return raw is not None and raw.strip().lower() == "true"
    return raw


def _attributes(element: Element) -> dict[str, Any]:
    """The element's direct XES attributes (nested list/container children are flattened away)."""
    return {child.get("key"): _value(child) for child in element
            if _local(child.tag) != "event" and child.get("key") is not None}


class _NestedTrace(ValueError):
    """A ``trace`` element inside another: not an XES log (each would become a run)."""


def _traces(stream: _CountingReader) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Yield (trace attributes, event attributes in order) per trace, clearing parsed elements as it goes."""
    root: Element | None = None
    events: list[dict[str, Any]] = []
    in_trace = False
    for kind, element in iterparse(stream, events=("start", "end")):
        tag = _local(element.tag)
        if kind == "start":
            if root is None:
                root = element
            elif tag == "trace":
                if in_trace:
                    raise _NestedTrace
                in_trace, events = True, []
            continue
        if tag == "event" and in_trace:
            events.append(_attributes(element))
            element.clear()
        elif tag == "trace":
            in_trace = False
            yield _attributes(element), events
            if root is not None:
                root.clear()


def _open(path: Path) -> IO[bytes]:
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    return gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")


class _TraceMapper:
    """Builds the batch of one case."""

    def __init__(self, source: str, session: dict[str, Any], report: ImportReport) -> None:
        self.source = source
        self.session_row = session
        self.session = session["id"]
        self.report = report
        self.seen: Counter = Counter()
        self._kinds: dict[str, tuple[str, str | None, dict[str, Any]]] = {}

    def contribution(self, ordinal: int, trace: dict[str, Any], events: list[dict[str, Any]]) -> Contribution:
        case = trace.get("concept:name")
        case_id = str(case) if case is not None else f"#{ordinal}"
        self.seen[case_id] += 1
        run_id = stable_id("xes", self.source, case_id, self.seen[case_id])
        rows, times = [], []
        for order, attrs in enumerate(events, start=1):
            rows.append(self._event(run_id, order, attrs, case_id))
            if rows[-1]["timestamp"] is not None:
                times.append(rows[-1]["timestamp"])
        run = {"id": run_id, "session_id": self.session, "mode": "xes", "status": "completed",
               "task_description": f"case {case_id}", "started_at": min(times) if times else None,
               "completed_at": max(times) if times else None,
               "meta": {"source": self.source, "case": case_id, "trace_ordinal": ordinal,
                        "attributes": {k: v for k, v in trace.items() if k != "concept:name"}}}
        return Contribution(run_id, f"xes:{self.source}#{case_id}#{self.seen[case_id]}", 1,
                            Batch(runs=[run], events=rows), self.session_row)

    def _kind(self, subtype: str) -> tuple[str, str | None, dict[str, Any]]:
        """The canonical (type, subtype) of an ``agent_call`` with this lifecycle subtype, and what it adds to meta
        (the source pair when it was folded): one of three answers, worked out once per import."""
        known = self._kinds.get(subtype)
        if known is None:
            etype, sub, meta = canonical("agent_call", subtype, self.report)
            known = self._kinds[subtype] = (etype, sub, meta)
        return known

    def _event(self, run_id: str, order: int, attrs: dict[str, Any], case_id: str) -> dict[str, Any]:
        activity = attrs.get("concept:name")
        if activity is None:
            self.report.unmapped["xes event without concept:name"] += 1
        lifecycle = attrs.get("lifecycle:transition")
        subtype, status = LIFECYCLE.get(str(lifecycle).lower(), ("complete", "completed")) if lifecycle \
            else ("complete", "completed")
        if lifecycle and str(lifecycle).lower() not in LIFECYCLE:
            self.report.unmapped[f"lifecycle:transition {lifecycle}"] += 1
        meta = {"activity": activity, "case": case_id}
        if lifecycle:
            meta["lifecycle"] = lifecycle
        extra = {k: v for k, v in attrs.items() if k not in SPECIAL_KEYS}
        if extra:
            meta["attributes"] = extra
        etype, sub, source_meta = self._kind(subtype)
        if source_meta:
            meta.update(source_meta)
        stamp = attrs.get("time:timestamp")
        try:
            moment = to_utc(stamp, field="time:timestamp", kind=f"{self.source}: case {case_id}, event {order}")
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        return {"id": member_id(run_id, order), "run_id": run_id, "session_id": self.session,
                "event_type": etype, "event_subtype": sub,
                "agent_name": str(attrs.get("org:resource") or activity or "unknown"),
                "timestamp": moment, "execution_order": order, "status": status, "meta": meta}


def iter_traces(path: str | Path) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Parse an XES file trace by trace (the raw parse alone: the importer's baseline in the benchmark)."""
    path = Path(path)
    with _open(path) as raw:
        stream = _CountingReader(raw)
        try:
            yield from _traces(stream)
        except ParseError as exc:
            line, column = exc.position
            raise SourceError(f"{path}: malformed XML at line {line}, column {column} "
                              f"(byte {stream.offset} of the XML): {exc}") from None
        except RecursionError:
            raise SourceError(f"{path}: XML nested too deeply to read (byte {stream.offset})") from None
        except _NestedTrace:
            raise SourceError(f"{path}: a trace inside a trace, before byte {stream.offset} of the XML") from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise SourceError(f"{path}: damaged or truncated compressed data after byte {stream.offset} "
                              f"of the XML: {exc}") from None


def import_xes(path: str | Path, store: CaptureStore, *, session: str | None = None, quiet: bool = True,
               read_ahead: bool | None = None) -> ImportReport:
    """Merge every trace of an XES log into ``store`` as a run (traces grouped into transactions as they are
    parsed; a bad place in the file still leaves every trace before it stored). ``read_ahead``: parse, map and
    redact in a second process while this one writes (default: for files of 1 MiB or more, on two cores or more;
    :mod:`capture.importers.read_ahead`)."""
    path = Path(path)
    session_row = {"id": session or stable_id("xes-session", path.name), "name": session or f"xes {path.name}",
                   "status": "active"}
    with importing("xes", path, store, quiet=quiet) as job:
        if worth_reading_ahead(path) if read_ahead is None else read_ahead:
            job.write_all(read_from_child(contributions, (path, session_row), job))
        else:
            job.write_all(contributions(path, session_row, report=job.report, place=job))
    return job.report


def contributions(path: Path, session_row: dict[str, Any], *, report: ImportReport, place: Any
                  ) -> Iterator[Contribution]:
    """Each trace of the log as a run's contribution, in file order; ``place.where`` names the trace being read
    and ``report`` counts what does not map."""
    mapper = _TraceMapper(path.name, session_row, report)
    for ordinal, (trace, events) in enumerate(iter_traces(path), start=1):
        place.where = f"trace {ordinal}"
        yield mapper.contribution(ordinal, trace, events)
        place.where = f"after trace {ordinal}"
