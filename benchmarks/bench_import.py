"""Import throughput (events/s) of the XES and MARS-database importers into a fresh SQLite store, against the
raw parse alone measured in the same run (the import overhead is the ratio).

    .venv/bin/python benchmarks/bench_import.py [--xes NAME] [--url URL]
"""

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from capture.importers import import_cmbagent_db, import_xes
from capture.importers.cmbagent_db import REQUIRED_TABLES
from capture.importers.xes import iter_traces
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade

DATA = Path(os.environ.get("SKILLMINE_SHARED_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")


def raw_xes(path: Path) -> tuple[int, float]:
    """Baseline: stream-parse every trace, touching every event, writing nothing."""
    started = time.perf_counter()
    events = sum(len(events) for _, events in iter_traces(path))
    return events, time.perf_counter() - started


def raw_db(paths: list[Path]) -> tuple[int, float]:
    """Baseline: read every row of the tables the importer reads."""
    started = time.perf_counter()
    for path in paths:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True) as conn:
            for table in REQUIRED_TABLES:
                conn.execute(f"SELECT * FROM {table}").fetchall()
    events = sum(sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
                 .execute("SELECT count(*) FROM execution_events").fetchone()[0] for p in paths)
    return events, time.perf_counter() - started


def store_at(url: str | None, workdir: Path, name: str) -> CaptureStore:
    url = url or f"sqlite:///{workdir / name}"
    upgrade(url)
    return CaptureStore.open(url)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--xes", default="bpic2012.xes.gz")
    parser.add_argument("--url", help="store URL (default: a fresh SQLite file per importer)")
    args = parser.parse_args()
    xes = DATA / "external" / "pm4py_logs" / args.xes
    dbs = sorted((DATA / "cmbagent" / "mars_sqlite").glob("*.db"))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        events, base_s = raw_xes(xes)
        store = store_at(args.url, workdir, "xes.db")
        report = import_xes(xes, store)
        store.close()
        print(f"xes {xes.name}: {report.runs_written} runs, {report.events} events")
        print(f"  raw parse  {base_s:8.2f} s  {events / base_s:10,.0f} events/s")
        print(f"  import     {report.seconds:8.2f} s  {report.events / report.seconds:10,.0f} events/s  "
              f"({report.runs_written / report.seconds:,.0f} runs/s)")
        print(f"  ratio import/raw time: {report.seconds / base_s:.1f}x")
        events, base_s = raw_db(dbs)
        store = store_at(args.url, workdir, "mars.db")
        started = time.perf_counter()
        reports = [import_cmbagent_db(path, store) for path in dbs]
        took = time.perf_counter() - started
        store.close()
        rows = sum(r.runs_written + r.nodes + r.edges + r.events + r.files + r.costs for r in reports)
        print(f"mars dbs ({len(dbs)} files): {sum(r.runs_written for r in reports)} runs, "
              f"{sum(r.events for r in reports)} events, {rows} rows")
        print(f"  raw read   {base_s:8.3f} s  {events / base_s:10,.0f} events/s")
        print(f"  import     {took:8.3f} s  {sum(r.events for r in reports) / took:10,.0f} events/s  "
              f"({rows / took:,.0f} rows/s)")
        print(f"  ratio import/raw time: {took / base_s:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
