"""What every importer shares: deterministic ids, the per-run writer, the report, progress and source errors."""

import json
import sqlite3
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import insert, select

from capture.models import Session, WorkflowRun
from capture.store import Batch, CaptureStore
from capture.vocabulary import normalise_event

# Namespace of every id an importer derives; changing it would re-import everything under new ids.
IMPORT_NAMESPACE = uuid.UUID("6f1d4c1e-2b7a-5e0c-9a53-7c1f0e2d8b40")


class SourceError(ValueError):
    """Input that cannot be imported; the message names the file and the place (line, record, byte offset).

    ``report`` carries what was written before the bad place (those runs are complete and stay stored).
    """

    def __init__(self, message: str, report: "ImportReport | None" = None) -> None:
        super().__init__(message)
        self.report = report


def stable_id(*parts: Any) -> str:
    """A UUID5 string from the source identity and the source row id: the same input always gives the same id."""
    return str(uuid.uuid5(IMPORT_NAMESPACE, "\x1f".join(str(p) for p in parts)))


@dataclass
class ImportReport:
    """What an import wrote, skipped (already imported) and could not map."""

    source: str
    kind: str
    runs_written: int = 0
    runs_skipped: int = 0
    nodes: int = 0
    edges: int = 0
    events: int = 0
    files: int = 0
    messages: int = 0
    costs: int = 0
    unmapped: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    def add(self, batch: Batch) -> None:
        """Count a batch that was written."""
        self.runs_written += len(batch.runs)
        self.nodes += len(batch.nodes)
        self.edges += len(batch.edges)
        self.events += len(batch.events)
        self.files += len(batch.files)
        self.messages += len(batch.messages)
        self.costs += len(batch.costs)

    def summary(self) -> str:
        """One paragraph for people: what was written, what was skipped, what could not be mapped."""
        text = (f"imported {self.kind} {self.source}: {self.runs_written} runs written, "
                f"{self.runs_skipped} already imported; {self.nodes} nodes, {self.edges} edges, "
                f"{self.events} events, {self.files} files, {self.messages} messages, {self.costs} cost records "
                f"in {self.seconds:.1f} s")
        if self.unmapped:
            text += "; not mapped: " + ", ".join(f"{k} ×{n}" for k, n in sorted(self.unmapped.items()))
        return text


class Progress:
    """Runs done, events/s and time left on a terminal; silent in pipes or when quiet."""

    def __init__(self, total_runs: int | None = None, *, quiet: bool = False, stream: TextIO | None = None,
                 interval_s: float = 0.5) -> None:
        self.stream = stream or sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.total_runs = total_runs
        self.interval_s = interval_s
        self.started = time.monotonic()
        self._last = 0.0
        self.runs = 0
        self.events = 0

    def step(self, events: int) -> None:
        """One more run done with ``events`` events."""
        self.runs += 1
        self.events += events
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval_s:
            self._last = now
            self.stream.write("\r" + self.line(now))
            self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """The progress line (runs done, events/s, estimated time left when the total is known)."""
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        text = f"{self.runs}" + (f"/{self.total_runs}" if self.total_runs else "") + \
            f" runs, {self.events / elapsed:,.0f} events/s"
        if self.total_runs and self.runs:
            text += f", {elapsed / self.runs * (self.total_runs - self.runs):.0f} s left"
        return text

    def done(self) -> None:
        """Finish the line on a terminal."""
        if self.enabled and self.runs:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()


class RunWriter:
    """Writes one run per transaction; a run already in the store is skipped, so re-imports change nothing.

    Existence is checked for a chunk of runs in one query (a query per run costs more than the write of a
    small run); each run is still written in its own transaction.
    """

    def __init__(self, store: CaptureStore, report: ImportReport, progress: Progress | None = None,
                 chunk: int = 500) -> None:
        self.store = store
        self.report = report
        self.progress = progress or Progress(quiet=True)
        self.chunk = chunk

    def stored(self, run_ids: list[str]) -> set[str]:
        """Which of ``run_ids`` (deterministic ids) are in the store."""
        with self.store.engine.connect() as conn:
            return set(conn.execute(select(WorkflowRun.id).where(WorkflowRun.id.in_(run_ids))).scalars())

    def write_all(self, items: Iterable[tuple[str, Batch]]) -> None:
        """Write every (run id, whole-run batch) not stored yet, in order. When ``items`` fails part-way
        (bad input), the complete runs read before the failure are still written, then the error propagates."""
        pending: list[tuple[str, Batch]] = []
        iterator = iter(items)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except SourceError:
                self._flush(pending)
                raise
            pending.append(item)
            if len(pending) >= self.chunk:
                self._flush(pending)
                pending = []
        self._flush(pending)

    def write(self, run_id: str, batch: Batch) -> bool:
        """Write one run unless it is stored already; returns whether it was written."""
        return self._flush([(run_id, batch)]) == 1

    def _flush(self, pending: list[tuple[str, Batch]]) -> int:
        if not pending:
            return 0
        present = self.stored([run_id for run_id, _ in pending])
        written = 0
        for run_id, batch in pending:
            if run_id in present:
                self.report.runs_skipped += len(batch.runs)
                self.progress.step(0)
                continue
            self.store.write_batch(batch)
            self.report.add(batch)
            self.progress.step(len(batch.events))
            written += 1
        return written


def canonical(event_type: str, subtype: str | None, report: ImportReport,
              meta: dict[str, Any] | None = None) -> tuple[str, str | None, dict[str, Any]]:
    """Fold a source pair onto the vocabulary, keeping it in ``meta.source_type``; count what does not map."""
    meta = dict(meta or {})
    norm = normalise_event(event_type, subtype, meta=meta, strict=False)
    if norm.event_subtype == "unmapped" and norm.event_type == "info":
        report.unmapped[f"event {norm.source_type}"] += 1
    if norm.source_type:
        meta["source_type"] = norm.source_type
    return norm.event_type, norm.event_subtype, meta


def ensure_sessions(store: CaptureStore, rows: list[dict[str, Any]]) -> None:
    """Insert the sessions the store lacks (insert-once: an existing session is left as it is)."""
    table = Session.__table__
    with store.engine.begin() as conn:
        present = set(conn.execute(select(table.c.id).where(table.c.id.in_([r["id"] for r in rows]))).scalars())
        for row in rows:
            if row["id"] not in present:
                conn.execute(insert(table).values(**{k: v for k, v in row.items() if v is not None}))


def load_json(path: Path) -> Any:
    """Parse a JSON file (bare ``NaN`` allowed, as MARS writes it) or raise naming the line and column."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read ({exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno} "
                          f"(character {exc.pos}): {exc.msg}") from None


@contextmanager
def open_readonly(path: Path, required: tuple[str, ...], what: str) -> Iterator[sqlite3.Connection]:
    """A read-only (``mode=ro``) connection to a source SQLite file holding ``required`` tables, or a
    :class:`SourceError` naming the file and the problem. The source is never written."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"{path}: not a readable SQLite database ({exc})") from None
    try:
        missing = [t for t in required if t not in tables]
        if missing:
            raise SourceError(f"{path}: not {what}, missing table(s) {', '.join(missing)}")
        yield conn
    finally:
        conn.close()
