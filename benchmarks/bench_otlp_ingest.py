"""OTLP ingest throughput (spans/s) of ``skillmine serve otlp`` against the capture store's direct write of the same
rows, measured in the same run on fresh SQLite stores.

A simulated workload (``--runs`` CMBAgent-shaped runs, the fast engine) is exported as GenAI spans and packed into
protobuf ``ExportTraceServiceRequest`` bodies of at most ``--batch`` spans (whole traces; 512 is the SDK
``BatchSpanProcessor`` default). Three timings:

- direct: ``CaptureStore.write_batch`` of each run's stored rows (run, events, files, costs), one transaction per run;
- ingest: the same bodies parsed (``opentelemetry-proto``) and merged by ``OtlpIngestor`` in-process, one
  transaction per body;
- server: the bodies POSTed over loopback HTTP to a ``skillmine serve otlp`` process by ``--clients`` concurrent
  clients, timed from the first request to the last acknowledgement (each 200 comes after the commit; requests that
  arrive while a write runs share the next one).

Every store must end with the same number of events. ``--repeat`` runs each timing that many times and keeps the
best (the machine is shared).

    .venv/bin/python benchmarks/bench_otlp_ingest.py [--runs 200] [--batch 512] [--clients 2] [--repeat 3]
"""

import argparse
import os
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


def direct(url: str, runs: list[RunRows]) -> tuple[float, float]:
    store = CaptureStore.open(url)
    started, cpu = time.perf_counter(), time.process_time()
    for rows in runs:
        store.write_batch(Batch(runs=[dict(rows.run)], events=[{k: v for k, v in e.items() if k != "seq"}
                                                               for e in rows.events],
                                files=[dict(f) for f in rows.files],
                                costs=[{k: v for k, v in c.items() if k != "id"} for c in rows.costs]))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    return elapsed, cpu


def ingest(url: str, bodies: list[bytes]) -> tuple[float, float]:
    store = CaptureStore.open(url)
    ingestor = OtlpIngestor(store)
    started, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        ingestor.ingest(spans_from_protobuf(body))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    return elapsed, cpu


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server(url: str, bodies: list[bytes], clients: int) -> tuple[float, float]:
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
        started, cpu = time.perf_counter(), process_cpu(process.pid)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed, cpu = time.perf_counter() - started, process_cpu(process.pid) - cpu
        if failures:
            raise SystemExit(f"server refused requests: {failures[:3]}")
    finally:
        process.terminate()
        process.wait(60)
    return elapsed, cpu


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
        best_cpu: dict[str, float] = {}
        for attempt in range(args.repeat):
            for name, timed in (("direct", lambda u: direct(u, runs)), ("ingest", lambda u: ingest(u, bodies)),
                                ("server", lambda u: server(u, bodies, args.clients))):
                url = fresh(root, f"{name}{attempt}")
                elapsed, cpu = timed(url)
                if events_in(url) != events:
                    raise SystemExit(f"{name}: {events_in(url)} events stored, {events} expected")
                best[name] = min(best.get(name, elapsed), elapsed)
                best_cpu[name] = min(best_cpu.get(name, cpu), cpu)
        count = {"direct": events, "ingest": spans, "server": spans}
        rate = {name: count[name] / seconds for name, seconds in best.items()}
        per_cpu = {name: count[name] / seconds for name, seconds in best_cpu.items()}
        print(f"{'':14}{'wall s':>7}{'per wall s':>12}{'per CPU s':>11}{'ratio (wall, CPU)':>20}")
        for name, label in (("direct", "direct write"), ("ingest", "ingest"), ("server", "server (HTTP)")):
            print(f"{label:14}{best[name]:7.2f}{rate[name]:12,.0f}{per_cpu[name]:11,.0f}"
                  f"{rate[name] / rate['direct']:10.2f}{per_cpu[name] / per_cpu['direct']:10.2f}")
        print(f"(events/s for the direct write, spans/s otherwise; server: {args.clients} clients, its own process's "
              "CPU; load average " + " ".join(f"{x:.1f}" for x in os.getloadavg()) + ")")


if __name__ == "__main__":
    main()
