"""Scale-out benchmark: mode partitions mined by 1, 2 and 4 parallel processes on one DuckLake warehouse.

Simulates ``--runs`` runs into a SQLite store, extracts them into a DuckLake warehouse (catalog in a fresh
PostgreSQL database on the server of ``SKILLMINE_TEST_PG_URL``, dropped afterwards; Parquet data in a temporary
directory), then for each worker count mines every mode partition (``skill_pipeline.lib.partitions.mine_mode``,
one process per partition task) and reports wall time and the largest worker's peak RSS. The per-run costs it
prints (events, warehouse bytes, extraction and mining seconds) feed the 100-million-run estimate in DESIGN.md.

    .venv/bin/python benchmarks/bench_scale_out.py --runs 20000 --workers 1 2 4
"""

import argparse
import json
import multiprocessing
import os
import resource
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from capture.store.db import make_engine
from skill_pipeline.lib import extraction, partitions, warehouse
from skill_pipeline.lib.warehouse_backends import DuckLakeConfig
from skill_pipeline.resources import MiningSettings
from workloads.simulate import simulate


def _mine_one(descriptor: str, mode: str | None) -> dict[str, float]:
    """Mine one mode partition in this worker process; its seconds and the process's peak RSS so far."""
    start = time.perf_counter()
    with warehouse.connect(descriptor) as con, warehouse.scratch_directory(descriptor) as scratch:
        mined = partitions.mine_mode(con, scratch, mode, MiningSettings().params())
    return {"mode": mode, "seconds": time.perf_counter() - start, "templates": len(mined.templates),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _mine_all(descriptor: Path, modes: list[str | None], workers: int) -> dict[str, object]:
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        done = list(pool.map(_mine_one, [str(descriptor)] * len(modes), modes))
    return {"workers": workers, "wall_s": round(time.perf_counter() - start, 2),
            "slowest_partition_s": round(max(d["seconds"] for d in done), 2),
            "peak_rss_mb": round(max(d["peak_rss_mb"] for d in done), 1),
            "templates": sum(d["templates"] for d in done)}


def _directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    args = parser.parse_args()
    server = make_url(os.environ.get("SKILLMINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    name = f"bench_scale_out_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-out-") as tmp:
            root = Path(tmp)
            url = f"sqlite:///{root / 'capture.db'}"
            start = time.perf_counter()
            simulate(runs=args.runs, seed=args.seed, url=url, ground_truth=root / "truth.jsonl")
            simulate_s = time.perf_counter() - start
            lake = DuckLakeConfig(server.set(database=name).render_as_string(hide_password=False), str(root / "lake"))
            descriptor = lake.write_descriptor()
            engine = make_engine(url)
            start = time.perf_counter()
            extracted = extraction.extract(engine, descriptor)
            extract_s = time.perf_counter() - start
            engine.dispose()
            with warehouse.connect(descriptor) as con:
                modes = partitions.modes(con)
            data_bytes = _directory_bytes(root / "lake" / "data")
            print(json.dumps({"runs": args.runs, "events": extracted.events_inserted, "modes": len(modes),
                              "simulate_s": round(simulate_s, 1), "extract_s": round(extract_s, 2),
                              "lake_data_bytes": data_bytes, "store_bytes": (root / "capture.db").stat().st_size,
                              "events_per_run": round(extracted.events_inserted / args.runs, 1),
                              "lake_bytes_per_run": round(data_bytes / args.runs)}), flush=True)
            for workers in args.workers:
                print(json.dumps(_mine_all(descriptor, modes, workers)), flush=True)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
