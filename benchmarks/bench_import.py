"""Import throughput (events/s) of the XES and MARS-database importers into a fresh SQLite store, against the
raw parse alone measured in the same run (the import overhead is the ratio); and, with ``--orders N``, the
"one run per real run" check on the full CMBAgent data: every real record under ``data/cmbagent`` imported in N
orders (forward, reverse, then seeded shuffles) into fresh stores must give the same fingerprint (row counts and
content hashes per table), with no run counted twice.

    .venv/bin/python benchmarks/bench_import.py [--xes NAME] [--url URL] [--phases]
    .venv/bin/python benchmarks/bench_import.py --orders 4
"""

import argparse
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.raw_floor import raw_copy
from capture.core.redaction import Redactor
from capture.core.settings import CaptureSettings
from capture.importers import (
    import_cmbagent_db,
    import_cmbagent_history,
    import_cmbagent_trials,
    import_xes,
)
from capture.importers.cmbagent_db import REQUIRED_TABLES
from capture.importers.common import ImportReport
from capture.importers.merge import content_hash, fingerprint, redact_batch
from capture.importers.xes import _TraceMapper, iter_traces
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from capture.store.models import WorkflowRun

DATA = Path(os.environ.get("SKILLMINE_SHARED_DATA") or Path(__file__).resolve().parents[1] / ".." / "shared" / "data")


def raw_xes(path: Path) -> tuple[int, float, float]:
    """Baseline: stream-parse every trace, touching every event, writing nothing; (events, wall s, CPU s)."""
    started, cpu = time.perf_counter(), time.process_time()
    events = sum(len(events) for _, events in iter_traces(path))
    return events, time.perf_counter() - started, time.process_time() - cpu


def children_cpu() -> float:
    """CPU seconds of this process's finished children (the read-ahead process, once joined)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_xes_import(path: Path, store: CaptureStore, read_ahead: bool) -> tuple[ImportReport, float, float]:
    """The import, its CPU seconds in this process (parsing, mapping, redaction, hashing and SQLite's own work; on a
    shared machine CPU time is the steadier figure, wall time adds the waits for disk and other jobs) and in the
    read-ahead child (parsing, mapping, redaction)."""
    cpu, child = time.process_time(), children_cpu()
    report = import_xes(path, store, read_ahead=read_ahead)
    return report, time.process_time() - cpu, children_cpu() - child


def xes_phases(path: Path, store: CaptureStore) -> dict[str, float]:
    """CPU seconds of each non-write step of the XES import over the whole file, one step at a time (all traces
    held in memory): parse, map to rows, redact, content hash, the store's row preparation."""
    cpu = time.process_time
    started = cpu()
    traces = list(iter_traces(path))
    steps = {"parse": cpu() - started}
    mapper = _TraceMapper(path.name, {"id": "bench", "name": "bench"}, ImportReport(source=str(path), kind="xes"))
    started = cpu()
    batches = [mapper.contribution(i, trace, events).batch for i, (trace, events) in enumerate(traces, start=1)]
    steps["map"] = cpu() - started
    redactor = Redactor(CaptureSettings.from_env().redact_patterns)
    started = cpu()
    batches = [redact_batch(batch, redactor) for batch in batches]
    steps["redact"] = cpu() - started
    started = cpu()
    for batch in batches:
        content_hash(batch)
    steps["hash"] = cpu() - started
    started = cpu()
    for batch in batches:
        store.prepare(batch)
    steps["store prepare"] = cpu() - started
    return steps


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


def cmbagent_sources() -> list[tuple[str, object, Path]]:
    """(name, importer, path) of every real CMBAgent record of the shared data set."""
    cmb = DATA / "cmbagent"
    out: list[tuple[str, object, Path]] = [(p.name, import_cmbagent_db, p)
                                           for p in sorted((cmb / "mars_sqlite").glob("*.db"))]
    out += [(p.name, import_cmbagent_history, p) for p in sorted((cmb / "mars_sessions_2026-02-18").iterdir())]
    out += [(p.name, import_cmbagent_history, p) for p in sorted((cmb / "upstream_cmbagent_history").glob("*.json"))]
    out += [("mars_idea_generation_task", import_cmbagent_history, cmb / "mars_idea_generation_task"),
            ("benchmarks_cmbagent_trials.jsonl", import_cmbagent_trials, cmb / "benchmarks_cmbagent_trials.jsonl")]
    return out


def check_orders(n_orders: int, workdir: Path) -> int:
    """Import every real CMBAgent record in ``n_orders`` orders; 0 when all stores are the same, run for run."""
    items = cmbagent_sources()
    orders = [items, items[::-1]]
    shuffler = random.Random(20261204)
    while len(orders) < n_orders:
        orders.append(shuffler.sample(items, len(items)))
    prints = []
    for index, order in enumerate(orders[:n_orders]):
        store = store_at(None, workdir, f"order-{index}.db")
        started = time.perf_counter()
        reports = [importer(path, store) for _, importer, path in order]
        took = time.perf_counter() - started
        with store.engine.connect() as conn:
            metas = [m or {} for m in conn.execute(WorkflowRun.__table__.select().with_only_columns(
                WorkflowRun.meta)).scalars()]
        again = [importer(path, store) for _, importer, path in order]
        prints.append(fingerprint(store))
        store.close()
        task_ids = [m["task_id"] for m in metas if m.get("task_id")]
        merged = sum(1 for m in metas if len(m.get("sources", [])) > 1)
        print(f"order {index} ({len(order)} sources, first {order[0][0]}): {len(metas)} runs "
              f"({sum(r.runs_new for r in reports)} new, {sum(r.runs_merged for r in reports)} merged into another "
              f"source's run; {merged} runs with several sources), {prints[-1]['execution_events'][0]} events, "
              f"{prints[-1]['cost_records'][0]} cost records in {took:.1f} s; runs sharing a task id: "
              f"{len(task_ids) - len(set(task_ids))}; re-import writes {sum(r.runs_written for r in again)} runs")
    same = all(p == prints[0] for p in prints)
    print("tables (rows):", ", ".join(f"{k} {v[0]}" for k, v in prints[0].items()))
    print(f"every order gives the same store (row counts and content hashes): {'yes' if same else 'NO'}")
    if not same:
        for name in prints[0]:
            differing = [i for i, p in enumerate(prints) if p[name] != prints[0][name]]
            if differing:
                print(f"  {name}: orders {differing} differ from order 0")
    return 0 if same else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--xes", default="bpic2012.xes.gz")
    parser.add_argument("--url", help="store URL (default: a fresh SQLite file per importer)")
    parser.add_argument("--orders", type=int, default=0,
                        help="instead of throughput: import all real CMBAgent records in this many orders")
    parser.add_argument("--phases", action="store_true",
                        help="also time each non-write step of the XES import alone (CPU, as multiples of the parse)")
    args = parser.parse_args()
    if args.orders:
        with tempfile.TemporaryDirectory() as tmp:
            return check_orders(args.orders, Path(tmp))
    xes = DATA / "external" / "pm4py_logs" / args.xes
    dbs = sorted((DATA / "cmbagent" / "mars_sqlite").glob("*.db"))
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        events, base_s, base_cpu = raw_xes(xes)
        print(f"xes {xes.name}; load average {os.getloadavg()[0]:.1f}")
        print(f"  raw parse  {base_s:8.2f} s  {events / base_s:10,.0f} events/s  (CPU {base_cpu:.2f} s)")
        for read_ahead in (False, True):
            store = store_at(args.url, workdir, f"xes-{read_ahead}.db")
            report, cpu, child = timed_xes_import(xes, store, read_ahead)
            store.close()
            how = "import, read-ahead process" if read_ahead else "import, one process"
            print(f"  {how:<27} {report.seconds:7.2f} s  {report.events / report.seconds:8,.0f} events/s  "
                  f"({report.runs_written / report.seconds:,.0f} runs/s, {report.runs_written} runs, "
                  f"{report.events} events)  CPU {cpu:.2f} s + child {child:.2f} s")
            print(f"  {'':<27} ratio import/raw time: {report.seconds / base_s:.1f}x wall, "
                  f"{cpu / base_cpu:.1f}x CPU of this process")
        print(f"  load average {os.getloadavg()[0]:.1f}")
        if args.url is None:
            floor_wall, floor_cpu = raw_copy(workdir / "xes-False.db", workdir / "xes-floor.db")
            print(f"  floor: its stored rows by raw sqlite3 executemany {floor_wall:8.2f} s (CPU {floor_cpu:.2f} s, "
                  f"{floor_cpu / base_cpu:.2f}x the parse CPU)")
        if args.phases:
            store = store_at(None, workdir, "phases.db")
            steps = xes_phases(xes, store)
            store.close()
            print("  CPU by step, as multiples of the parse: " + ", ".join(
                f"{name} {seconds:.2f} s ({seconds / steps['parse']:.2f}x)" for name, seconds in steps.items()))
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
