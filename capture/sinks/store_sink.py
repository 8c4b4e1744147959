"""The durable store sink: recorder batches into the capture store, or into the spool until the store takes them.

:meth:`StoreSink.write` builds the rows of a batch (:class:`capture.sinks.store_rows.RowBuilder`: coalescing,
redaction, payload encoding) and calls :meth:`CaptureStore.write_batch`. A batch the database cannot take (down,
locked, disk error, not migrated) goes to the :class:`~capture.sinks.spool.Spool`, with a back-off before the next
attempt; the spool is replayed, oldest first, before anything newer is written once writes succeed again. A
:class:`~capture.store.records.BadRecord`, or a value the database refuses (integrity or data error), costs only its
own row: the batch is retried row by row (:func:`refused` tells the two kinds of failure apart).

The store is opened (and an empty database migrated) on the first write. The recorder imports this module on its
writer thread, so an agent process loads SQLAlchemy there, not when it imports ``capture``; only a spill (queue
full, or exit with the writer stuck) builds rows and spools them on the caller's thread.
"""

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings
from capture.sinks.base import WriteResult
from capture.sinks.spool import BATCH_KEYS, Spool, store_key
from capture.sinks.store_rows import RowBuilder
from capture.store.capture_store import Batch, CaptureStore
from capture.store.db import SchemaOutOfDate, StoreError, current_revision, make_engine
from capture.store.migrate import upgrade
from capture.store.records import BadRecord

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)
# DB-API 2.0 exception names, shared by SQLAlchemy's wrappers and every driver's own exceptions.
_REFUSAL_NAMES = frozenset({"IntegrityError", "DataError"})
_UNAVAILABLE_NAMES = frozenset({"OperationalError", "InterfaceError", "DatabaseError", "InternalError",
                                "ProgrammingError", "NotSupportedError", "SQLAlchemyError"})


def refused(exc: BaseException) -> bool:
    """Was it the data, not the database? Then a retry row by row isolates the bad rows (a value the database
    refuses, or one that trips the store's own code). The database being unreachable, locked, out of disk or not
    migrated keeps the whole batch in the spool for later."""
    if isinstance(exc, BadRecord):
        return True
    names = {c.__name__ for c in type(exc).__mro__}
    if names & _REFUSAL_NAMES:
        return True
    return not (isinstance(exc, (OSError, StoreError)) or names & _UNAVAILABLE_NAMES)


class PartialWrite(RuntimeError):
    """The database failed during a row-by-row write; ``rest`` holds the rows not written."""

    def __init__(self, rest: dict[str, list[dict[str, Any]]]) -> None:
        super().__init__("database failed during a row-by-row write")
        self.rest = rest


class StoreSink:
    """A :class:`capture.sinks.base.Sink` writing to the capture store at ``settings.database_url``."""

    def __init__(self, settings: CaptureSettings, redactor: Redactor,
                 on_error: Callable[[str, BaseException | str], None], *, store: CaptureStore | None = None) -> None:
        self.settings = settings
        self._on_error = on_error
        self._rows = RowBuilder(redactor, settings.max_payload_bytes)
        self._store = store
        self._owns_store = store is None
        self._spool = self._new_spool()
        self._dropped = 0
        self._down_until = 0.0
        self._failures = 0
        self._replay_due = True
        self._spill_newer = False
        self._replayed = 0
        self._bad_records = 0
        self._latencies: deque[float] = deque(maxlen=1000)
        self._recent: deque[tuple[float, int]] = deque()

    # -- the Sink protocol -----------------------------------------------------------------------------------

    def write(self, items: list[tuple]) -> WriteResult:
        """Write one batch to the store, or spool it; the spool is always replayed before anything newer."""
        try:
            batch = self._rows.batch(items)
        except Exception as exc:  # noqa: BLE001 - a capture bug must not cost the batch silently
            self._on_error("prepare", exc)
            return WriteResult(dropped=len(items))
        n = len(items)
        # Spooled batches the writer could not write are older than the queue: replay them first. Records a caller
        # spilled because the queue was full are newer than the queue: they wait until the queue is drained.
        older = not self._spill_newer
        if older and time.monotonic() >= self._down_until and (self._spool.pending_records or self._replay_due):
            self._replay()
        if time.monotonic() < self._down_until or (older and self._spool.pending_records):
            return self._spool_batch(batch, n)
        try:
            self._store_write(batch)
        except Exception as exc:  # noqa: BLE001 - DB down, locked, disk error: keep it in the spool
            self._mark_down(exc)
            if isinstance(exc, PartialWrite):
                batch = {**exc.rest, "_items": n}
            return self._spool_batch(batch, n)
        self._failures = 0
        return WriteResult(written=n)

    def spill(self, items: list[tuple], *, newer: bool) -> WriteResult:
        """Build the rows of ``items`` and append them to the spool from the caller's thread."""
        batch = self._rows.batch(items)
        if newer:
            self._spill_newer = True
        return self._spool_batch(batch, len(items))

    def idle(self) -> None:
        """Replay the spool (ours and other processes' leftovers) once the back-off has passed."""
        if (self._replay_due or self._spool.pending_records) and time.monotonic() >= self._down_until:
            self._replay()

    def after_fork(self) -> None:
        """Own spool file and a fresh connection pool in the child; the parent's stay untouched."""
        self._spool.forget()
        self._spool = self._new_spool()
        if self._store is not None:
            self._store.engine.dispose(close=False)
        self._replayed = self._bad_records = self._dropped = 0

    def close(self) -> None:
        """Release the spool file and the store (when this sink opened it); say how many items were lost."""
        if self._dropped:
            log.warning("skillmine capture: %d recorder items were lost: the database could not take them and the "
                        "spool in %s could not keep them (disk full?)", self._dropped, self.settings.spool_dir)
        self._spool.close()
        if self._owns_store and self._store is not None:
            self._store.close()

    def stats(self) -> dict[str, Any]:
        """Spool, replay, refused rows, write latency and recent throughput."""
        latencies = sorted(self._latencies)
        cutoff = time.monotonic() - 60
        return {"spool_pending": self._spool.pending_records, "replayed": self._replayed,
                "bad_records": self._bad_records, "spool_dropped": self._dropped,
                "spool_torn_lines": self._spool.torn_lines,
                "spool_files_of_other_stores": self._spool.kept_for_other_stores,
                "write_latency_ms_p50": _percentile(latencies, 0.50),
                "write_latency_ms_p95": _percentile(latencies, 0.95),
                "events_last_minute": sum(n for t, n in list(self._recent) if t >= cutoff),
                "database_available": time.monotonic() >= self._down_until and not self._spool.pending_records}

    # -- spool and back-off ----------------------------------------------------------------------------------

    def _new_spool(self) -> Spool:
        """A spool for this sink's store: its files name the store, and only that store's files are replayed."""
        return Spool(self.settings.spool_dir, store_key(self.settings.database_url), self._on_error)

    def _spool_batch(self, batch: dict[str, Any], n: int) -> WriteResult:
        try:
            spooled = self._spool.append(batch)
        except Exception as exc:  # noqa: BLE001 - disk full too: nothing left to do but count it
            self._on_error("spool", exc)
            self._dropped += n
            return WriteResult(dropped=n)
        return WriteResult(spooled=spooled)

    def _replay(self) -> None:
        try:
            replayed = self._spool.replay(self._store_write)
        except Exception as exc:  # noqa: BLE001 - still down: try again after a back-off
            self._mark_down(exc)
            return
        self._replay_due = False
        self._spill_newer = False
        self._failures = 0
        self._down_until = 0.0
        self._replayed += replayed

    def _mark_down(self, exc: BaseException) -> None:
        self._failures += 1
        self._down_until = time.monotonic() + RETRY_BACKOFF_S[min(self._failures, len(RETRY_BACKOFF_S)) - 1]
        self._replay_due = True
        self._on_error("database write", exc)
        if self._owns_store and self._store is not None and self._failures >= 3:
            store, self._store = self._store, None  # reopen from scratch on the next attempt
            try:
                store.close()
            except Exception as close_exc:  # noqa: BLE001 - a dead pool may not close cleanly
                self._on_error("close a failing store", close_exc)

    # -- the store -------------------------------------------------------------------------------------------

    def _open_store(self) -> CaptureStore:
        """The store, opened on first use; an empty database is migrated, one at another revision is refused."""
        if self._store is None:
            url = self.settings.database_url
            limit = self.settings.max_payload_bytes
            try:
                self._store = CaptureStore.open(url, max_payload_bytes=limit)
            except SchemaOutOfDate:
                engine = make_engine(url)
                try:
                    empty = current_revision(engine) is None
                finally:
                    engine.dispose()
                if not empty:
                    raise
                upgrade(url)
                self._store = CaptureStore.open(url, max_payload_bytes=limit)
        return self._store

    def _store_write(self, batch: dict[str, Any]) -> None:
        """Write one prepared batch; a refused row costs only itself."""
        store = self._open_store()
        started = time.perf_counter()
        rows = {k: batch.get(k) or [] for k in BATCH_KEYS}
        try:
            store.write_batch(Batch(**rows))
        except Exception as exc:
            if not refused(exc):
                raise
            self._write_one_by_one(store, rows)
        self._latencies.append((time.perf_counter() - started) * 1000)
        events = len(rows["events"])
        if events:
            now = time.monotonic()
            self._recent.append((now, events))
            while self._recent and self._recent[0][0] < now - 60:
                self._recent.popleft()

    def _write_one_by_one(self, store: CaptureStore, rows: dict[str, list[dict[str, Any]]]) -> None:
        """Slow path after a rejected batch: each row in its own transaction, in dependency order.

        If the database fails midway, only the rows not yet written propagate (to the spool) with the error.
        """
        for position, key in enumerate(BATCH_KEYS):
            for index, row in enumerate(rows[key]):
                try:
                    store.write_batch(Batch(**{key: [row]}))
                except Exception as exc:
                    if refused(exc):
                        self._bad_records += 1
                        self._on_error("bad record", exc)
                        continue
                    rest = {k: rows[k] for k in BATCH_KEYS[position + 1:]}
                    rest[key] = rows[key][index:]
                    raise PartialWrite(rest) from exc


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 3)
