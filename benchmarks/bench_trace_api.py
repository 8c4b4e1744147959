"""Trace API benchmark: HTTP latency of the read endpoints and SSE delivery lag on a 5,000-event run.

Run: ``.venv/bin/python benchmarks/bench_trace_api.py`` (a temporary SQLite store; ``--url`` for another
migrated store, e.g. a scratch PostgreSQL database). Measures, over HTTP on loopback against a running
:class:`~capture.read.trace_api.server.TraceServer` (keep-alive connection, JSON parsed by the client):

- p50/p95 of ``GET /api/runs/{id}``, ``/api/events/{id}/tree`` (an agent call's subtree and the whole run's root
  tree), ``/api/nodes/{id}/execution-summary`` and ``/api/runs/{id}/events`` (all 5,000 events), each against a
  baseline measured in the same run: the same :class:`~capture.read.trace_api.reader.TraceReader` call in-process
  (so the difference is the HTTP + JSON overhead);
- SSE delivery lag: an event is written with ``CaptureStore.write_batch`` every 50 ms while a client follows the
  run's stream; lag = client receive time - time ``write_batch`` returned (target < 100 ms + poll interval);
- with Chromium installed (``--no-browser`` skips it): the timeline page's first render of the 5,000 events, and
  for live events the page-side update time (SSE message handled -> row inserted, target < 100 ms) and the
  end-to-end time (``write_batch`` returned -> row in the DOM, as seen over the DevTools protocol).
"""

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "trace_api"))  # the stdlib DevTools client of the browser test

from chromium_devtools import Browser, chromium_path

from capture.read.trace_api.reader import TraceReader, open_read_only
from capture.read.trace_api.server import TraceServer
from capture.read.trace_api.stream import POLL_INTERVAL_S
from capture.store.capture_store import Batch, CaptureStore
from capture.store.migrate import upgrade

TARGET_MS = 500.0
UI_TARGET_MS = 100.0
SESSION, RUN = "bench", "bench-run"
CHILD_KINDS = ("llm_call", "tool_call", "code_exec", "file_gen", "message")


def build_run(store: CaptureStore, total: int, per_node: int) -> tuple[str, str, str]:
    """Write a run of ``total`` events: a root agent_call, then nodes of one agent_call with nested children.

    Returns (root event id, one node's agent_call id, that node's id).
    """
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    root = str(uuid.uuid4())
    nodes, events = [], [{"id": root, "run_id": RUN, "session_id": SESSION, "event_type": "agent_call",
                          "agent_name": "control", "execution_order": 0, "timestamp": t0, "started_at": t0}]
    order, node_index = 1, 0
    while len(events) < total:
        node_id, call = f"node-{node_index}", str(uuid.uuid4())
        nodes.append({"id": node_id, "run_id": RUN, "session_id": SESSION, "agent": "engineer",
                      "order_index": node_index, "meta": {"id": f"step_{node_index}"}})
        start = t0 + timedelta(seconds=order)
        events.append({"id": call, "run_id": RUN, "session_id": SESSION, "node_id": node_id,
                       "parent_event_id": root, "depth": 1, "event_type": "agent_call", "agent_name": "engineer",
                       "execution_order": order, "started_at": start, "completed_at": start + timedelta(seconds=30),
                       "duration_ms": 30_000, "inputs": {"task": "compute the CMB power spectrum " * 4}})
        order += 1
        parent = call
        for i in range(min(per_node - 1, total - len(events))):
            kind = CHILD_KINDS[i % len(CHILD_KINDS)]
            at = start + timedelta(milliseconds=250 * i)
            ident = str(uuid.uuid4())
            events.append({"id": ident, "run_id": RUN, "session_id": SESSION, "node_id": node_id,
                           "parent_event_id": parent, "depth": 2 if parent == call else 3, "event_type": kind,
                           "agent_name": "executor" if kind == "code_exec" else "engineer",
                           "execution_order": order, "started_at": at, "completed_at": at + timedelta(milliseconds=200), "duration_ms": 200,
                           "status": "failed" if i % 97 == 13 else "completed",
                           "inputs": {"args": {"code": "import numpy as np\n" * 5}},
                           "outputs": {"result": "ok " * 30},
                           "meta": {"total_tokens": 420, "cost_usd": 0.0021} if kind == "llm_call" else None})
            parent = ident if kind == "tool_call" else call
            order += 1
        node_index += 1
    store.write_batch(Batch(runs=[{"id": RUN, "session_id": SESSION, "mode": "planning_and_control",
                                   "status": "executing", "started_at": t0}], nodes=nodes))
    for i in range(0, len(events), 500):
        store.write_batch(Batch(events=events[i:i + 500]))
    return root, events[1]["id"], "node-0"


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def time_http(conn: http.client.HTTPConnection, path: str, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        json.loads(body)
        out.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise SystemExit(f"GET {path}: HTTP {response.status}: {body[:200]!r}")
    return out


def time_direct(call: Any, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def sse_lag(server: TraceServer, store: CaptureStore, count: int, after_seq: int) -> list[float]:
    """Write ``count`` events 50 ms apart while following the stream; lag per event in ms."""
    written: dict[str, float] = {}
    received: dict[str, float] = {}
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    conn.request("GET", f"/api/runs/{RUN}/stream?after_seq={after_seq}")
    response = conn.getresponse()

    def read() -> None:
        for raw in response:
            line = raw.decode()
            if line.startswith("data: ") and '"event_captured"' in line:
                received[json.loads(line[6:])["data"]["event_id"]] = time.perf_counter()
                if len(received) == count:
                    return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    time.sleep(0.3)
    for i in range(count):
        ident = f"live-{i}"
        store.write_batch(Batch(events=[{"id": ident, "run_id": RUN, "session_id": SESSION,
                                         "event_type": "info", "execution_order": 100_000 + i}]))
        written[ident] = time.perf_counter()
        time.sleep(0.05)
    reader.join(timeout=10)
    conn.close()
    missing = set(written) - set(received)
    if missing:
        raise SystemExit(f"SSE lost {len(missing)} of {count} events")
    return [(received[k] - written[k]) * 1000 for k in written]


# Wraps the page's handlers: when each live event's SSE message was handled and when its row was inserted.
PAGE_PROBE = """
window.__seen = {}; window.__shown = {};
const __schedule = schedule;
schedule = function (id) { if (!(id in window.__seen)) window.__seen[id] = performance.now(); __schedule(id); };
const __apply = applyLive;
applyLive = function () { const ids = [...state.changed]; __apply();
  const now = performance.now(); for (const id of ids) if (!(id in window.__shown)) window.__shown[id] = now; };
true
"""


def browser_figures(server: TraceServer, store: CaptureStore, count: int) -> tuple[float, list[float], list[float]]:
    """(first render ms, page-side update ms per event, end-to-end ms per event) in headless Chromium."""
    browser = Browser(chromium_path(), tempfile.mkdtemp(prefix="bench-chromium-"))
    try:
        browser.call("Page.enable")
        started = time.perf_counter()
        browser.call("Page.navigate", url=f"{server.url}/runs/{RUN}")
        browser.wait_for("document.querySelectorAll('.row').length >= 5000", timeout=60)
        first = (time.perf_counter() - started) * 1000
        browser.wait_for("document.getElementById('live-text').textContent === 'live'")
        browser.evaluate(PAGE_PROBE)
        end_to_end = []
        for i in range(count):
            ident = f"ui-{i}"
            store.write_batch(Batch(events=[{"id": ident, "run_id": RUN, "session_id": SESSION,
                                             "event_type": "info", "execution_order": 200_000 + i}]))
            written = time.perf_counter()
            browser.wait_for(f"!!document.getElementById('row-{ident}')", timeout=10)
            end_to_end.append((time.perf_counter() - written) * 1000)
        page = browser.evaluate("Object.keys(window.__shown).map(id => window.__shown[id] - window.__seen[id])")
        return first, page, end_to_end
    finally:
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a migrated, empty store (default: a temporary SQLite file)")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--per-node", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--live", type=int, default=100, help="events written while streaming")
    parser.add_argument("--no-browser", action="store_true", help="skip the headless Chromium figures")
    args = parser.parse_args()

    url = args.url or f"sqlite:///{tempfile.mkdtemp(prefix='bench-trace-')}/capture.db"
    upgrade(url)
    store = CaptureStore.open(url)
    started = time.perf_counter()
    root, call, node = build_run(store, args.events, args.per_node)
    build_s = time.perf_counter() - started
    engine = open_read_only(url)
    server = TraceServer(engine, "127.0.0.1", 0).start()
    reader = TraceReader(engine)
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=30)
    cases = [
        ("GET /api/runs/{id}", f"/api/runs/{RUN}", lambda: reader.run(RUN)),
        ("GET /api/events/{id}/tree (agent call, 100)", f"/api/events/{call}/tree", lambda: reader.event_tree(call)),
        ("GET /api/events/{id}/tree (run root, all)", f"/api/events/{root}/tree", lambda: reader.event_tree(root)),
        ("GET /api/nodes/{id}/execution-summary", f"/api/nodes/{node}/execution-summary",
         lambda: reader.node_summary(node)),
        ("GET /api/runs/{id}/events (all)", f"/api/runs/{RUN}/events", lambda: reader.run_events(RUN)),
        ("GET /api/runs/{id}/events?payloads=false (timeline)", f"/api/runs/{RUN}/events?payloads=false",
         lambda: reader.run_events(RUN, payloads=False)),
        ("GET /api/runs/{id}/events?event_type=code_exec", f"/api/runs/{RUN}/events?event_type=code_exec",
         lambda: reader.run_events(RUN, event_type="code_exec")),
    ]
    dialect = engine.dialect.name
    print(f"store: {dialect}  events: {args.events}  build: {build_s:.1f} s  repeats: {args.repeats}  "
          f"HTTP: keep-alive on loopback, body parsed by the client\n")
    print("| endpoint | HTTP p50 ms | HTTP p95 ms | direct call p50 ms | direct p95 ms | HTTP/direct (p50) "
          "| p95 / 500 ms target |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, path, call_direct in cases:
        time_http(conn, path, 2)
        http_p50, http_p95 = percentiles(time_http(conn, path, args.repeats))
        direct_p50, direct_p95 = percentiles(time_direct(call_direct, args.repeats))
        print(f"| {label} | {http_p50:.1f} | {http_p95:.1f} | {direct_p50:.1f} | {direct_p95:.1f} | "
              f"{http_p50 / direct_p50:.2f}x | {http_p95 / TARGET_MS:.3f} |")
    conn.close()
    max_seq = reader.run(RUN)["max_seq"]
    lag_p50, lag_p95 = percentiles(sse_lag(server, store, args.live, max_seq))
    target = 100 + POLL_INTERVAL_S * 1000
    print(f"\nSSE delivery lag ({args.live} events written 50 ms apart, poll interval "
          f"{POLL_INTERVAL_S * 1000:.0f} ms): p50 {lag_p50:.1f} ms  p95 {lag_p95:.1f} ms  "
          f"target {target:.0f} ms  p95/target {lag_p95 / target:.2f}")
    if not args.no_browser and chromium_path():
        first, page, end_to_end = browser_figures(server, store, 20)
        page_p50, page_p95 = percentiles(page)
        e2e_p50, e2e_p95 = percentiles(end_to_end)
        print(f"timeline page (headless Chromium): first render of {args.events} events {first:.0f} ms; "
              f"live update, SSE message -> row inserted p50 {page_p50:.1f} ms p95 {page_p95:.1f} ms "
              f"(target {UI_TARGET_MS:.0f} ms, p95/target {page_p95 / UI_TARGET_MS:.2f}); "
              f"write -> row in DOM p50 {e2e_p50:.0f} ms p95 {e2e_p95:.0f} ms")
    server.stop()
    engine.dispose()
    store.close()


if __name__ == "__main__":
    main()
