"""Simulated runs per second: the AG2 engine (baseline) and the fast engine, with events per second.

One command: ``.venv/bin/python benchmarks/bench_simulate.py [--ag2-runs 24] [--fast-runs 2000] [--seed 1]``.
Both engines play the same seed into fresh SQLite stores in a temporary directory (plus PostgreSQL when
``SKILLMINE_TEST_PG_URL`` names a server: a temporary database is created and dropped). Beside wall time each row
gives this process's CPU seconds (steadier on a shared machine; PostgreSQL's server CPU is not in it). The fast
engine is also timed without a store (script drawing + row building only), and the rows it stored are copied by
raw ``sqlite3.executemany`` with no checks at all into a fresh migrated store (``benchmarks/raw_floor.py``): the
floor this schema sets for any write path, which bounds the fast engine's runs/s.
"""

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.raw_floor import raw_copy
from capture.store.capture_store import Batch
from workloads import fast_engine
from workloads.script import build_run_script
from workloads.simulate import simulate


def _pg_database():
    base = os.environ.get("SKILLMINE_TEST_PG_URL")
    if not base:
        return None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(base)
    name = f"skillmine_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url.set(database=name).render_as_string(hide_password=False), drop


def _generation_only(runs: int, seed: int) -> int:
    """Draw and build the fast engine's rows of ``runs`` runs, writing them nowhere; returns the events."""
    events = 0
    for index in range(runs):
        events += fast_engine.add_run(build_run_script(seed, index), Batch())
    return events


class _Timer:
    """Wall and CPU seconds since creation."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _simulated(label: str, rows: list, **kwargs: object):
    timer = _Timer()
    summary = simulate(**kwargs)
    wall, cpu = timer.stop()
    rows.append((label, summary.runs, summary.events, wall, cpu))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ag2-runs", type=int, default=24)
    parser.add_argument("--fast-runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rows: list[tuple[str, int, int, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ag2 = _simulated("ag2 engine, SQLite (baseline)", rows, runs=args.ag2_runs, seed=args.seed, engine="ag2",
                         url=f"sqlite:///{root / 'ag2.db'}", ground_truth=root / "ag2.jsonl", work_dir=root / "work")
        fast = _simulated("fast engine, SQLite", rows, runs=args.fast_runs, seed=args.seed,
                          url=f"sqlite:///{root / 'fast.db'}", ground_truth=root / "fast.jsonl")
        pg = _pg_database()
        if pg is not None:
            url, drop = pg
            try:
                _simulated("fast engine, PostgreSQL", rows, runs=args.fast_runs, seed=args.seed, url=url,
                           ground_truth=root / "pg.jsonl")
            finally:
                drop()
        timer = _Timer()
        events = _generation_only(args.fast_runs, args.seed)
        rows.append(("fast engine, rows only (no store)", args.fast_runs, events, *timer.stop()))
        rows.append(("its stored rows, raw sqlite3 executemany (floor)", fast.runs, fast.events,
                     *raw_copy(root / "fast.db", root / "floor.db")))
    baseline = ag2.runs / ag2.seconds
    print(f"seed {args.seed}; events per run (fast): {fast.events / max(fast.runs, 1):.0f}; "
          f"rows per run incl. messages/files/costs: "
          f"{(fast.events + fast.messages + fast.files + fast.costs) / max(fast.runs, 1):.0f}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print("| engine | runs | events | seconds | CPU s | runs/s | runs per CPU s | events/s | runs/s vs ag2 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, runs, events, secs, cpu in rows:
        print(f"| {name} | {runs:,} | {events:,} | {secs:.1f} | {cpu:.1f} | {runs / secs:,.1f} | "
              f"{runs / cpu:,.1f} | {events / secs:,.0f} | {runs / secs / baseline:.1f}x |")


if __name__ == "__main__":
    main()
