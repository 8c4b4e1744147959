"""OTLP ingest throughput (spans/s) of ``skillmine serve otlp`` against the capture store's direct write of the same
rows, measured in the same run on fresh SQLite stores.

A simulated workload (``--runs`` CMBAgent-shaped runs, the fast engine) is exported as GenAI spans and packed into
protobuf ``ExportTraceServiceRequest`` bodies of at most ``--batch`` spans (whole traces; 512 is the SDK
``BatchSpanProcessor`` default). Three timings:

- direct: ``CaptureStore.write_batch`` of each run's stored rows (run, events, files, costs), one transaction per run;
- ingest: the same bodies parsed (``opentelemetry-proto``) and merged by ``OtlpIngestor`` in-process;
- server: the bodies POSTed over loopback HTTP to a ``skillmine serve otlp`` process by ``--clients`` concurrent
  clients, timed from the first request to the last acknowledgement (each 200 comes after the commit).

Every store must end with the same number of events. ``--repeat`` runs each timing that many times and keeps the
best (the machine is shared).

    .venv/bin/python benchmarks/bench_otlp_ingest.py [--runs 200] [--batch 512] [--clients 2] [--repeat 3]
"""

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from sqlalchemy import text

from capture.importers.otlp import OtlpIngestor, spans_from_protobuf
from capture.read.otlp_export import RunRows, SpanBuilder, load_runs
from capture.store.capture_store import Batch, CaptureStore
from capture.store.db import make_engine
from capture.store.migrate import upgrade
from workloads.simulate import simulate


def fresh(root: Path, name: str) -> str:
    url = f"sqlite:///{root / name}.db"
    upgrade(url)
    return url


def events_in(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM execution_events")).scalar_one())
    finally:
        engine.dispose()


def pack(runs: list[RunRows], batch: int) -> tuple[list[bytes], int]:
    """Protobuf request bodies of whole traces, at most ``batch`` spans each (a trace larger than that alone)."""
    builder = SpanBuilder()
    bodies, pending, spans = [], [], 0
    for rows in runs:
        trace = builder.spans(rows)
        spans += len(trace)
        if pending and len(pending) + len(trace) > batch:
            bodies.append(encode_spans(pending).SerializeToString())
            pending = []
        pending.extend(trace)
    if pending:
        bodies.append(encode_spans(pending).SerializeToString())
    return bodies, spans


def direct(url: str, runs: list[RunRows]) -> float:
    store = CaptureStore.open(url)
    started = time.perf_counter()
    for rows in runs:
        store.write_batch(Batch(runs=[dict(rows.run)], events=[{k: v for k, v in e.items() if k != "seq"}
                                                               for e in rows.events],
                                files=[dict(f) for f in rows.files],
                                costs=[{k: v for k, v in c.items() if k != "id"} for c in rows.costs]))
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def ingest(url: str, bodies: list[bytes]) -> float:
    store = CaptureStore.open(url)
    ingestor = OtlpIngestor(store)
    started = time.perf_counter()
    for body in bodies:
        ingestor.ingest(spans_from_protobuf(body))
    elapsed = time.perf_counter() - started
    store.close()
    return elapsed


def server(url: str, bodies: list[bytes], clients: int) -> float:
    process = subprocess.Popen([sys.executable, "-m", "skillmine.cli", "serve", "otlp", "--port", "0", "--url", url],
                               stdout=subprocess.PIPE, text=True)
    try:
        endpoint = process.stdout.readline().split()[3]
        failures: list[str] = []

        def send(part: list[bytes]) -> None:
            with httpx.Client(timeout=120) as http:
                for body in part:
                    reply = http.post(endpoint, content=body, headers={"Content-Type": "application/x-protobuf"})
                    if reply.status_code != 200:
                        failures.append(f"HTTP {reply.status_code}: {reply.text[:200]}")
        threads = [threading.Thread(target=send, args=(bodies[i::clients],)) for i in range(clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        if failures:
            raise SystemExit(f"server refused requests: {failures[:3]}")
    finally:
        process.terminate()
        process.wait(60)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = fresh(root, "source")
        simulate(runs=args.runs, seed=11, url=source, ground_truth=root / "truth.jsonl", migrate=False)
        engine = make_engine(source)
        with engine.connect() as conn:
            ids = list(conn.execute(text("SELECT id FROM workflow_runs ORDER BY id")).scalars())
        runs = list(load_runs(engine, run_ids=ids))
        engine.dispose()
        bodies, spans = pack(runs, args.batch)
        events = sum(len(r.events) for r in runs)
        print(f"{len(runs)} runs, {events} events, {spans} spans (events + one workflow span per run) in "
              f"{len(bodies)} requests of <= {args.batch} spans, {sum(map(len, bodies)) / 1e6:.1f} MB protobuf")
        best: dict[str, float] = {}
        for attempt in range(args.repeat):
            for name, timed in (("direct", lambda u: direct(u, runs)), ("ingest", lambda u: ingest(u, bodies)),
                                ("server", lambda u: server(u, bodies, args.clients))):
                url = fresh(root, f"{name}{attempt}")
                elapsed = timed(url)
                if events_in(url) != events:
                    raise SystemExit(f"{name}: {events_in(url)} events stored, {events} expected")
                best[name] = min(best.get(name, elapsed), elapsed)
        rate = {name: (events if name == "direct" else spans) / seconds for name, seconds in best.items()}
        print(f"direct write  {best['direct']:6.2f} s  {rate['direct']:9,.0f} events/s")
        print(f"ingest        {best['ingest']:6.2f} s  {rate['ingest']:9,.0f} spans/s  "
              f"ratio to direct {rate['ingest'] / rate['direct']:.2f}")
        print(f"server (HTTP) {best['server']:6.2f} s  {rate['server']:9,.0f} spans/s  "
              f"ratio to direct {rate['server'] / rate['direct']:.2f}  ({args.clients} clients)")


if __name__ == "__main__":
    main()
