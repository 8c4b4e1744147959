"""The local spool: an append-only JSON-lines file of batches the database could not take yet.

Each process appends to its own file (``spool-<time>-<pid>-<random>.jsonl`` in ``spool_dir``), holding an
exclusive ``fcntl.flock`` on it while alive, and fsyncs after every batch, so what was spooled survives a crash.
Replay reads files oldest first; a process replays its own file and any leftover file whose lock it can take
(the owner is gone), so two processes never replay the same file. A file is deleted only after every batch in
it was written; replay is idempotent because the store skips event ids it already has.

Routing: a file's first line names the store its batches were meant for (:func:`store_key`: the database URL
without its password, a SQLite path made absolute), and a file is replayed only into that store; files of other
stores (and files that name none) stay where they are for a process writing to their store. A failed append (disk
full) is cut off again, so a later batch never lands behind half a line; a line that is not a whole batch (a
process killed mid-write) is skipped, counted and reported by file and line, and every whole line around it is kept.
"""

import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = logging.getLogger(__name__)

BATCH_KEYS = ("runs", "nodes", "edges", "events", "event_updates", "files", "messages", "costs")


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot spool a {type(value).__name__}")


def encode_batch(batch: dict[str, list[dict[str, Any]]]) -> bytes:
    """One spool line for a batch (a dict of the ``Batch`` field lists)."""
    data = {k: v for k, v in batch.items() if v}
    return (json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=_json_default) + "\n").encode()


HEADER_KEY = "_spool_store"


def store_key(url: str) -> str:
    """Which store a URL reaches, as recorded in a spool file: the URL without its password (never written to
    disk), a SQLite file path made absolute and resolved (relative paths depend on the working directory)."""
    try:
        parsed = make_url(url)
    except ArgumentError:  # not a URL SQLAlchemy can read: the store will refuse it too; still never keep a password
        return re.sub(r"://([^:/@]*):[^@]*@", r"://\1@", url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:" \
            and not parsed.database.startswith("file:"):
        parsed = parsed.set(database=os.path.realpath(parsed.database))
    return parsed._replace(password=None).render_as_string(hide_password=False)


def _header(key: str) -> bytes:
    return (json.dumps({HEADER_KEY: key}, ensure_ascii=False) + "\n").encode()


def batch_size(batch: dict[str, Any]) -> int:
    """How many recorder items a batch stands for (``_items`` when the recorder set it, else its rows)."""
    items = batch.get("_items")
    return int(items) if isinstance(items, int) else sum(len(batch.get(k) or ()) for k in BATCH_KEYS)


class Spool:
    """This process's spool file for one store, plus replay of that store's leftovers (see the module docstring).

    ``on_problem(kind, detail)`` hears of torn lines and of files that name no store. Thread-safe.
    """

    def __init__(self, directory: Path, store: str,
                 on_problem: Callable[[str, str], None] | None = None) -> None:
        self.directory = Path(directory)
        self.store = store
        self._on_problem = on_problem
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._path: Path | None = None
        self.pending_records = 0
        self.torn_lines = 0
        self.kept_for_other_stores = 0
        self._reported: set[Path] = set()

    def append(self, batch: dict[str, list[dict[str, Any]]]) -> int:
        """Durably append one batch; returns the number of records spooled. On failure (disk full) the file is cut
        back to where it was and the error propagates."""
        line = encode_batch(batch)
        with self._lock:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            start = os.lseek(self._fd, 0, os.SEEK_END)
            try:
                _write_all(self._fd, line)
                os.fsync(self._fd)
            except BaseException:
                os.ftruncate(self._fd, start)
                raise
            count = batch_size(batch)
            self.pending_records += count
            return count

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"spool-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(fd, _header(self.store))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        self._fd, self._path = fd, path

    def replay(self, write: Callable[[dict[str, Any]], None]) -> int:
        """Write every spooled batch of our store that we can lock, oldest file first; returns records replayed.

        ``write`` raising stops the replay (the file stays; already-written batches replay harmlessly later).
        """
        replayed = 0
        with self._lock:
            if not self.directory.is_dir():
                return 0
            self.kept_for_other_stores = 0
            for path in sorted(self.directory.glob("spool-*.jsonl")):
                if path == self._path:
                    replayed += self._replay_own(write)
                    continue
                replayed += self._replay_other(path, write)
        return replayed

    def _replay_own(self, write: Callable[[dict[str, Any]], None]) -> int:
        assert self._path is not None and self._fd is not None
        count = self._replay_file(self._path, self._fd, write)
        os.close(self._fd)
        self._path.unlink()
        self._fd, self._path = None, None
        self.pending_records = 0
        return count

    def _replay_other(self, path: Path, write: Callable[[dict[str, Any]], None]) -> int:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return 0
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # its owner is alive (or another process is replaying it)
            if not path.exists():
                return 0  # replayed and deleted by another process between glob and lock
            if not os.fstat(fd).st_size:
                path.unlink()  # its owner died before writing the header: nothing in it
                return 0
            owner = _file_store(path)
            if owner != self.store:
                self.kept_for_other_stores += 1
                if owner is None and path not in self._reported:
                    self._reported.add(path)
                    self._report("spool file without a store", f"{path} names no store; kept, not replayed")
                return 0
            count = self._replay_file(path, fd, write)
            path.unlink()
            return count
        finally:
            os.close(fd)

    def _replay_file(self, path: Path, fd: int, write: Callable[[dict[str, Any]], None]) -> int:
        """Write a file's batches in order. If one fails, the file is cut down to its header and the unwritten
        batches (so edges and cost rows, which have no natural key, are never written twice) and the error
        propagates."""
        count = 0
        with open(path, "rb") as handle:
            lines = handle.readlines()
        for index, raw in enumerate(lines[1:], start=1):
            batch = self._parse(raw, path, index + 1)
            if batch is None:
                continue
            try:
                write(batch)
            except BaseException:
                rest = lines[0] + b"".join(lines[index:])
                os.ftruncate(fd, 0)
                if os.O_APPEND & _flags(fd):
                    os.write(fd, rest)
                else:
                    os.pwrite(fd, rest, 0)
                os.fsync(fd)
                raise
            count += batch_size(batch)
        return count

    def _parse(self, raw: bytes, path: Path, number: int) -> dict[str, Any] | None:
        if not raw.strip():
            return None
        try:
            batch = json.loads(raw)
            if not isinstance(batch, dict) or not raw.endswith(b"\n"):
                raise ValueError("not a whole batch")
            out: dict[str, Any] = {k: _rows(batch.get(k)) for k in BATCH_KEYS}
        except ValueError:
            self.torn_lines += 1
            self._report("spool torn record", f"{path} line {number}: {len(raw)} bytes are not a whole batch "
                                              "(torn write?); skipped, the whole lines around it are kept")
            return None
        if isinstance(batch.get("_items"), int):
            out["_items"] = batch["_items"]
        return out

    def _report(self, kind: str, detail: str) -> None:
        log.warning("skillmine %s: %s", kind, detail)
        if self._on_problem is not None:
            self._on_problem(kind, detail)

    def forget(self) -> None:
        """In a forked child: drop the inherited handle on the parent's file without touching the file or lock."""
        if self._fd is not None:
            os.close(self._fd)  # the parent's descriptor (and its lock) stays open
        self._fd, self._path, self.pending_records = None, None, 0

    def close(self) -> None:
        """Release our file (kept on disk when it still holds batches, for the next start to replay)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
                self._path = None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _rows(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(row, dict) for row in value):
        raise ValueError("a batch field is not a list of rows")
    return value


def _file_store(path: Path) -> str | None:
    """The store a spool file's header names, or ``None`` (no header: an older file, or an empty one)."""
    with open(path, "rb") as handle:
        first = handle.readline()
    try:
        header = json.loads(first)
    except ValueError:
        return None
    value = header.get(HEADER_KEY) if isinstance(header, dict) else None
    return value if isinstance(value, str) else None


def _flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)
