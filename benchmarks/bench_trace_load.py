"""Trace server under load on loopback: concurrent readers and live streams while a writer records events.

Run: ``.venv/bin/python benchmarks/bench_trace_load.py`` (defaults: 200 readers, 50 streams, 2,000 events/s for
15 s; a temporary SQLite store; ``--url`` for a migrated PostgreSQL database). Three processes, so none shares a
GIL with another: the server (``skillmine trace serve`` with ``SKILLMINE_TRACE_TOKEN`` set, every request carries
the bearer token), the writer (``CaptureStore.write_batch`` every 20 ms, paced to the rate, across 10 live runs),
and this client (asyncio: ``--readers`` connections each sending GETs over keep-alive with ``--think`` seconds
between answers, round-robin over the JSON routes on 20 seeded 250-event runs and on the live runs; ``--streams``
SSE connections, spread evenly over the live runs, opened before the writer starts).

Reports: reader latency p50/p99 and throughput, errors (non-200 answers, broken connections: must be 0), and for
every stream whether it received exactly the events the store holds for its run, in seq order (the ids of the
events are compared with the store after the writer stops), plus delivery lag (write time -> received).
"""

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select

from capture.read.queries import EVENTS
from capture.store.capture_store import Batch, CaptureStore
from capture.store.migrate import upgrade

TOKEN = "bench-token-" + uuid.uuid4().hex
SESSION = "load"
IDLE_REUSE_S = 4.0
LIVE_RUNS = [f"live-{i}" for i in range(10)]
SEEDED_RUNS = [f"seeded-{i}" for i in range(20)]
# What `skillmine trace serve --port 0 --url URL` runs, without loading the CLI's other parts.
SERVE = "import sys\nfrom capture.read.trace_api.server import serve\nsys.exit(serve(sys.argv[1], '127.0.0.1', 0))"
KINDS = ("agent_call", "llm_call", "tool_call", "code_exec", "message")


def event_row(run: str, order: int, at: datetime, ident: str, node: str | None = None) -> dict[str, Any]:
    kind = KINDS[order % len(KINDS)]
    return {"id": ident, "run_id": run, "session_id": SESSION, "event_type": kind, "node_id": node,
            "agent_name": ("engineer", "executor", "planner")[order % 3], "execution_order": order,
            "timestamp": at, "started_at": at, "completed_at": at + timedelta(milliseconds=40), "duration_ms": 40,
            "inputs": {"tool_name": "run_code", "code": "import numpy as np\n" * 4} if kind == "tool_call" else None,
            "meta": {"prompt_tokens": 300, "completion_tokens": 120, "cost_usd": 0.0021} if kind == "llm_call"
            else None}


def seed(url: str) -> None:
    """20 finished runs of 250 events in 5 steps (what readers read) and the empty live runs."""
    store = CaptureStore.open(url)
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    runs = [{"id": r, "session_id": SESSION, "mode": "one_shot", "status": "completed", "started_at": t0,
             "task_description": f"Plot the power spectrum, variant {i}"} for i, r in enumerate(SEEDED_RUNS)]
    runs += [{"id": r, "session_id": SESSION, "mode": "planning_and_control", "status": "running",
              "started_at": t0, "task_description": "live run"} for r in LIVE_RUNS]
    nodes = [{"id": f"{r}-n{k}", "run_id": r, "session_id": SESSION, "node_type": "agent", "agent": "engineer",
              "status": "completed", "order_index": k, "meta": {"id": f"step_{k + 1}"}}
             for r in SEEDED_RUNS for k in range(5)]
    store.write_batch(Batch(runs=runs, nodes=nodes))
    for r in SEEDED_RUNS:
        store.write_batch(Batch(events=[event_row(r, i, t0 + timedelta(seconds=i), f"{r}-e{i}", f"{r}-n{i // 50}")
                                        for i in range(250)]))
    store.close()


def write(url: str, rate: int, seconds: float) -> None:
    """The writer process: ``rate`` events/s for ``seconds``, a batch every 20 ms, ids carrying the write time."""
    store = CaptureStore.open(url)
    tick, per_batch = 0.02, max(1, round(rate * 0.02))
    start, written, orders, slowest = time.monotonic(), 0, dict.fromkeys(LIVE_RUNS, 0), 0.0
    batch_no = 0
    while time.monotonic() - start < seconds:
        events = []
        now = datetime.now(UTC)
        for i in range(per_batch):
            run = LIVE_RUNS[(written + i) % len(LIVE_RUNS)]
            orders[run] += 1
            events.append(event_row(run, orders[run], now, f"w{time.time_ns()}-{written + i}"))
        began = time.monotonic()
        store.write_batch(Batch(events=events))
        slowest = max(slowest, time.monotonic() - began)
        written += len(events)
        batch_no += 1
        delay = start + batch_no * tick - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    elapsed = time.monotonic() - start
    store.close()
    print(json.dumps({"written": written, "seconds": round(elapsed, 2), "rate": round(written / elapsed),
                      "slowest_batch_ms": round(slowest * 1000, 1), "cpu_s": round(time.process_time(), 1)}),
          flush=True)


# -- the client -------------------------------------------------------------------------------------------


class Connection:
    """A keep-alive HTTP/1.1 connection sending GETs with the bearer token."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.used = 0.0

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.writer is not None and time.monotonic() - self.used > IDLE_REUSE_S:
            self.writer.close()  # the server closes keep-alive connections idle for 5 s: do not race it
            self.writer = None
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
                          .encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: (\d+)", head)
        body = await self.reader.readexactly(int(length[1])) if length else b""
        self.used = time.monotonic()
        if re.search(rb"(?i)connection: close", head):
            self.writer.close()
            self.writer = None
        return int(head[9:12]), body


async def reader_loop(host: str, port: int, paths: list[str], offset: int, think: float, stop: asyncio.Event,
                      latencies: list[float], errors: list[str]) -> None:
    conn, i = Connection(host, port), offset
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        began = time.perf_counter()
        try:
            status, body = await conn.get(path)
        except (OSError, asyncio.IncompleteReadError) as exc:
            errors.append(f"{path}: {type(exc).__name__}: {exc}")
            conn = Connection(host, port)
            continue
        latencies.append((time.perf_counter() - began) * 1000)
        if status != 200:
            errors.append(f"{path}: HTTP {status}: {body[:120]!r}")
        await asyncio.sleep(think)


class Stream:
    """One SSE connection: the event ids it received in order, and their delivery lags."""

    def __init__(self, run: str) -> None:
        self.run, self.ids, self.lags, self.error = run, [], [], None
        self.ready = asyncio.Event()

    async def follow(self, host: str, port: int, stop: asyncio.Event) -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(f"GET /api/runs/{self.run}/stream HTTP/1.1\r\nHost: {host}\r\n"
                         f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            if int(head[9:12]) != 200:
                self.error = head.split(b"\r\n")[0].decode()
                return
            buffer = b""
            while not stop.is_set():
                size_line = await reader.readuntil(b"\r\n")  # chunked transfer encoding
                size = int(size_line.strip(), 16)
                chunk = await reader.readexactly(size + 2)
                received = time.time()
                buffer += chunk[:-2]
                *messages, buffer = buffer.split(b"\n\n")
                for message in messages:
                    if b"event: run_status" in message:
                        self.ready.set()
                    if b"event: event_captured" in message:
                        ident = re.search(rb'"event_id":"([^"]+)"', message)[1].decode()
                        self.ids.append(ident)
                        if ident.startswith("w"):
                            self.lags.append((received - int(ident[1:].split("-")[0]) / 1e9) * 1000)
            writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            if not stop.is_set():
                self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


async def client(args: argparse.Namespace, host: str, port: int, url: str) -> dict[str, Any]:
    paths = ["/api/runs?limit=50", "/api/search?q=plotting"]
    for r in SEEDED_RUNS:
        paths += [f"/api/runs/{r}", f"/api/runs/{r}/events?payloads=false", f"/api/runs/{r}/agents",
                  f"/api/runs/{r}/steps/step_2", f"/api/runs/{r}/failure"]
    paths += [f"/api/runs/{r}" for r in LIVE_RUNS]
    stop_streams, stop_readers = asyncio.Event(), asyncio.Event()
    streams = [Stream(LIVE_RUNS[i % len(LIVE_RUNS)]) for i in range(args.streams)]
    stream_tasks = [asyncio.create_task(s.follow(host, port, stop_streams)) for s in streams]
    await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in streams)), timeout=30)
    latencies: list[float] = []
    errors: list[str] = []
    readers = [asyncio.create_task(reader_loop(host, port, paths, i * 7, args.think, stop_readers, latencies,
                                               errors)) for i in range(args.readers)]
    await asyncio.sleep(1.0)  # readers warm up before the writer starts
    latencies.clear()
    began = time.monotonic()
    writer = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--write", url, "--rate", str(args.rate), "--seconds", str(args.seconds),
        stdout=subprocess.PIPE)
    written = json.loads((await writer.communicate())[0])
    reading_s = time.monotonic() - began
    stop_readers.set()
    await asyncio.gather(*readers)
    served = len(latencies)

    store = CaptureStore.open(url)
    with store.engine.connect() as conn:
        truth = {r: list(conn.execute(select(EVENTS.c.id).where(EVENTS.c.run_id == r).order_by(EVENTS.c.seq))
                         .scalars()) for r in LIVE_RUNS}
    store.close()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(len(s.ids) < len(truth[s.run]) for s in streams if not s.error):
        await asyncio.sleep(0.1)
    stop_streams.set()
    for task in stream_tasks:
        task.cancel()
    exact = sum(1 for s in streams if s.ids == truth[s.run])
    lags = [lag for s in streams for lag in s.lags]
    return {
        "readers": args.readers, "streams": args.streams, "think_s": args.think, "writer": written,
        "reader_requests": served, "reader_rps": round(served / reading_s),
        "reader_p50_ms": round(statistics.median(latencies), 1) if latencies else None,
        "reader_p99_ms": round(pct(latencies, 0.99), 1), "reader_max_ms": round(max(latencies, default=0), 1),
        "errors": len(errors) + sum(1 for s in streams if s.error), "first_errors": errors[:3] +
        [s.error for s in streams if s.error][:3],
        "streams_exact_in_order": f"{exact}/{len(streams)}",
        "events_per_stream": sorted({len(s.ids) for s in streams}),
        "delivered_total": sum(len(s.ids) for s in streams),
        "lag_p50_ms": round(statistics.median(lags), 1) if lags else None, "lag_p99_ms": round(pct(lags, 0.99), 1),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=200)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rate", type=int, default=2000, help="events written per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="how long the writer writes")
    parser.add_argument("--think", type=float, default=0.5, help="seconds a reader waits between requests")
    parser.add_argument("--url", help="a migrated store to use (default: a temporary SQLite file)")
    parser.add_argument("--write", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write(args.write, args.rate, args.seconds)
        return
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'capture.db'}"
        upgrade(url)
        seed(url)
        server = subprocess.Popen([sys.executable, "-c", SERVE, url], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                                  env={**os.environ, "SKILLMINE_TRACE_TOKEN": TOKEN})
        try:
            line = server.stdout.readline()
            host, port = re.search(r"http://([\d.]+):(\d+)/", line).groups()
            result = asyncio.run(client(args, host, int(port), url))
            result["cpu_s"] = {"server": cpu_seconds(server.pid),
                               "client": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime
                                               + resource.getrusage(resource.RUSAGE_SELF).ru_stime, 1),
                               "writer": result["writer"].pop("cpu_s")}
            result["load_average"] = os.getloadavg()
        finally:
            server.terminate()
            server.wait(timeout=20)
    print(json.dumps(result, indent=2))
    if result["errors"] or result["streams_exact_in_order"] != f"{args.streams}/{args.streams}":
        sys.exit(1)


if __name__ == "__main__":
    main()
