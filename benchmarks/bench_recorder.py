"""Recorder benchmark: hot-path cost per event and sustained durable throughput into SQLite.

Run: ``.venv/bin/python benchmarks/bench_recorder.py [--events 100000]``

1. Hot path: the caller-side cost of ``capture.record_event``, of a ``capture.span`` (enter + exit) and of
   ``capture.record_message`` (a ``message`` event plus its ``messages`` row), measured
   call by call while the writer thread drains into SQLite, against a baseline measured in the same run: one
   synchronous ``CaptureStore.write_batch`` per event (what a logger that commits every row costs, like AG2's
   runtime SQLite logger).
2. Throughput: ``--events`` events recorded as fast as possible, from the first enqueue to ``flush()`` returning
   (everything durable in SQLite), against the same number written by the synchronous baseline.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import capture
from capture.core import clock
from capture.core.settings import CaptureSettings
from capture.store.capture_store import Batch, CaptureStore
from capture.store.migrate import upgrade


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def hot_path(n: int) -> dict[str, list[float]]:
    """Per-call costs in microseconds."""
    clock = time.perf_counter_ns
    event_costs, span_costs, message_costs = [], [], []
    meta = {"tool": "run_code", "attempt": 1}
    with capture.run("bench-hot"):
        for i in range(n):
            start = clock()
            capture.record_event("info", "trace", agent_name="engineer", meta=meta)
            event_costs.append((clock() - start) / 1000)
            start = clock()
            with capture.span("tool_call", agent_name="engineer", inputs=meta):
                pass
            span_costs.append((clock() - start) / 1000)
            start = clock()
            capture.record_message("planner", "engineer", "Plan step 2: run the fit.", silent=True, meta=meta)
            message_costs.append((clock() - start) / 1000)
            if i % 1000 == 999:
                time.sleep(0.002)  # a workflow does other work between events; lets the writer run
    return {"record_event": event_costs, "span": span_costs, "record_message": message_costs}


def baseline_sync(store: CaptureStore, n: int) -> list[float]:
    """Per-event cost (us) of a synchronous committed insert per event."""
    costs = []
    store.upsert_run(id="baseline-run", session_id="bench")
    for i in range(n):
        start = time.perf_counter_ns()
        store.write_batch(Batch(events=[{"id": f"baseline-{i}", "run_id": "baseline-run", "session_id": "bench",
                                         "event_type": "info", "event_subtype": "trace", "agent_name": "engineer",
                                         "meta": {"tool": "run_code", "attempt": 1}, "execution_order": i}]))
        costs.append((time.perf_counter_ns() - start) / 1000)
    return costs


def store_ceiling(store: CaptureStore, n: int, batch: int = 500) -> float:
    """Events per second of ``write_batch`` alone with ready-made 500-event batches (the writer's upper bound)."""
    store.upsert_run(id="ceiling-run", session_id="bench")
    now = clock.now()  # the same row shape the recorder writes (times, depth, status ...)
    rows = [{"id": f"ceiling-{i}", "run_id": "ceiling-run", "session_id": "bench", "node_id": None,
             "parent_event_id": None, "event_type": "info", "event_subtype": "trace", "agent_name": "engineer",
             "timestamp": now, "started_at": now, "completed_at": now, "duration_ms": None, "inputs": None,
             "outputs": None, "meta": {"tool": "run_code", "attempt": 1}, "error_message": None,
             "execution_order": i, "depth": 0, "status": "completed"} for i in range(n)]
    start = time.perf_counter()
    for first in range(0, n, batch):
        store.write_batch(Batch(events=rows[first:first + batch]))
    return n / (time.perf_counter() - start)


def throughput(n: int) -> tuple[float, float, float]:
    """(events per second from first enqueue to flush() returning, seconds enqueuing, seconds flushing)."""
    meta = {"tool": "run_code", "attempt": 1}
    with capture.run("bench-throughput"):
        start = time.perf_counter()
        for _ in range(n):
            capture.record_event("info", "trace", agent_name="engineer", meta=meta)
        enqueued = time.perf_counter()
        assert capture.flush(300), "flush timed out"
        end = time.perf_counter()
    return n / (end - start), enqueued - start, end - enqueued


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events for the throughput run")
    parser.add_argument("--hot", type=int, default=20_000, help="calls for the hot-path measurement")
    parser.add_argument("--baseline", type=int, default=2_000, help="events for the synchronous baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        capture.configure(CaptureSettings(database_url=url, spool_dir=Path(tmp) / "spool"))
        hot = hot_path(args.hot)
        capture.flush(60)
        rate, enqueue_s, flush_s = throughput(args.events)
        stats = capture.stats()
        capture.shutdown()
        store = CaptureStore.open(url)
        base = baseline_sync(store, args.baseline)
        ceiling = store_ceiling(store, args.events)
        store.close()

    base_median = statistics.median(base)
    print(f"hot path, {args.hot} calls each (us):")
    for name, costs in hot.items():
        print(f"  {name:<14} median {statistics.median(costs):6.2f}  p99 {_pct(costs, 0.99):7.2f}  "
              f"max {max(costs):9.1f}")
    print(f"  baseline: synchronous committed insert per event, {args.baseline} events: median {base_median:.1f}  "
          f"p99 {_pct(base, 0.99):.1f}")
    print(f"  ratio baseline/record_event median: {base_median / statistics.median(hot['record_event']):.0f}x")
    base_rate = 1e6 / statistics.mean(base)
    print(f"throughput into SQLite, {args.events} events, first enqueue to flush(): {rate:,.0f} events/s "
          f"(baseline synchronous: {base_rate:,.0f} events/s; ratio {rate / base_rate:.0f}x); "
          f"enqueue {enqueue_s:.2f} s, then flush {flush_s:.2f} s")
    print(f"  store alone (write_batch of ready 500-event batches, no recorder): {ceiling:,.0f} events/s; "
          f"recorder reaches {rate / ceiling:.0%} of it")
    print(f"recorder stats: written {stats['written']}, spooled {stats['spooled']}, dropped {stats['dropped']}, "
          f"errors {stats['errors']}, write latency p50 {stats['write_latency_ms_p50']} ms "
          f"p95 {stats['write_latency_ms_p95']} ms")


if __name__ == "__main__":
    main()
