"""The read-ahead process (``capture.importers.read_ahead``): a large source parsed, mapped and redacted in a
child process gives the store an in-process import gives; the child's bad input, unexpected values and death
reach the caller as named errors, with every run received before them written."""

import gc
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from capture.core.garbage import BULK_GC_THRESHOLD
from capture.importers import SourceError, import_xes
from capture.importers.common import importing
from capture.importers.merge import Contribution, fingerprint
from capture.importers.read_ahead import CHUNK, read_ahead
from capture.store.capture_store import Batch, CaptureStore
from capture.store.migrate import upgrade
from capture.store.models import ExecutionEvent

SECRET = "sk-proj-" + "A1b2C3d4E5f6G7h8J9k0" * 2


def store_in(folder: Path, name: str) -> CaptureStore:
    url = f"sqlite:///{folder / name}"
    upgrade(url)
    return CaptureStore.open(url)


def test_read_ahead_gives_the_store_one_process_gives(data: Path, tmp_path: Path) -> None:
    log = data / "external" / "pm4py_logs" / "08_receipt.xes.gz"
    stores, reports = [], []
    for read_ahead_on in (False, True):
        store = store_in(tmp_path, f"{read_ahead_on}.db")
        reports.append(import_xes(log, store, session="receipt", read_ahead=read_ahead_on))
        stores.append(store)
    assert [(r.runs_written, r.events, dict(r.unmapped)) for r in reports] == [(1434, 8577, {})] * 2
    assert fingerprint(stores[0]) == fingerprint(stores[1])
    again = import_xes(log, stores[1], session="receipt", read_ahead=True)
    assert (again.runs_skipped, again.runs_written) == (1434, 0)
    for store in stores:
        store.close()


def test_a_secret_is_masked_by_the_child(tmp_path: Path) -> None:
    log = tmp_path / "secret.xes"
    log.write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0"><trace><string key="concept:name" value="c1"/>
<event><string key="concept:name" value="call api"/><string key="org:resource" value="bot"/>
<string key="note" value="api_key={SECRET}"/><date key="time:timestamp" value="2026-01-02T03:04:05+00:00"/></event>
<event><string key="concept:name" value="unmapped lifecycle"/><string key="lifecycle:transition" value="odd"/></event>
</trace></log>""")
    store = store_in(tmp_path, "s.db")
    report = import_xes(log, store, read_ahead=True)
    with store.engine.connect() as conn:
        metas = [m for m in conn.execute(select(ExecutionEvent.meta)).scalars()]
    store.close()
    assert report.events == 2 and dict(report.unmapped) == {"lifecycle:transition odd": 1}
    assert SECRET not in repr(metas) and metas[0]["attributes"]["note"] == "api_key=***"


def _runs(count: int) -> Iterator[Contribution]:
    for index in range(count):
        run_id = f"run-{index}"
        yield Contribution(run_id, f"test#{index}", 1, Batch(runs=[{"id": run_id, "session_id": "s"}],
                           events=[{"id": f"{run_id}-e", "run_id": run_id, "session_id": "s",
                                    "event_type": "agent_call"}]), {"id": "s", "name": "s"})


def dying(count: int, *, report: Any, place: Any) -> Iterator[Contribution]:
    """Yields ``count`` runs, then the process is killed (as by the OOM killer)."""
    yield from _runs(count)
    os.kill(os.getpid(), signal.SIGKILL)


def surprised(count: int, *, report: Any, place: Any) -> Iterator[Contribution]:
    """Yields ``count`` runs, then meets a value of a shape it did not expect."""
    yield from _runs(count)
    place.where = "record 99"
    report.unmapped["odd record"] += 1
    {}["missing"]  # the unexpected value


def test_a_killed_child_is_named_and_what_arrived_is_written(tmp_path: Path) -> None:
    store = store_in(tmp_path, "k.db")
    with pytest.raises(SourceError, match=r"source\.log: the process reading it ended without finishing "
                                          r"\(exit code -9\)") as caught, importing("test", "source.log", store) as job:
        job.write_all(read_ahead(dying, (2 * CHUNK,), job))
    assert caught.value.report.runs_written == 2 * CHUNK  # both full chunks were sent before the kill
    store.close()


def test_an_unexpected_value_in_the_child_is_named_with_its_place(tmp_path: Path) -> None:
    store = store_in(tmp_path, "u.db")
    with pytest.raises(SourceError, match=r"source\.log: record 99: a value has an unexpected type or shape "
                                          r"\(KeyError") as caught, importing("test", "source.log", store) as job:
        job.write_all(read_ahead(surprised, (5,), job))
    assert caught.value.report.runs_written == 5 and dict(caught.value.report.unmapped) == {"odd record": 1}
    store.close()


def test_a_script_without_a_main_guard_can_read_ahead(data: Path, tmp_path: Path) -> None:
    """The child is a fresh interpreter, not multiprocessing's spawn, which would run this script again inside it."""
    log = data / "external" / "pm4py_logs" / "08_receipt.xes.gz"
    script = tmp_path / "unguarded.py"
    script.write_text(f"""from capture.importers import import_xes
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
upgrade("sqlite:///{tmp_path / 'g.db'}")
report = import_xes({str(log)!r}, CaptureStore.open("sqlite:///{tmp_path / 'g.db'}"), read_ahead=True)
print(report.runs_written, report.events)
""")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["1434", "8577"]


def test_the_import_runs_fewer_collections_and_puts_the_thresholds_back(data: Path, tmp_path: Path) -> None:
    seen = []
    store = store_in(tmp_path, "gc.db")
    before = gc.get_threshold()
    with importing("test", "source.log", store) as job:
        seen.append(gc.get_threshold())
        job.write_all(_runs(3))
    store.close()
    assert seen[0][0] == max(BULK_GC_THRESHOLD, before[0]) and gc.get_threshold() == before
