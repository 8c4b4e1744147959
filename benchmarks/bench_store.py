"""Capture store benchmark: bulk insert throughput and read-side latency on SQLite and PostgreSQL.

Run: ``.venv/bin/python benchmarks/bench_store.py`` (PostgreSQL from ``SKILLMINE_TEST_PG_URL``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``; a temporary database is created and dropped there;
``--no-pg`` skips it). Measures:

- ``CaptureStore.write_batch`` throughput, for two kinds of event ids: ``recorder`` ids as the recorder makes them
  (a per-process prefix and a counter, so each insert lands at the end of the id index) and ``random`` ids (UUID4,
  spread over the whole index, as content-hashed ids are), in batches of 500 realistic events (nested agent/LLM/tool/code/file
  events with message texts, arguments, results and token/cost meta, ~800 bytes of payload), against a baseline
  measured in the same run: one ORM ``session.add()`` + ``commit()`` per event, as the reference's
  ``EventRepository.create_event``; wall time, the client's CPU time and (local PostgreSQL) the server backends'
  CPU time from ``/proc``, which stay meaningful on a loaded machine;
- the bound on the same rows, interleaved with the write_batch passes: the rows prepared once (outside the
  timing), then inserted by the driver alone, SQLite ``executemany`` / PostgreSQL ``COPY`` straight into
  ``execution_events`` (no idempotency, no checks), and the client CPU of preparation alone; on PostgreSQL also
  the same COPY into a table of the same shape without its foreign keys, and into the bare heap (where the server's
  time per row goes);
- latency (p50/p95) of the event tree of one agent call, the full tree of the run's root, a run's statistics
  and a node summary, on a 5,000-event run.

It uses only ``write_batch`` and ``records.prepare_event``, so the same script measures older code too (copy it
into that checkout's ``benchmarks/``).
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session as OrmSession

from capture.core.items import new_id as recorder_id
from capture.read import queries
from capture.read.summary import compute_node_summary
from capture.store.capture_store import Batch, CaptureStore
from capture.store.migrate import upgrade
from capture.store.models import ExecutionEvent
from capture.store.records import prepare_event

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
AGENTS = ("planner", "engineer", "executor", "researcher", "control", "terminator")
TOOLS = ("run_python", "read_file", "write_file", "search_arxiv", "plot")
WORDS = ("the", "power", "spectrum", "camb", "compute", "plot", "multipole", "error", "residual", "fit", "data",
         "cosmology", "parameter", "chain", "likelihood", "result", "step", "figure", "table", "value")


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def random_id() -> str:
    """A UUID4 string: an id with no order, as an importer's content hash gives."""
    return str(uuid.uuid4())


ID_KINDS: dict[str, Callable[[], str]] = {"random": random_id, "recorder": recorder_id}


def make_run(session_id: str, run_id: str, n_events: int, *, seed: int = 7, nodes: int = 10,
             new_id: Callable[[], str] = random_id) -> tuple[list[dict], list[dict], str]:
    """Nodes and ``n_events`` nested events of one run (root state transition -> agent calls -> children), their
    ids from ``new_id``."""
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
    node_rows = [{"id": f"{run_id}-n{i}", "run_id": run_id, "session_id": session_id, "node_type": "agent",
                  "agent": AGENTS[i % len(AGENTS)], "order_index": i, "meta": {"id": f"step_{i}"}}
                 for i in range(nodes)]
    root = new_id()
    events = [{"id": root, "run_id": run_id, "session_id": session_id, "event_type": "state_transition",
               "event_subtype": "workflow", "agent_name": "system", "execution_order": 0, "timestamp": t0,
               "meta": {"from": "planning", "to": "executing"}}]
    order = 0
    per_node = max(1, n_events // nodes)
    while len(events) < n_events:
        order += 1
        node = node_rows[min(len(events) // per_node, nodes - 1)]["id"]
        agent = rng.choice(AGENTS)
        call = new_id()
        start = t0 + timedelta(seconds=order)
        events.append({"id": call, "run_id": run_id, "session_id": session_id, "node_id": node,
                       "parent_event_id": root, "depth": 1, "event_type": "agent_call", "event_subtype": "complete",
                       "agent_name": agent, "execution_order": order, "timestamp": start, "started_at": start,
                       "completed_at": start + timedelta(seconds=2), "duration_ms": 2000,
                       "inputs": {"message": _text(rng, 60), "context": {"step": order % 7, "attempt": 1}},
                       "outputs": {"response": _text(rng, 80)},
                       "meta": {"model": "gpt-4o", "temperature": 0.2}})
        for _ in range(rng.randint(2, 6)):
            if len(events) >= n_events:
                break
            order += 1
            kind = rng.choice(("llm_call", "tool_call", "code_exec", "file_gen", "message"))
            row = {"id": new_id(), "run_id": run_id, "session_id": session_id, "node_id": node,
                   "parent_event_id": call, "depth": 2, "event_type": kind, "agent_name": agent,
                   "execution_order": order, "timestamp": start + timedelta(milliseconds=order % 1000),
                   "duration_ms": rng.randint(5, 3000)}
            if kind == "llm_call":
                row.update(event_subtype="complete", inputs={"messages": [{"role": "user", "content": _text(rng, 40)}]},
                           outputs={"content": _text(rng, 60)},
                           meta={"model": "gpt-4o", "prompt_tokens": rng.randint(100, 4000),
                                 "completion_tokens": rng.randint(10, 800), "cost_usd": 0.0123})
            elif kind == "tool_call":
                row.update(event_subtype="complete", inputs={"tool_name": rng.choice(TOOLS),
                                                             "arguments": {"path": "data/x.csv", "n": 3}},
                           outputs={"result": _text(rng, 30)})
            elif kind == "code_exec":
                failed = rng.random() < 0.1
                row.update(event_subtype="error" if failed else "complete", status="failed" if failed else None,
                           inputs={"code": "import numpy as np\n" + _text(rng, 50), "language": "python"},
                           outputs={"exit_code": 1 if failed else 0, "stdout": _text(rng, 20)})
            elif kind == "file_gen":
                row.update(event_subtype="create", inputs={"file_path": f"data/out_{order}.png", "size_bytes": 1234})
            else:
                row.update(event_subtype="send", inputs={"sender": agent, "recipient": "control",
                                                         "content": _text(rng, 50)})
            events.append(row)
    return node_rows, events, root


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


BATCH = 500
EVENT_COLUMNS = tuple(c.name for c in ExecutionEvent.__table__.columns if c.name != "seq")
TIME_COLUMNS = frozenset({"timestamp", "started_at", "completed_at"})


def server_cpu(store: CaptureStore) -> dict[int, float] | None:
    """CPU seconds used so far by each PostgreSQL backend of the store's database (a local server: /proc)."""
    if store.engine.dialect.name != "postgresql":
        return None
    with store.engine.connect() as conn:
        pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")).scalars()
        out = {}
        for pid in pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                return None  # not a local server
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def server_seconds(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    if before is None or after is None:
        return None
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def new_run(store: CaptureStore, n_events: int, ids: str) -> list[dict]:
    """A fresh run and its nodes in the store; returns its events (new ids of kind ``ids``) to write."""
    session_id, run_id = "bench", uuid.uuid4().hex[:16]
    nodes, events, _ = make_run(session_id, run_id, n_events, nodes=20, new_id=ID_KINDS[ids])
    store.write_batch(Batch(runs=[{"id": run_id, "session_id": session_id, "mode": "planning_and_control"}],
                            nodes=nodes))
    return events


def bench_write_batch(store: CaptureStore, n_events: int, ids: str) -> dict[str, float | None]:
    events = new_run(store, n_events, ids)
    cpu_before = server_cpu(store)
    started, cpu = time.perf_counter(), time.process_time()
    inserted = 0
    for start in range(0, len(events), BATCH):
        inserted += store.write_batch(Batch(events=events[start:start + BATCH])).events_inserted
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert inserted == n_events, (inserted, n_events)
    return {"wall": elapsed, "cpu": cpu, "server": server_seconds(cpu_before, server_cpu(store))}


def driver_rows(store: CaptureStore, events: list[dict]) -> tuple[list[tuple], float]:
    """The events prepared (payloads as JSON text) as the driver's tuples, and the CPU seconds preparation took."""
    cpu = time.process_time()
    prepared = [prepare_event(e, payload_as_json=True) for e in events]
    cpu = time.process_time() - cpu
    sqlite = store.engine.dialect.name == "sqlite"
    rows = [tuple(e.get(c).replace(tzinfo=None).isoformat(" ", "microseconds")
                  if sqlite and c in TIME_COLUMNS and e.get(c) is not None else e.get(c) for c in EVENT_COLUMNS)
            for e in prepared]
    return rows, cpu


def bench_driver_bound(store: CaptureStore, n_events: int, ids: str, table: str = "execution_events",
                       ) -> dict[str, float | None]:
    """The same row shape inserted by the driver alone into ``table``: what the database takes, without the store's
    work."""
    rows, prepare_cpu = driver_rows(store, new_run(store, n_events, ids))
    columns = ", ".join(f'"{c}"' for c in EVENT_COLUMNS)
    raw = store.engine.raw_connection()
    cursor = raw.cursor()
    cpu_before = server_cpu(store)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        for start in range(0, len(rows), BATCH):
            chunk = rows[start:start + BATCH]
            if store.engine.dialect.name == "sqlite":
                cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES "
                                   f"({', '.join('?' * len(EVENT_COLUMNS))})", chunk)
            else:
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in chunk:
                        copy.write_row(row)
            raw.commit()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        cursor.close()
        raw.close()
    return {"wall": elapsed, "cpu": cpu, "server": server_seconds(cpu_before, server_cpu(store)),
            "prepare_cpu": prepare_cpu}


def bench_orm_baseline(store: CaptureStore, n_events: int) -> float:
    """The reference's way: one ORM object added and committed per event."""
    session_id, run_id = "bench", uuid.uuid4().hex[:16]
    nodes, events, _ = make_run(session_id, run_id, n_events, seed=11)
    store.write_batch(Batch(runs=[{"id": run_id, "session_id": session_id}], nodes=nodes))
    fields = {c.name for c in ExecutionEvent.__table__.columns}
    started = time.perf_counter()
    with OrmSession(store.engine) as db:
        for row in events:
            values = {k: v for k, v in row.items() if k in fields}
            values.setdefault("status", "completed")
            values["status"] = values["status"] or "completed"
            db.add(ExecutionEvent(**values))
            db.commit()
    return n_events / (time.perf_counter() - started)


def bench_reads(store: CaptureStore, repeats: int = 50) -> dict[str, tuple[float, float]]:
    session_id, run_id = "reads", uuid.uuid4().hex[:16]
    nodes, events, root = make_run(session_id, run_id, 5000, seed=3)
    store.write_batch(Batch(runs=[{"id": run_id, "session_id": session_id}], nodes=nodes))
    for start in range(0, len(events), 500):
        store.write_batch(Batch(events=events[start:start + 500]))
    if store.engine.dialect.name == "postgresql":
        with store.engine.begin() as conn:  # what autovacuum does after a bulk load; plans depend on it
            conn.execute(text("ANALYZE execution_events"))
    calls = [e["id"] for e in events if e["event_type"] == "agent_call"]
    node_id = nodes[3]["id"]
    cases = {
        "tree of one agent call": lambda i: queries.get_event_tree(store, session_id, calls[i % len(calls)]),
        "node summary (~500 events)": lambda i: compute_node_summary(store, session_id, node_id),
        "run statistics (5,000 events)": lambda i: queries.get_event_statistics(store, session_id, run_id),
        "events of a node (~500)": lambda i: queries.list_events_for_node(store, session_id, node_id),
        "full tree from run root (5,000 rows)": lambda i: queries.get_event_tree(store, session_id, root),
    }
    assert len(queries.get_event_tree(store, session_id, root)) == 5000
    out = {}
    for name, fn in cases.items():
        fn(0)
        times = []
        for i in range(repeats):
            t = time.perf_counter()
            fn(i)
            times.append((time.perf_counter() - t) * 1000)
        out[name] = (statistics.median(times), pct(times, 0.95))
    return out


def run_backend(label: str, url: str, n_events: int, baseline_events: int) -> dict:
    """Baseline, then three rounds of (driver bound, write_batch) for each id kind, interleaved so that all see the
    same table sizes and machine load, then the read latencies."""
    upgrade(url)
    store = CaptureStore.open(url)
    try:
        baseline = bench_orm_baseline(store, baseline_events)
        passes: dict[str, list[dict]] = {kind: [] for kind in ID_KINDS}
        bounds: dict[str, list[dict]] = {kind: [] for kind in ID_KINDS}
        for _ in range(3):
            for kind in ID_KINDS:
                bounds[kind].append(bench_driver_bound(store, n_events, kind))
                passes[kind].append(bench_write_batch(store, n_events, kind))
        shapes = server_shapes(store, n_events)
        reads = bench_reads(store)
    finally:
        store.close()
    return {"label": label, "n": n_events, "passes": passes, "bounds": bounds, "baseline": baseline, "reads": reads,
            "shapes": shapes}


# PostgreSQL: where the server's time per row goes. Tables shaped like ``execution_events`` with less on them, filled
# by the same COPY: without its foreign keys (every index kept), and the bare heap.
SHAPES = {"execution_events (indexes + 4 foreign keys)": None,
          "same indexes, no foreign keys": "INCLUDING DEFAULTS INCLUDING INDEXES",
          "heap alone": "INCLUDING DEFAULTS"}


def server_shapes(store: CaptureStore, n_events: int) -> dict[str, list[dict]]:
    """PostgreSQL only: the driver's COPY into each of :data:`SHAPES`, three rounds interleaved (recorder ids)."""
    if store.engine.dialect.name != "postgresql":
        return {}
    tables = {}
    with store.engine.begin() as conn:
        for index, (name, like) in enumerate(SHAPES.items()):
            tables[name] = f"bench_shape_{index}" if like else "execution_events"
            if like:
                conn.execute(text(f"CREATE TABLE {tables[name]} (LIKE execution_events {like})"))
    out: dict[str, list[dict]] = {name: [] for name in SHAPES}
    for _ in range(3):
        for name, table in tables.items():
            out[name].append(bench_driver_bound(store, n_events, "recorder", table))
    return out


def _best(passes: list[dict], key: str) -> float | None:
    values = [p[key] for p in passes if p.get(key)]
    return min(values) if values else None


def report(r: dict) -> None:
    """One block per id kind: write_batch's best rate and CPU per event, and the driver's bound on the same rows."""
    n = r["n"]
    driver = "executemany" if r["label"] == "SQLite" else "COPY"
    for kind in ID_KINDS:
        passes, bounds = r["passes"][kind], r["bounds"][kind]
        rates = [n / p["wall"] for p in passes]
        best = max(rates)
        server = _best(passes, "server")
        print(f"  {r['label']:<11} {kind + ' ids':<13} {best:>8,.0f} events/s  (passes: "
              f"{', '.join(f'{x:,.0f}' for x in rates)})  baseline {r['baseline']:>7,.0f} events/s  "
              f"ratio x{best / r['baseline']:.0f}")
        print(f"  {'':<25} CPU per event: client {_best(passes, 'cpu') / n * 1e6:.1f} us"
              + (f", server {server / n * 1e6:.1f} us" if server else ""))
        bound_rates = [n / b["wall"] for b in bounds]
        bound_server = _best(bounds, "server")
        print(f"  {'':<25} bound, the driver alone ({driver} of prepared rows): {max(bound_rates):,.0f} rows/s "
              f"(passes: {', '.join(f'{x:,.0f}' for x in bound_rates)}); CPU per row: client "
              f"{_best(bounds, 'cpu') / n * 1e6:.1f} us" + (f", server {bound_server / n * 1e6:.1f} us"
                                                             if bound_server else "")
              + f"; preparing a row: {_best(bounds, 'prepare_cpu') / n * 1e6:.1f} us CPU")
    for name, runs in r["shapes"].items():
        rates = [n / b["wall"] for b in runs]
        print(f"  {'':<25} COPY into {name}: {max(rates):,.0f} rows/s, server CPU per row "
              f"{_best(runs, 'server') / n * 1e6:.1f} us")


def pg_database(base: str):
    from contextlib import contextmanager

    @contextmanager
    def _ctx():
        url = make_url(base)
        name = f"skillmine_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield url.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

    return _ctx()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--baseline-events", type=int, default=1_000)
    parser.add_argument("--no-pg", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        results.append(run_backend("SQLite", f"sqlite:///{tmp}/bench.db", args.events, args.baseline_events))
    if not args.no_pg:
        with pg_database(os.environ.get("SKILLMINE_TEST_PG_URL") or DEFAULT_PG) as url:
            results.append(run_backend("PostgreSQL", url, args.events, args.baseline_events))
    print(f"write_batch, batches of {BATCH}, {args.events:,} events per pass (best of 3); baseline: ORM add+commit "
          f"per event on {args.baseline_events:,} events; CPU per event: the best pass")
    for r in results:
        report(r)
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("read latency on a 5,000-event run, 50 repeats: p50 / p95 ms")
    for r in results:
        for name, (p50, p95) in r["reads"].items():
            print(f"  {r['label']:<11} {name:<38} {p50:7.2f} / {p95:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
