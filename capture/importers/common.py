"""What every importer shares: the :class:`Importer` protocol, deterministic and canonical ids, the report, progress,
the merge session and source errors."""

import functools
import hashlib
import json
import re
import sqlite3
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from capture.core.garbage import fewer_collections
from capture.core.vocabulary import normalise_event
from capture.importers.merge import Contribution, MergeOutcome, MergeWriter
from capture.store.capture_store import CaptureStore
from capture.store.records import BadRecord

# A bulk import's transaction: this many runs or rows at most (a group is held in memory until written).
GROUP_RUNS = 500
GROUP_ROWS = 20_000
# Namespace of every id an importer derives; changing it would re-import everything under new ids.
IMPORT_NAMESPACE = uuid.UUID("6f1d4c1e-2b7a-5e0c-9a53-7c1f0e2d8b40")


class SourceError(ValueError):
    """Input that cannot be imported; the message names the file and the place (line, record, byte offset).

    ``report`` carries what was written before the bad place (those runs are complete and stay stored).
    """

    def __init__(self, message: str, report: "ImportReport | None" = None) -> None:
        super().__init__(re.sub(r"\s*\n\s*", " ", message))  # one line, even when a driver's message has several
        self.report = report


_NAMESPACE_BYTES = IMPORT_NAMESPACE.bytes


def _uuid_text(raw: bytes, version: int) -> str:
    """16 bytes as a UUID string of ``version`` (its version and RFC 4122 variant bits set), without a ``UUID``
    object (an importer derives one per event, and the object costs twice the hash)."""
    digest = bytearray(raw)
    digest[6] = (digest[6] & 0x0F) | (version << 4)
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _digest(parts: tuple[Any, ...]) -> bytes:
    return hashlib.sha1(_NAMESPACE_BYTES + "\x1f".join(map(str, parts)).encode()).digest()


def stable_id(*parts: Any) -> str:
    """A UUID5 string from the source identity and the source row id: the same input always gives the same id.
    Exactly ``str(uuid.uuid5(IMPORT_NAMESPACE, name))``."""
    return _uuid_text(_digest(parts)[:16], 5)


@functools.lru_cache(maxsize=4096)
def _owner_head(owner: str) -> bytes:
    return hashlib.sha1(_NAMESPACE_BYTES + b"owner\x1f" + owner.encode()).digest()[:8]


def member_id(owner: str, *parts: Any) -> str:
    """A stable UUID-shaped id for a row that belongs to ``owner`` (an event of a run): the same input always gives
    the same id, like :func:`stable_id`, but the first half comes from ``owner`` alone.

    Why: the store's unique id index is a B-tree; ids scattered at random put every insert on another page, so a
    batch of 500 events dirties ~500 index pages, each written to the WAL at commit. Ids sharing their owner's
    prefix sit side by side, and a batch of a few runs dirties a few pages (benchmarks/RESULTS.md, "Write path,
    second session of 2026-12-05"). A version-8 (custom) UUID, RFC 9562."""
    return _uuid_text(_owner_head(owner) + _digest((owner, *parts))[:8], 8)


@dataclass
class ImportReport:
    """What an import wrote (new runs, runs merged with another source's, updated runs), left unchanged (already
    imported with the same content) and could not map."""

    source: str
    kind: str
    runs_new: int = 0
    runs_merged: int = 0
    runs_updated: int = 0
    runs_skipped: int = 0
    nodes: int = 0
    edges: int = 0
    events: int = 0
    files: int = 0
    messages: int = 0
    costs: int = 0
    unmapped: Counter = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def runs_written(self) -> int:
        """Runs whose stored rows this import created or changed."""
        return self.runs_new + self.runs_merged + self.runs_updated

    def add(self, outcome: MergeOutcome) -> None:
        """Count one merged contribution."""
        if outcome.state == "unchanged":
            self.runs_skipped += 1
            return
        setattr(self, f"runs_{outcome.state}", getattr(self, f"runs_{outcome.state}") + 1)
        self.nodes += outcome.nodes
        self.edges += outcome.edges
        self.events += outcome.events
        self.files += outcome.files
        self.messages += outcome.messages
        self.costs += outcome.costs

    def summary(self) -> str:
        """One paragraph for people: what was written, what was skipped, what could not be mapped."""
        text = (f"imported {self.kind} {self.source}: {self.runs_written} runs written, {self.runs_skipped} already "
                f"imported ({self.runs_new} new, {self.runs_merged} merged into a run from another source, "
                f"{self.runs_updated} updated: content changed); "
                f"{self.nodes} nodes, {self.edges} edges, {self.events} events, {self.files} files, "
                f"{self.messages} messages, {self.costs} cost records in {self.seconds:.1f} s")
        if self.unmapped:
            text += "; not mapped: " + ", ".join(f"{k} ×{n}" for k, n in sorted(self.unmapped.items()))
        return text


class Importer(Protocol):
    """What every ``import_*`` function is: read ``path``, merge its runs into ``store``, report.

    Raises :class:`SourceError` naming the input and the place on bad input (runs completed before it stay
    stored, counted in the error's report) and :class:`capture.store.db.StoreError` naming the store when the store
    cannot be written.
    """

    def __call__(self, path: str | Path, store: CaptureStore, *, session: str | None = None,
                 quiet: bool = True) -> ImportReport: ...


class Progress:
    """Runs done and events written by an import, drawn as a live bar (rich, through :mod:`skillmine.console`,
    imported only when it draws) on a terminal only: a pipe or a log gets just the command's one summary line."""

    def __init__(self, total_runs: int | None = None, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = not quiet and self.stream.isatty()
        self.total_runs = total_runs
        self.runs = 0
        self.events = 0
        self._display: Any = None  # a skillmine.console.RunProgress once it draws

    def step(self, events: int) -> None:
        """One more run done with ``events`` events."""
        self.runs += 1
        self.events += events
        if not self.enabled:
            return
        if self._display is None:
            from skillmine.console import RunProgress

            self._display = RunProgress(self.total_runs, stream=self.stream)
        self._display.update(self.runs, self.events, total=self.total_runs)

    def done(self) -> None:
        """End the display (its last state stays on the terminal)."""
        if self._display is not None:
            self._display.close()


TASK_FOLDER = re.compile(r"/tasks/[^/]+/(.+)$")


def relative_path(path: str, work_dir: str | None) -> tuple[str, bool]:
    """``path`` relative to the run's work directory (given, else the ``.../tasks/<task id>/`` folder it sits in);
    the second value says it lies outside any known work directory and is kept as recorded."""
    posix = path.replace("\\", "/")
    if work_dir:
        prefix = work_dir.replace("\\", "/").rstrip("/") + "/"
        if posix.startswith(prefix):
            return posix[len(prefix):], False
    found = TASK_FOLDER.search(posix)
    if found:
        return found.group(1), False
    return posix, posix.startswith("/")


def mars_run_id(task_id: str | None, db_run_id: str | None) -> str:
    """The canonical id of a MARS run: its UI task id (known to the database row and the session folder alike),
    else the database's run UUID."""
    return stable_id("mars-task", task_id) if task_id else stable_id("mars-run", db_run_id)


def stage_run_id(parent_run_id: str, stage_name: str) -> str:
    """The canonical id of a stage of a multi-stage (Denario) MARS run: the parent's UUID and the stage name,
    known to the database's ``task_stages`` row and to the stage's output folder alike."""
    return stable_id("mars-stage", parent_run_id, stage_name)


@contextmanager
def importing(kind: str, path: str | Path, store: CaptureStore, *, quiet: bool = True,
              total: int | None = None) -> Iterator["ImportSession"]:
    """The part every importer shares: the report, the timer, progress, the merge writer, fewer garbage
    collections, and a :class:`SourceError` that says how many runs were written before the bad place."""
    started = time.monotonic()
    report = ImportReport(source=str(path), kind=kind)
    session = ImportSession(report, MergeWriter(store), Progress(total, quiet=quiet))
    try:
        try:
            with fewer_collections():
                yield session
        except SourceError:
            raise
        except DATA_ERRORS as exc:  # input of a shape the importer did not expect: bad input, not a crash
            raise SourceError(f"{path}: {session.where}: {describe_data_error(exc)}") from exc
    except SourceError as exc:
        report.seconds = time.monotonic() - started
        if report.runs_written or report.runs_skipped:
            raise SourceError(f"{exc} ({report.runs_written} runs before it were imported)", report) from None
        raise SourceError(str(exc), report) from None
    finally:
        session.progress.done()
    report.seconds = time.monotonic() - started


# What reading a value of an unexpected type, shape or size raises (``SourceError`` and ``BadRecord`` are
# ValueErrors too, but those already name their place and are handled first).
DATA_ERRORS = (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError, OverflowError,
               UnicodeError, sqlite3.DatabaseError)


def describe_data_error(exc: BaseException) -> str:
    """One line for people about a value the importer could not read."""
    if isinstance(exc, RecursionError):
        return "a value is nested too deeply to read"
    text = " ".join(str(exc).split())
    if len(text) > 160:
        text = text[:160] + "..."
    return f"a value has an unexpected type or shape ({type(exc).__name__}: {text})"


@dataclass
class ImportSession:
    """One import under way: merges contributions and counts them. ``where`` names the place being read (a line,
    a table row, a run), for the error an unexpected value turns into."""

    report: ImportReport
    writer: MergeWriter
    progress: Progress
    where: str = "while reading it"

    def write(self, contribution: Contribution) -> None:
        """Merge one run's contribution into the store; a row the store refuses is bad input, named."""
        try:
            outcome = self.writer.write(contribution)
        except BadRecord as exc:
            raise SourceError(f"{self.report.source}: {contribution.label}: {exc}") from None
        self.report.add(outcome)
        self.progress.step(outcome.events)

    def write_all(self, contributions: Iterable[Contribution]) -> None:
        """Merge contributions as they are produced, a group of up to :data:`GROUP_RUNS` runs or
        :data:`GROUP_ROWS` rows per transaction; when producing fails (bad input), the group read so far is
        written before the error goes on, so the runs before the bad place stay written."""
        group: list[Contribution] = []
        rows = 0
        try:
            for contribution in contributions:
                group.append(contribution)
                rows += len(contribution.batch)
                if len(group) >= GROUP_RUNS or rows >= GROUP_ROWS:
                    full, group, rows = group, [], 0
                    self._write_group(full)
        finally:
            self._write_group(group)

    def _write_group(self, group: list[Contribution]) -> None:
        """One transaction for the group; if it is refused, the group one by one (the error then names the
        contribution at fault, and the runs before it are written and counted)."""
        if len(group) < 2:
            for contribution in group:
                self.write(contribution)
            return
        try:
            outcomes = self.writer.write_many(group)
        except Exception:  # noqa: BLE001 - one by one meets the error again, at its contribution
            for contribution in group:
                self.where = contribution.label
                self.write(contribution)
            return
        for outcome in outcomes:
            self.report.add(outcome)
            self.progress.step(outcome.events)


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
    except RecursionError:
        raise SourceError(f"{path}: JSON nested too deeply to read") from None


def json_lines(path: Path, what: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-empty line of a JSON-lines file, streamed; a :class:`SourceError` names the
    file and the line of anything that is not one JSON object (``what`` says what a line should hold)."""
    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceError(f"{path}: line {number}, column {exc.colno}: invalid JSON: {exc.msg}") from None
                except RecursionError:
                    raise SourceError(f"{path}: line {number}: JSON nested too deeply to read") from None
                if not isinstance(record, dict):
                    raise SourceError(f"{path}: line {number}: expected a JSON object ({what})")
                yield number, record
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read ({exc})") from None


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
