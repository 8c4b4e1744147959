"""The local spool: an append-only JSON-lines file of batches the database could not take yet.

Each process appends to its own file (``spool-<time>-<pid>-<random>.jsonl`` in ``spool_dir``), holding an
exclusive ``fcntl.flock`` on it while alive, and fsyncs after every batch, so what was spooled survives a crash.
Replay reads files oldest first; a process replays its own file and any leftover file whose lock it can take
(the owner is gone), so two processes never replay the same file. A file is deleted only after every batch in
it was written; replay is idempotent because the store skips event ids it already has.
"""

import fcntl
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

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


def batch_size(batch: dict[str, Any]) -> int:
    """How many recorder items a batch stands for (``_items`` when the recorder set it, else its rows)."""
    items = batch.get("_items")
    return int(items) if isinstance(items, int) else sum(len(batch.get(k) or ()) for k in BATCH_KEYS)


class Spool:
    """This process's spool file plus replay of leftovers (see the module docstring). Thread-safe."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._path: Path | None = None
        self.pending_records = 0

    def append(self, batch: dict[str, list[dict[str, Any]]]) -> int:
        """Durably append one batch; returns the number of records spooled."""
        line = encode_batch(batch)
        with self._lock:
            if self._fd is None:
                self._open()
            assert self._fd is not None
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
            count = batch_size(batch)
            self.pending_records += count
            return count

    def _open(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"spool-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._fd, self._path = fd, path

    def replay(self, write: Callable[[dict[str, Any]], None]) -> int:
        """Write every spooled batch we can lock, oldest file first; returns records replayed.

        ``write`` raising stops the replay (the file stays; already-written batches replay harmlessly later).
        """
        replayed = 0
        with self._lock:
            if not self.directory.is_dir():
                return 0
            for path in sorted(self.directory.glob("spool-*.jsonl")):
                if path == self._path:
                    replayed += self._replay_own(write)
                    continue
                replayed += self._replay_other(path, write)
        return replayed

    def _replay_own(self, write: Callable[[dict[str, Any]], None]) -> int:
        assert self._path is not None and self._fd is not None
        count = _replay_file(self._path, self._fd, write)
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
            count = _replay_file(path, fd, write)
            path.unlink()
            return count
        finally:
            os.close(fd)

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


def _replay_file(path: Path, fd: int, write: Callable[[dict[str, Any]], None]) -> int:
    """Write a file's batches in order. If one fails, the file is cut down to the unwritten batches (so edges and
    cost rows, which have no natural key, are never written twice) and the error propagates."""
    count = 0
    with open(path, "rb") as handle:
        lines = handle.readlines()
    for index, raw in enumerate(lines):
        batch = _parse(raw, path, index + 1)
        if batch is None:
            continue
        try:
            write(batch)
        except BaseException:
            rest = b"".join(lines[index:])
            os.ftruncate(fd, 0)
            if os.O_APPEND & _flags(fd):
                os.write(fd, rest)
            else:
                os.pwrite(fd, rest, 0)
            os.fsync(fd)
            raise
        count += batch_size(batch)
    return count


def _flags(fd: int) -> int:
    return fcntl.fcntl(fd, fcntl.F_GETFL)


def _parse(raw: bytes, path: Path, number: int) -> dict[str, Any] | None:
    if not raw.strip():
        return None
    try:
        batch = json.loads(raw)
    except ValueError:
        log.warning("skillmine spool %s line %d is not valid JSON (torn write?); skipped", path, number)
        return None
    out: dict[str, Any] = {k: batch.get(k) or [] for k in BATCH_KEYS}
    if isinstance(batch.get("_items"), int):
        out["_items"] = batch["_items"]
    return out
