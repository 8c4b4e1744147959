"""The trace API's HTTP server: stdlib ``ThreadingHTTPServer``, JSON endpoints, SSE streams, the timeline page.

Routes (all ``GET``; every ``/api`` route takes ``session_id=`` to restrict lookups to one session):

- ``/`` and ``/runs/{id}`` — the timeline page (one self-contained HTML file)
- ``/api/runs?limit=`` — recent runs; ``/api/runs/{id}`` — run, nodes, files, statistics, highest seq
- ``/api/runs/{id}/events?event_type=&agent_name=&limit=&payloads=false``; ``/api/runs/{id}/failure``
- ``/api/runs/{id}/stream?after_seq=`` — Server-Sent Events (``Last-Event-ID`` header wins over ``after_seq``)
- ``/api/nodes/{id}/events?event_type=``, ``/api/nodes/{id}/execution-summary``, ``/api/nodes/{id}/files``
- ``/api/events/{id}`` (event, files, messages), ``/api/events/{id}/tree``
- ``/api/files/provenance?path=`` (or ``sha256=``)

Errors are JSON ``{"error": ...}``: 404 naming the missing id or route, 400 naming the bad parameter, 503 when the
store cannot be read; a traceback goes to the server's log, never to the client.
"""

import re
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from capture.core.payload import dumps
from capture.core.vocabulary import EVENT_TYPES
from capture.read.trace_api.reader import (
    DEFAULT_RUN_LIMIT,
    MAX_RUN_LIMIT,
    BadParameter,
    NotFound,
    TraceReader,
    parse_int,
)
from capture.read.trace_api.stream import (
    HEARTBEAT_S,
    POLL_INTERVAL_S,
    RunFollower,
    event_captured,
    sse_message,
)
from capture.store.db import StoreError

Handler = Callable[["TraceRequestHandler", re.Match, dict[str, str]], Any]
ROUTES: list[tuple[re.Pattern, frozenset[str], str]] = []


def route(pattern: str, *params: str) -> Callable[[Handler], Handler]:
    """Register a handler for a path pattern and the query parameters it accepts (plus ``session_id``)."""
    def register(func: Handler) -> Handler:
        ROUTES.append((re.compile(f"^{pattern}$"), frozenset({"session_id", *params}), func.__name__))
        return func
    return register


def _event_type(params: dict[str, str]) -> str | None:
    value = params.get("event_type") or None
    if value is not None and value not in EVENT_TYPES:
        raise BadParameter("event_type", value, "one of " + ", ".join(sorted(EVENT_TYPES)))
    return value


class TraceRequestHandler(BaseHTTPRequestHandler):
    """One request: route, answer JSON (or HTML, or an event stream), map errors to status codes."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server: "TraceServer"

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        try:
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            for pattern, allowed, name in ROUTES:
                match = pattern.match(parts.path)
                if match is None:
                    continue
                unknown = sorted(set(query) - allowed)
                if unknown:
                    raise BadParameter(unknown[0], query[unknown[0]], "no such parameter for " + parts.path)
                result = getattr(self, name)(match, query)
                if result is not None:
                    self._send_json(HTTPStatus.OK, result)
                return
            self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: {parts.path}"})
        except NotFound as exc:
            self._send_json(HTTPStatus.NOT_FOUND, {"error": str(exc), "kind": exc.kind, "id": exc.ident})
        except BadParameter as exc:
            self._send_json(HTTPStatus.BAD_REQUEST, {"error": str(exc), "parameter": exc.name})
        except (StoreError, SQLAlchemyError) as exc:
            self.log_error("store error on %s: %s", self.path, str(exc).splitlines()[0] if str(exc) else exc)
            self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "the capture store cannot be read now"})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the client gets a plain 500, the log gets the traceback
            traceback.print_exc(file=sys.stderr)
            self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    # -- responses --------------------------------------------------------------------------------------

    def _send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, payload: Any) -> None:
        self._send_body(status, dumps(payload).encode(), "application/json")

    @property
    def reader(self) -> TraceReader:
        return self.server.reader

    # -- pages ------------------------------------------------------------------------------------------

    @route(r"/(?:runs/[^/]+/?)?")
    def page(self, _match: re.Match, _query: dict[str, str]) -> None:
        self._send_body(HTTPStatus.OK, self.server.page, "text/html; charset=utf-8")

    # -- JSON -------------------------------------------------------------------------------------------

    @route(r"/api/runs", "limit")
    def runs(self, _match: re.Match, q: dict[str, str]) -> dict[str, Any]:
        limit = parse_int("limit", q.get("limit"), DEFAULT_RUN_LIMIT, minimum=1, maximum=MAX_RUN_LIMIT)
        return self.reader.runs(q.get("session_id"), limit)

    @route(r"/api/runs/([^/]+)")
    def run(self, m: re.Match, q: dict[str, str]) -> dict[str, Any]:
        return self.reader.run(m[1], q.get("session_id"))

    @route(r"/api/runs/([^/]+)/events", "event_type", "agent_name", "limit", "payloads")
    def run_events(self, m: re.Match, q: dict[str, str]) -> dict[str, Any]:
        payloads = q.get("payloads", "true")
        if payloads not in {"true", "false"}:
            raise BadParameter("payloads", payloads, "true or false")
        return self.reader.run_events(m[1], q.get("session_id"), event_type=_event_type(q),
                                      agent_name=q.get("agent_name") or None,
                                      limit=parse_int("limit", q.get("limit"), None, minimum=1),
                                      payloads=payloads == "true")

    @route(r"/api/runs/([^/]+)/failure")
    def failure(self, m: re.Match, q: dict[str, str]) -> dict[str, Any]:
        return self.reader.failure(m[1], q.get("session_id"))

    @route(r"/api/nodes/([^/]+)/events", "event_type")
    def node_events(self, m: re.Match, q: dict[str, str]) -> dict[str, Any]:
        return self.reader.node_events(m[1], q.get("session_id"), event_type=_event_type(q))

    @route(r"/api/nodes/([^/]+)/execution-summary")
    def node_summary(self, m: re.Match, q: dict[str, str]) -> dict[str, Any]:
        return self.reader.node_summary(m[1], q.get("session_id"))

    @route(r"/api/nodes/([^/]+)/files")
    def node_files(self, m: re.Match, q: dict[str, str]) -> dict[str, Any]:
        return self.reader.node_files(m[1], q.get("session_id"))

    @route(r"/api/events/([^/]+)")
    def event(self, m: re.Match, q: dict[str, str]) -> dict[str, Any]:
        return self.reader.event(m[1], q.get("session_id"))

    @route(r"/api/events/([^/]+)/tree")
    def event_tree(self, m: re.Match, q: dict[str, str]) -> dict[str, Any]:
        return self.reader.event_tree(m[1], q.get("session_id"))

    @route(r"/api/files/provenance", "path", "sha256")
    def provenance(self, _match: re.Match, q: dict[str, str]) -> dict[str, Any]:
        return self.reader.provenance(q.get("path") or q.get("sha256") or None, q.get("session_id"))

    # -- live stream ------------------------------------------------------------------------------------

    @route(r"/api/runs/([^/]+)/stream", "after_seq")
    def stream(self, m: re.Match, q: dict[str, str]) -> None:
        run_id = self.reader.resolve_run(m[1], q.get("session_id"))["id"]  # 404 before the stream starts
        resume = self.headers.get("Last-Event-ID")
        after = parse_int("Last-Event-ID" if resume else "after_seq", resume or q.get("after_seq"), 0)
        follower = RunFollower(self.server.engine, run_id, after)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.close_connection = True
        self.wfile.write(f"retry: 1000\n: following run {run_id} after seq {after}\n\n".encode())
        self.wfile.flush()
        self._follow(follower)

    def _client_gone(self) -> bool:
        readable, _, _ = select.select([self.connection], [], [], 0)
        if not readable:
            return False
        try:
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def _follow(self, follower: RunFollower) -> None:
        stopping, last_write, last_id = self.server.stopping, time.monotonic(), follower.after_seq
        while not stopping.is_set() and not self._client_gone():
            try:
                new, changed, status = follower.poll()
            except SQLAlchemyError as exc:
                self.log_error("stream poll failed: %s", str(exc).splitlines()[0] if str(exc) else exc)
                new, changed, status = [], [], None
                self.wfile.write(sse_message("error_occurred", {"error": "the capture store cannot be read now"}))
            for event in new:  # id: the highest seq sent so far, so a resumed stream never repeats an event
                last_id = max(last_id, event["seq"])
                self.wfile.write(sse_message("event_captured", event_captured(event), last_id))
            for event in changed:
                self.wfile.write(sse_message("event_updated", event_captured(event)))
            if status is not None:
                self.wfile.write(sse_message("run_status", {"run_id": follower.run_id, "status": status}))
            now = time.monotonic()
            if new or changed or status is not None:
                last_write = now
            elif now - last_write >= self.server.heartbeat_s:
                self.wfile.write(sse_message("heartbeat", {"timestamp": datetime.now(UTC).isoformat()}))
                last_write = now
            self.wfile.flush()
            stopping.wait(self.server.poll_interval)


class TraceServer(ThreadingHTTPServer):
    """The HTTP server plus what handlers share: the reader, the page, stream settings, a stop flag.

    ``port=0`` binds a free port (see :attr:`url`).
    """

    daemon_threads = True

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 8321, *,
                 poll_interval: float = POLL_INTERVAL_S, heartbeat_s: float = HEARTBEAT_S,
                 verbose: bool = False) -> None:
        super().__init__((host, port), TraceRequestHandler)
        self.engine, self.reader = engine, TraceReader(engine)
        self.poll_interval, self.heartbeat_s, self.verbose = poll_interval, heartbeat_s, verbose
        self.stopping = threading.Event()
        self.page = resources.files("capture.read.trace_api").joinpath("static/timeline.html").read_bytes()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "TraceServer":
        """Serve in a background thread (tests, benchmarks); :meth:`stop` ends it."""
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="trace-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """End open streams, stop accepting requests and release the socket."""
        self.stopping.set()
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

