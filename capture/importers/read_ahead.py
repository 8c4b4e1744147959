"""Reading a large source in a second process: parse, map and redact there; hash, merge and write here.

Why: a bulk import is one chain of Python work per record (parse, map to rows, redact, hash, prepare, write), so in
one process it uses one core. Split in two, the halves run at once on two cores: the child reads the file, maps each
record to a :class:`~capture.importers.merge.Contribution` and passes its rows through the capture redactor (the
merge writer's own, so the masking is the same); the parent hashes, merges and writes as before. Contributions cross
the child's stdout as a stream of pickles, in chunks, taken off it by a receiving thread into a bounded queue (which
bounds how far the child runs ahead). Measured on the XES importer: benchmarks/RESULTS.md ("Write path, second
session of 2026-12-05").

The child is a fresh interpreter started with :mod:`subprocess` (``python -c``), not :mod:`multiprocessing`: a fork
would copy the parent's store connections and threads, and multiprocessing's spawn runs the caller's main script
again in the child, which breaks a script that imports at its top level without an ``if __name__ == "__main__"``
guard. The child gets the parent's ``sys.path``, then the producer by its module and name: a producer is a
module-level generator function, called as ``produce(*args, report=..., place=...)``; it counts what it cannot map
in ``report.unmapped`` (sent back at the end) and keeps ``place.where`` naming the record it reads (for the error an
unexpected value becomes, as in :func:`~capture.importers.common.importing`). Its stdout carries only the stream
(anything the producer prints goes to stderr).
"""

import importlib
import os
import pickle
import queue
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from capture.core.garbage import fewer_collections
from capture.core.redaction import Redactor
from capture.importers.common import (
    DATA_ERRORS,
    ImportReport,
    ImportSession,
    SourceError,
    describe_data_error,
)
from capture.importers.merge import Contribution, redact_batch

CHUNK = 64  # contributions per message
AHEAD_CHUNKS = 24  # messages received and not yet merged: the child runs up to ~3 write groups ahead
WORTH_BYTES = 1 << 20  # a source file smaller than this is read in-process: starting a child costs ~0.5 s
# What the child runs: the parent's sys.path first (the producer may live anywhere the parent can import from).
BOOT = ("import pickle, sys; sys.path[:0] = pickle.load(sys.stdin.buffer); "
        "from capture.importers.read_ahead import child_main; child_main()")

Producer = Callable[..., Iterator[Contribution]]


class Place:
    """Where the child is reading (the in-process counterpart is the :class:`ImportSession`)."""

    where = "while reading it"


def worth_reading_ahead(path: Path) -> bool:
    """A second process pays for itself: a file of at least :data:`WORTH_BYTES` and a second core."""
    try:
        size = path.stat().st_size
    except OSError:
        return False  # the importer names the missing file itself
    return (os.cpu_count() or 1) >= 2 and size >= WORTH_BYTES


def child_main() -> None:
    """The child's entry: read what to produce from stdin, stream its contributions to stdout."""
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the stream
    module, name, args, redactor = pickle.load(sys.stdin.buffer)
    produce = getattr(importlib.import_module(module), name)
    with fewer_collections():
        for message in _messages(produce, args, redactor):
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()


def _messages(produce: Producer, args: tuple[Any, ...], redactor: Redactor) -> Iterator[tuple[Any, ...]]:
    """The child's messages: chunks of redacted contributions (``("runs", [...])``), then how it ended
    (``("end", kind, *detail, unmapped counts)``)."""
    report = ImportReport(source="", kind="")
    place = Place()
    chunk: list[Contribution] = []
    ending: tuple[Any, ...] = ("done",)
    try:
        for contribution in produce(*args, report=report, place=place):
            contribution.batch = redact_batch(contribution.batch, redactor)
            contribution.redacted = True
            chunk.append(contribution)
            if len(chunk) >= CHUNK:
                yield ("runs", chunk)
                chunk = []
    except SourceError as exc:
        ending = ("source", str(exc))
    except DATA_ERRORS as exc:
        ending = ("data", place.where, describe_data_error(exc))
    except Exception:  # noqa: BLE001 - a bug, not bad input: reported to the parent with its traceback
        ending = ("crash", traceback.format_exc(limit=8))
    yield ("runs", chunk)
    yield ("end", *ending, dict(report.unmapped))


def read_ahead(produce: Producer, args: tuple[Any, ...], job: ImportSession) -> Iterator[Contribution]:
    """The contributions ``produce(*args)`` makes, read, mapped and redacted in a child process, in order.

    Raises :class:`SourceError` for bad input (the child's message, or the place and the unexpected value, as
    in-process) after yielding every contribution before it, and when the child dies without finishing."""
    child = subprocess.Popen([sys.executable, "-c", BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None
    received: queue.Queue = queue.Queue(maxsize=AHEAD_CHUNKS)
    stop = threading.Event()
    taker = threading.Thread(target=_take, args=(child.stdout, received, stop), daemon=True,
                             name="skillmine-read-ahead-receiver")
    try:
        pickle.dump(sys.path, child.stdin)
        pickle.dump((produce.__module__, produce.__qualname__, args, job.writer.redactor), child.stdin)
        child.stdin.close()
        taker.start()
        while True:
            message = received.get()
            if message[0] == "runs":
                yield from message[1]
            elif message[0] == "end":
                _end(job, message)
                return
            else:
                raise SourceError(f"{job.report.source}: the process reading it ended without finishing "
                                  f"(exit code {child.wait(5)})")
    except BrokenPipeError:  # the child died before it read what to produce
        raise SourceError(f"{job.report.source}: the process reading it ended without finishing "
                          f"(exit code {child.wait(5)})") from None
    finally:
        stop.set()
        if child.poll() is None:
            child.terminate()
        child.wait()
        if taker.is_alive():
            taker.join()
        child.stdout.close()


def _take(stream: IO[bytes], received: queue.Queue, stop: threading.Event) -> None:
    """The parent's receiving thread: messages from the child's stream into ``received`` until the end, a dead
    child (``("eof",)``) or ``stop``. Why a thread: the writer takes a whole group (500 runs) before it writes, longer
    than a pipe's buffer holds, so the child could only run ahead while someone keeps reading."""
    while not stop.is_set():
        try:
            message = pickle.load(stream)
        except (EOFError, OSError, pickle.UnpicklingError):
            message = ("eof",)
        while not stop.is_set():
            try:
                received.put(message, timeout=0.2)
                break
            except queue.Full:
                continue
        if message[0] != "runs":
            return


def _end(job: ImportSession, message: tuple[Any, ...]) -> None:
    """Take the child's counts; raise what it met, named as the in-process import would name it."""
    kind, *detail, unmapped = message[1:]
    job.report.unmapped.update(unmapped)
    if kind == "source":
        raise SourceError(detail[0])
    if kind == "data":
        raise SourceError(f"{job.report.source}: {detail[0]}: {detail[1]}")
    if kind == "crash":
        raise RuntimeError(f"{job.report.source}: reading it failed in the read-ahead process:\n{detail[0]}")
