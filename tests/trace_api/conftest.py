"""Fixtures for the trace API: a sample run written through CaptureStore.write_batch and a live server over it.

The sample (session ``sess-a``, run ``run-1``): node ``n-eng`` holds an engineer ``agent_call`` (``e1``) with an
``llm_call`` (``e2``) and a ``tool_call`` (``e3``) that produced a ``file_gen`` (``e4``); node ``n-exe`` holds an
executor ``agent_call`` (``e5``) whose ``code_exec`` (``e6``) failed. Two files, a message and a cost record are
linked. Session ``sess-b`` holds ``run-2`` with one event, to check session filters.
"""

import http.client
import json
import queue
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from capture.read.trace_api.reader import open_read_only
from capture.read.trace_api.server import TraceServer
from capture.store.capture_store import Batch, CaptureStore
from capture.store.migrate import upgrade

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SESSION, RUN = "sess-a", "run-1"
FIG_HASH = "ab" * 32


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def event(id_: str, order: int, etype: str, agent: str, start: float, end: float | None, **kw: Any
          ) -> dict[str, Any]:
    """An event row of the sample run (timestamps from ``start``/``end`` seconds after T0)."""
    row = {"id": id_, "run_id": RUN, "session_id": SESSION, "event_type": etype, "agent_name": agent,
           "execution_order": order, "timestamp": at(start), "started_at": at(start)}
    if end is not None:
        row.update(completed_at=at(end), duration_ms=round((end - start) * 1000))
    row.update(kw)
    return row


def sample_batch() -> Batch:
    """The sample run described in the module docstring."""
    return Batch(
        runs=[{"id": RUN, "session_id": SESSION, "mode": "one_shot", "agent": "engineer", "model": "gpt-4o",
               "status": "failed", "started_at": at(0), "completed_at": at(9),
               "task_description": "plot a power spectrum"},
              {"id": "run-2", "session_id": "sess-b", "mode": "planning_and_control", "status": "completed",
               "started_at": at(-3600), "completed_at": at(-3500)}],
        nodes=[{"id": "n-eng", "run_id": RUN, "session_id": SESSION, "node_type": "agent", "agent": "engineer",
                "status": "completed", "order_index": 0, "meta": {"id": "step_1"}},
               {"id": "n-exe", "run_id": RUN, "session_id": SESSION, "node_type": "agent", "agent": "executor",
                "status": "failed", "order_index": 1, "meta": {"id": "step_2"}}],
        events=[
            event("e1", 1, "agent_call", "engineer", 0, 5, node_id="n-eng", event_subtype="complete",
                  inputs={"task": "plot a power spectrum"}, outputs={"reply": "saved plots/fig.png"}),
            event("e2", 2, "llm_call", "engineer", 0.1, 1.1, node_id="n-eng", parent_event_id="e1", depth=1,
                  meta={"model": "gpt-4o", "total_tokens": 150, "cost_usd": 0.0042}),
            event("e3", 3, "tool_call", "engineer", 1.5, 2.5, node_id="n-eng", parent_event_id="e1", depth=1,
                  inputs={"tool": "save_plot", "args": {"path": "plots/fig.png"}}),
            event("e4", 4, "file_gen", "engineer", 2.4, None, node_id="n-eng", parent_event_id="e3", depth=2,
                  outputs={"file_path": "plots/fig.png"}),
            event("e5", 5, "agent_call", "executor", 6, 9, node_id="n-exe", event_subtype="complete",
                  outputs={"reply": "exitcode: 1"}),
            event("e6", 6, "code_exec", "executor", 6.5, 8.5, node_id="n-exe", parent_event_id="e5", depth=1,
                  status="failed", event_subtype="error", inputs={"code": "1/0"},
                  error_message="ZeroDivisionError: division by zero"),
            {"id": "x1", "run_id": "run-2", "session_id": "sess-b", "event_type": "agent_call",
             "agent_name": "planner", "execution_order": 1, "timestamp": at(-3600)},
        ],
        files=[{"id": "f-fig", "run_id": RUN, "session_id": SESSION, "event_id": "e4", "node_id": "n-eng",
                "file_path": "plots/fig.png", "file_type": "plot", "size_bytes": 1234, "content_hash": FIG_HASH,
                "generating_agent": "engineer", "created_at": at(2.4)},
               {"id": "f-code", "run_id": RUN, "session_id": SESSION, "event_id": "e6", "node_id": "n-exe",
                "file_path": "codebase/analysis.py", "file_type": "code", "size_bytes": 42,
                "generating_agent": "executor", "created_at": at(6.5)}],
        messages=[{"run_id": RUN, "session_id": SESSION, "event_id": "e1", "node_id": "n-eng",
                   "sender": "engineer", "recipient": "executor", "content": "please run analysis.py",
                   "timestamp": at(5)}],
        costs=[{"run_id": RUN, "session_id": SESSION, "node_id": "n-eng", "event_id": "e2", "model": "gpt-4o",
                "agent_name": "engineer", "prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                "cost_usd": 0.0042, "timestamp": at(1.1)}],
    )


@pytest.fixture
def sample() -> Batch:
    return sample_batch()


@pytest.fixture
def serve() -> Iterator[Callable[..., TraceServer]]:
    """Start trace servers on free loopback ports over read-only engines (stopped after the test)."""
    servers: list[TraceServer] = []

    def start(url: str, **kwargs: Any) -> TraceServer:
        servers.append(TraceServer(open_read_only(url), "127.0.0.1", 0, **kwargs).start())
        return servers[-1]
    yield start
    for srv in servers:
        srv.stop()
        srv.engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    return url


@pytest.fixture
def writer(sqlite_url: str, sample: Batch) -> Iterator[CaptureStore]:
    """A migrated SQLite store holding the sample run (the writing side)."""
    store = CaptureStore.open(sqlite_url)
    store.write_batch(sample)
    yield store
    store.close()


@pytest.fixture
def server(sqlite_url: str, writer: CaptureStore, serve: Callable[..., TraceServer]) -> TraceServer:
    """A trace server over the sample store (fast polls and heartbeats, for stream tests)."""
    return serve(sqlite_url, poll_interval=0.05, heartbeat_s=0.5)


@pytest.fixture
def get() -> Callable[[str], tuple[int, Any]]:
    """GET a URL: (status, parsed JSON body)."""
    def fetch(url: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())
    return fetch


class SSEClient:
    """A real HTTP client of an SSE endpoint: parses messages on a background thread into a queue."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self.conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers)
        self.sock = self.conn.sock
        self.response = self.conn.getresponse()
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.received_at: dict[int, float] = {}
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        message: dict[str, Any] = {}
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if not line:
                    if "event" in message:
                        message["data"] = json.loads(message["data"])
                        self.messages.put(message)
                    message = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    message[key] = value
        except (OSError, ValueError):
            pass
        self.messages.put(None)  # end of stream

    def next(self, kinds: tuple[str, ...] = ("event_captured", "event_updated"),
             timeout: float = 5.0) -> dict[str, Any] | None:
        """The next message of one of ``kinds`` (``None`` at end of stream); fails the test on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no {kinds} message within {timeout} s")
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if message is None or message["event"] in kinds:
                return message

    def close(self) -> None:
        """Hang up: the shutdown wakes the reader thread, which sees the end of the stream and stops."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.reader.join(timeout=5)
        self.response.close()
        self.conn.close()


@pytest.fixture
def sse() -> Iterator[Callable[..., SSEClient]]:
    """Open SSE clients (closed after the test)."""
    clients: list[SSEClient] = []

    def connect(url: str, last_event_id: str | None = None) -> SSEClient:
        clients.append(SSEClient(url, last_event_id))
        return clients[-1]
    yield connect
    for client in clients:
        client.close()
