"""The trace API server: a Starlette app under uvicorn (the ``skillmine[trace]`` extra), JSON endpoints, live
Server-Sent Events streams fed by one shared change feed, and the timeline page.

Routes (all ``GET`` except ``POST /api/session``; every ``/api`` route takes ``session_id=`` to restrict lookups to
one session; runs are named by id or unique id prefix):

- ``/`` and ``/runs/{id}`` — the timeline page (one self-contained HTML file)
- ``/api/runs?limit=`` — recent runs; ``/api/runs/{id}`` — run, nodes, files, statistics, usage, highest seq
- ``/api/runs/{id}/events?event_type=&agent_name=&limit=&payloads=false``
- ``/api/runs/{id}/failure``, ``/api/runs/{id}/agents``, ``/api/runs/{id}/steps/{step}`` — the trace questions
- ``/api/search?q=&mode=&outcome=&agent=&file_type=&limit=`` — runs by task text and filters
- ``/api/runs/{id}/stream?after_seq=`` — Server-Sent Events (``Last-Event-ID`` header wins over ``after_seq``)
- ``/api/nodes/{id}/events?event_type=``, ``/api/nodes/{id}/execution-summary``, ``/api/nodes/{id}/files``
- ``/api/events/{id}`` (event, files, messages), ``/api/events/{id}/tree``
- ``/api/files/provenance?path=`` (or ``sha256=``)
- ``/api/runs/{id}/<name>`` for each extra answer the caller mounts (:data:`RunAnswer`; ``skillmine trace serve``
  mounts ``conformance``), and ``/api/answers`` listing their names (what the page asks before using one)
- ``POST /api/session`` — trade the bearer token for an HttpOnly, SameSite=Strict cookie (what the page does, so
  its ``EventSource`` is authorised without the token in a URL)

Safety: binding beyond loopback requires ``SKILLMINE_TRACE_TOKEN`` (then every ``/api`` request needs
``Authorization: Bearer <token>`` or the session cookie); query strings, parameters, headers and bodies are
bounded (400/413, never 500); live streams are capped (503 with ``Retry-After``); idle connections and idle streams
time out; every response carries ``X-Content-Type-Options: nosniff``, ``Referrer-Policy`` and
``Cache-Control: no-store``, the page a strict Content-Security-Policy; no CORS header unless origins are
configured. Errors are JSON ``{"error": ...}``; a traceback goes to the server's log, never to the client.
"""

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import os
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import uvicorn
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from capture.core.payload import dumps
from capture.core.vocabulary import EVENT_TYPES
from capture.read.trace_api.reader import (
    DEFAULT_RUN_LIMIT,
    MAX_RUN_LIMIT,
    BadParameter,
    NotFound,
    TraceReader,
    open_read_only,
    parse_int,
)
from capture.read.trace_api.stream import (
    HEARTBEAT_S,
    POLL_INTERVAL_S,
    STORE_ERROR,
    ChangeFeed,
    Subscriber,
    event_captured,
    sse_message,
)
from capture.store.db import StoreError

TOKEN_ENV = "SKILLMINE_TRACE_TOKEN"
MIN_TOKEN_LENGTH = 16
COOKIE = "skillmine_trace"
MAX_STREAMS = 100
MAX_QUERY_BYTES = 2048
MAX_BODY_BYTES = 1024
MAX_EVENT_LIMIT = 100_000
MAX_SEQ = 2**63 - 1
MAX_TEXT = 200
STREAM_IDLE_S = 600.0
KEEP_ALIVE_S = 5
REQUEST_HEAD_S = 10.0
MAX_CONNECTIONS = 1000
STREAM_BATCH = 50  # queued polls written together
QUERY_WORKERS = 2
SEARCH_FILTERS = ("mode", "outcome", "agent", "file_type")
RUN_ROUTES = frozenset({"events", "failure", "agents", "steps", "stream"})  # /api/runs/{id}/<these> are built in
_ANSWER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")

RunAnswer = Callable[[Engine, dict[str, Any]], Any]
"""An extra answer about one run, passed in by the server's caller so that ``capture`` needs no import of what
computes it: called in a worker thread with the read-only engine and the run's row (id resolved from a prefix,
session checked); returns what is served as JSON. ``KeyError`` becomes a 404."""


class ServerRefused(RuntimeError):
    """The server will not start with these settings (the message says which setting to change)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token, or with a short one (:class:`ServerRefused`)."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ServerRefused(f"{TOKEN_ENV} is {len(token)} characters long; use at least {MIN_TOKEN_LENGTH} "
                            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if not is_loopback(host) and not token:
        raise ServerRefused(f"binding to {host} serves captured prompts, code and outputs beyond this machine: "
                            f"set {TOKEN_ENV} to a secret of at least {MIN_TOKEN_LENGTH} characters (clients send "
                            f"it as 'Authorization: Bearer <token>'), or bind to 127.0.0.1")


@dataclass
class Settings:
    """What a trace server needs besides its engine; ``token=None`` means no authentication (loopback only)."""

    token: str | None = None
    max_streams: int = MAX_STREAMS
    poll_interval: float = POLL_INTERVAL_S
    heartbeat_s: float = HEARTBEAT_S
    stream_idle_s: float = STREAM_IDLE_S
    cors_origins: tuple[str, ...] = ()
    verbose: bool = False
    workers: int = QUERY_WORKERS
    request_head_s: float = REQUEST_HEAD_S


# -- page -------------------------------------------------------------------------------------------------


def load_page() -> tuple[bytes, str]:
    """The timeline page and its Content-Security-Policy (the inline script allowed by its sha256 only)."""
    page = resources.files("capture.read.trace_api").joinpath("static/timeline.html").read_bytes()
    script = re.search(rb"<script>(.*?)</script>", page, re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(script[1] if script else b"").digest()).decode()
    csp = (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; connect-src 'self'; "
           "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return page, csp


# -- middleware -------------------------------------------------------------------------------------------


class Guard:
    """Outermost ASGI middleware: bounds (query string, declared body), authentication, security headers."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.settings = app, settings
        self.session_value = session_cookie_value(settings.token) if settings.token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        send = _with_headers(send)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> Response | None:
        if len(scope.get("query_string", b"")) > MAX_QUERY_BYTES:
            return _error(400, f"query string longer than {MAX_QUERY_BYTES} bytes", parameter="query")
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > MAX_BODY_BYTES or b"chunked" in headers.get(
                b"transfer-encoding", b""):
            return _error(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes with a Content-Length")
        path = scope["path"]
        if self.settings.token is None or not path.startswith("/api/") or path == "/api/session":
            return None
        if self._authorised(headers):
            return None
        return _error(401, f"this trace server requires a token ({TOKEN_ENV} on the server): send "
                      "'Authorization: Bearer <token>', or open the timeline page and enter it there",
                      headers={"WWW-Authenticate": 'Bearer realm="skillmine trace"'})

    def _authorised(self, headers: dict[bytes, bytes]) -> bool:
        auth = headers.get(b"authorization", b"").decode("latin-1")
        if auth[:7].lower() == "bearer " and hmac.compare_digest(auth[7:].strip().encode(),
                                                                 str(self.settings.token).encode()):
            return True
        cookies = headers.get(b"cookie", b"").decode("latin-1")
        for part in cookies.split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE and hmac.compare_digest(value.encode(), str(self.session_value).encode()):
                return True
        return False


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"), (b"cache-control", b"no-store")]


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            message["headers"] = [*message.get("headers", []),
                                  *((k, v) for k, v in SECURITY_HEADERS if k not in names)]
        await send(message)
    return sending


def session_cookie_value(token: str) -> str:
    """The cookie the page gets for the token: derived from it, so the token itself never sits in a cookie."""
    return hmac.new(token.encode(), b"skillmine trace session", hashlib.sha256).hexdigest()


# -- responses --------------------------------------------------------------------------------------------


def _error(status: int, message: str, *, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def _json(payload: Any) -> Response:
    return Response(dumps(payload).encode(), media_type="application/json")


def _answers(handler: Callable[[Request, TraceReader, dict[str, str]], Any], *params: str
             ) -> Callable[[Request], Awaitable[Response]]:
    """A JSON endpoint: checks the query's parameters, runs ``handler`` in a worker thread, maps errors."""
    allowed = frozenset({"session_id", *params})

    async def endpoint(request: Request) -> Response:
        query = dict(request.query_params)
        try:
            unknown = sorted(set(query) - allowed)
            if unknown:
                raise BadParameter(unknown[0], query[unknown[0]], "no such parameter for " + request.url.path)
            for name, value in query.items():
                if len(value) > MAX_TEXT:
                    raise BadParameter(name, value[:40] + "...", f"at most {MAX_TEXT} characters")
            reader: TraceReader = request.app.state.reader
            result = await _in_worker(request, handler, request, reader, query)
        except NotFound as exc:
            return _error(404, str(exc), kind=exc.kind, id=exc.ident)
        except BadParameter as exc:
            return _error(400, str(exc), parameter=exc.name)
        except (StoreError, SQLAlchemyError) as exc:
            print(f"trace API: store error on {request.url.path}: {str(exc).splitlines()[0] if str(exc) else exc}",
                  file=sys.stderr)
            return _error(503, STORE_ERROR["error"])
        except Exception:  # noqa: BLE001 - the client gets a plain 500, the log gets the traceback
            traceback.print_exc(file=sys.stderr)
            return _error(500, "internal error")
        return result if isinstance(result, Response) else _json(result)
    return endpoint


async def _in_worker(request: Request, func: Callable[..., Any], *args: Any) -> Any:
    """Run a store query on the server's few worker threads: queries hold the GIL for most of their time, and
    more threads would only take it from the event loop and the change feed that keep live streams flowing."""
    return await asyncio.get_running_loop().run_in_executor(request.app.state.workers, func, *args)


def _event_type(q: dict[str, str]) -> str | None:
    value = q.get("event_type") or None
    if value is not None and value not in EVENT_TYPES:
        raise BadParameter("event_type", value, "one of " + ", ".join(sorted(EVENT_TYPES)))
    return value


def _sid(q: dict[str, str]) -> str | None:
    return q.get("session_id") or None


def _runs(request: Request, r: TraceReader, q: dict[str, str]) -> Any:
    return r.runs(_sid(q), parse_int("limit", q.get("limit"), DEFAULT_RUN_LIMIT, minimum=1, maximum=MAX_RUN_LIMIT))


def _search(request: Request, r: TraceReader, q: dict[str, str]) -> Any:
    limit = parse_int("limit", q.get("limit"), DEFAULT_RUN_LIMIT, minimum=1, maximum=MAX_RUN_LIMIT)
    return r.search(q.get("q") or None, _sid(q), limit=limit, **{k: q.get(k) or None for k in SEARCH_FILTERS})


def _run_events(request: Request, r: TraceReader, q: dict[str, str]) -> Any:
    payloads = q.get("payloads", "true")
    if payloads not in {"true", "false"}:
        raise BadParameter("payloads", payloads, "true or false")
    return r.run_events(request.path_params["run_id"], _sid(q), event_type=_event_type(q),
                        agent_name=q.get("agent_name") or None, payloads=payloads == "true",
                        limit=parse_int("limit", q.get("limit"), None, minimum=1, maximum=MAX_EVENT_LIMIT))


def _by(method: str, key: str, *kw: str) -> Callable[[Request, TraceReader, dict[str, str]], Any]:
    """A handler calling ``reader.<method>(path_params[key], session_id, **{kw: q[kw]})``."""
    def handler(request: Request, r: TraceReader, q: dict[str, str]) -> Any:
        extra = {"event_type": _event_type(q)} if "event_type" in kw else {}
        return getattr(r, method)(request.path_params[key], _sid(q), **extra)
    return handler


def _step(request: Request, r: TraceReader, q: dict[str, str]) -> Any:
    return r.step(request.path_params["run_id"], request.path_params["step"], _sid(q))


def _provenance(request: Request, r: TraceReader, q: dict[str, str]) -> Any:
    return r.provenance(q.get("path") or q.get("sha256") or None, _sid(q))


def _run_answer(name: str, answer: RunAnswer) -> Callable[[Request, TraceReader, dict[str, str]], Any]:
    """A handler resolving the run (prefix, session) and asking ``answer`` about it."""
    def handler(request: Request, r: TraceReader, q: dict[str, str]) -> Any:
        run = r.resolve_run(request.path_params["run_id"], _sid(q))
        try:
            return answer(r.engine, run)
        except KeyError as exc:
            raise NotFound("run", run["id"]) from exc
    handler.__name__ = f"answer_{name}"
    return handler


def check_run_answers(run_answers: Mapping[str, RunAnswer]) -> None:
    """Refuse answer names that are not path-safe or that would shadow a built-in run route (``ValueError``)."""
    for name in run_answers:
        if not _ANSWER_NAME.match(name) or name in RUN_ROUTES:
            raise ValueError(f"cannot mount a run answer named {name!r}: use lower-case letters, digits and '-', "
                             f"and none of {', '.join(sorted(RUN_ROUTES))}")


async def _page(request: Request) -> Response:
    page, csp = request.app.state.page
    return Response(page, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": csp})


async def _session(request: Request) -> Response:
    """Trade ``Authorization: Bearer <token>`` for the session cookie (204), or say why not."""
    settings: Settings = request.app.state.settings
    if settings.token is None:
        return Response(status_code=204)
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() != "bearer " or not hmac.compare_digest(auth[7:].strip().encode(), settings.token.encode()):
        return _error(401, "wrong or missing token", headers={"WWW-Authenticate": 'Bearer realm="skillmine trace"'})
    response = Response(status_code=204)
    response.set_cookie(COOKIE, session_cookie_value(settings.token), httponly=True, samesite="strict", path="/",
                        secure="https" in (request.url.scheme, request.headers.get("x-forwarded-proto")))
    return response


# -- live streams -----------------------------------------------------------------------------------------


async def _stream(request: Request) -> Response:
    """``/api/runs/{id}/stream``: catch-up after the client's cursor, then the shared feed's changes."""
    state = request.app.state
    settings: Settings = state.settings
    query = dict(request.query_params)
    try:
        unknown = sorted(set(query) - {"session_id", "after_seq"})
        if unknown:
            raise BadParameter(unknown[0], query[unknown[0]], "no such parameter for " + request.url.path)
        resume = request.headers.get("last-event-id")
        after = parse_int("Last-Event-ID" if resume else "after_seq", resume or query.get("after_seq"), 0,
                          maximum=MAX_SEQ)
        run = await _in_worker(request, state.reader.resolve_run, request.path_params["run_id"], _sid(query))
    except NotFound as exc:
        return _error(404, str(exc), kind=exc.kind, id=exc.ident)
    except BadParameter as exc:
        return _error(400, str(exc), parameter=exc.name)
    except (StoreError, SQLAlchemyError):
        return _error(503, STORE_ERROR["error"])
    with state.streams_lock:
        if state.streams >= settings.max_streams:
            return _error(503, f"too many live streams: this server follows at most {settings.max_streams} at once; "
                          "retry later", headers={"Retry-After": "5"})
        state.streams += 1
    sub = Subscriber(run["id"], asyncio.get_running_loop())
    try:
        catch_up = await _in_worker(request, state.feed.subscribe, sub, after)
    except (StoreError, SQLAlchemyError):
        _release(state, sub)
        return _error(503, STORE_ERROR["error"])
    return _StreamResponse(_follow(request, sub, catch_up, after), media_type="text/event-stream",
                           headers={"X-Accel-Buffering": "no"}, release=lambda: _release(state, sub))


class _StreamResponse(StreamingResponse):
    """A streaming response that gives its stream slot back however it ends, even when the client left before
    the body started (then the body generator never runs, so its own ``finally`` cannot)."""

    def __init__(self, *args: Any, release: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.release()


def _release(state: Any, sub: Subscriber) -> None:
    """Detach a stream from the feed and free its slot (once, whichever path ends the stream first)."""
    with state.streams_lock:
        if sub.released:
            return
        sub.released = True
        state.streams -= 1
    state.feed.unsubscribe(sub)


async def _follow(request: Request, sub: Subscriber, catch_up: Any, after: int):
    """The SSE body: ``id:`` is the highest seq sent so far, so a resumed stream never repeats an event."""
    state = request.app.state
    settings: Settings = state.settings
    last_id, sent = after, {e["seq"] for e in catch_up.events}
    try:
        yield f"retry: 1000\n: following run {sub.run_id} after seq {after}\n\n".encode()
        chunk = []
        for event in catch_up.events:
            last_id = max(last_id, event["seq"])
            chunk.append(sse_message("event_captured", event_captured(event), last_id))
        yield b"".join([*chunk, sse_message("run_status", {"run_id": sub.run_id, "status": catch_up.status})])
        last_change = last_beat = time.monotonic()
        while True:
            try:
                change = await asyncio.wait_for(sub.queue.get(), timeout=min(1.0, settings.heartbeat_s))
            except TimeoutError:
                now = time.monotonic()
                if await request.is_disconnected() or now - last_change > settings.stream_idle_s:
                    return
                if now - last_beat >= settings.heartbeat_s:
                    last_beat = now
                    yield sse_message("heartbeat", {"timestamp": datetime.now(UTC).isoformat()})
                continue
            batch = [change]
            while not sub.queue.empty() and len(batch) < STREAM_BATCH:  # what queued meanwhile goes in one write
                batch.append(sub.queue.get_nowait())
            last_change = last_beat = time.monotonic()
            chunk = []
            for items in batch:
                for item in items or ():
                    if item.kind != "event_captured":
                        chunk.append(item.message)
                    elif item.seq > after and item.seq not in sent:
                        # in order, the prepared message (id = its seq); a late commit keeps the highest id sent
                        chunk.append(item.message if item.seq > last_id else
                                     sse_message(item.kind, item.payload, last_id))
                        last_id = max(last_id, item.seq)
            if sent:  # what the feed has passed (this batch included) can no longer come twice
                horizon = state.feed.horizon(sub.run_id)
                sent = {seq for seq in sent if seq > horizon}
            if chunk:
                yield b"".join(chunk)
            if None in batch:
                return
    finally:
        _release(state, sub)


# -- the app ----------------------------------------------------------------------------------------------


def create_app(engine: Engine, settings: Settings, run_answers: Mapping[str, RunAnswer] | None = None
               ) -> Starlette:
    """The trace API as an ASGI app over a read-only ``engine`` (the caller starts and stops ``app.state.feed``),
    with ``run_answers`` mounted at ``/api/runs/{id}/<name>``."""
    answers = dict(run_answers or {})
    check_run_answers(answers)
    listed = {"answers": sorted(answers)}
    routes = [
        Route("/", _page), Route("/runs/{run_id}", _page), Route("/runs/{run_id}/", _page),
        Route("/api/session", _session, methods=["POST"]),
        Route("/api/runs", _answers(_runs, "limit")),
        Route("/api/search", _answers(_search, "q", "limit", *SEARCH_FILTERS)),
        Route("/api/runs/{run_id}", _answers(_by("run", "run_id"))),
        Route("/api/runs/{run_id}/events", _answers(_run_events, "event_type", "agent_name", "limit", "payloads")),
        Route("/api/runs/{run_id}/failure", _answers(_by("failure", "run_id"))),
        Route("/api/runs/{run_id}/agents", _answers(_by("agents", "run_id"))),
        Route("/api/runs/{run_id}/steps/{step}", _answers(_step)),
        Route("/api/runs/{run_id}/stream", _stream),
        Route("/api/nodes/{node_id}/events", _answers(_by("node_events", "node_id", "event_type"), "event_type")),
        Route("/api/nodes/{node_id}/execution-summary", _answers(_by("node_summary", "node_id"))),
        Route("/api/nodes/{node_id}/files", _answers(_by("node_files", "node_id"))),
        Route("/api/events/{event_id}", _answers(_by("event", "event_id"))),
        Route("/api/events/{event_id}/tree", _answers(_by("event_tree", "event_id"))),
        Route("/api/files/provenance", _answers(_provenance, "path", "sha256")),
        Route("/api/answers", _answers(lambda request, r, q: listed)),
        *(Route(f"/api/runs/{{run_id}}/{name}", _answers(_run_answer(name, answer)))
          for name, answer in sorted(answers.items())),
        Route("/{path:path}", _not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]),
    ]
    middleware = [Middleware(Guard, settings=settings)]
    if settings.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                                     allow_methods=["GET"], allow_headers=["Authorization", "Last-Event-ID"]))
    app = Starlette(routes=routes, middleware=middleware)
    app.state.settings, app.state.reader, app.state.page = settings, TraceReader(engine), load_page()
    app.state.feed = ChangeFeed(engine, poll_interval=settings.poll_interval)
    app.state.streams, app.state.streams_lock = 0, threading.Lock()
    app.state.workers = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="trace-query")
    return app


async def _not_found(request: Request) -> Response:
    return _error(404, f"no such endpoint: {request.url.path}")


class RequestHeadDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head: a connection that sends nothing, or dribbles
    its headers, is closed after :attr:`head_timeout` seconds (uvicorn's own keep-alive timer stops at the first
    byte and does not run before the first request). Never while a request is being answered (live streams)."""

    head_timeout = REQUEST_HEAD_S
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def handle_events(self) -> None:
        super().handle_events()
        if not self._waiting_for_head():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _waiting_for_head(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        if self._waiting_for_head() and not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.head_timeout, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._waiting_for_head() and not self.transport.is_closing():
            self.transport.close()


class TraceServer:
    """The app under uvicorn on a socket bound at construction (``port=0`` picks a free port, see :attr:`url`).

    :meth:`start` serves in a background thread (tests, benchmarks), :meth:`serve_forever` in this one.
    """

    def __init__(self, engine: Engine, host: str = "127.0.0.1", port: int = 8321, *,
                 settings: Settings | None = None, run_answers: Mapping[str, RunAnswer] | None = None,
                 **overrides: Any) -> None:
        settings = settings or Settings(token=os.environ.get(TOKEN_ENV) or None)
        for name, value in overrides.items():
            setattr(settings, name, value)
        check_binding(host, settings.token)
        self.engine, self.settings = engine, settings
        self.app = create_app(engine, settings, run_answers)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections
        try:
            self.socket.bind((host, port))
            self.socket.listen(2048)  # connections queue from now on, before uvicorn takes the socket
        except OSError:
            self.socket.close()
            raise
        self.server_address = self.socket.getsockname()[:2]
        protocol = type("TraceHTTPProtocol", (RequestHeadDeadline,), {"head_timeout": settings.request_head_s})
        self.uvicorn = uvicorn.Server(uvicorn.Config(
            self.app, http=protocol, log_level="info" if settings.verbose else "warning", access_log=settings.verbose,
            timeout_keep_alive=KEEP_ALIVE_S, limit_concurrency=MAX_CONNECTIONS, timeout_graceful_shutdown=1,
            server_header=False, proxy_headers=False, lifespan="off", h11_max_incomplete_event_size=16 * 1024))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}"

    @property
    def live_streams(self) -> int:
        """How many live streams are open now."""
        return self.app.state.streams

    def serve_forever(self) -> None:
        """Serve until interrupted (SIGINT/SIGTERM), then end open streams."""
        self.app.state.feed.start()
        try:
            self.uvicorn.run(sockets=[self.socket])
        except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it handled once it has shut down
            pass
        finally:
            self.app.state.feed.stop()
            self.socket.close()
            self.app.state.workers.shutdown(wait=False)

    def start(self) -> "TraceServer":
        """Serve in a background thread; returns once the server accepts connections."""
        self.app.state.feed.start()
        self._thread = threading.Thread(target=lambda: asyncio.run(self.uvicorn.serve(sockets=[self.socket])),
                                        name="trace-api", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """End open streams, stop accepting requests and release the socket."""
        self.app.state.feed.stop()
        if self._thread is not None:
            self.uvicorn.should_exit = True
            self._thread.join(timeout=10)
            self._thread = None
        self.socket.close()
        self.app.state.workers.shutdown(wait=False)


def serve(url: str | None, host: str, port: int, *, verbose: bool = False, cors_origins: tuple[str, ...] = (),
          run_answers: Mapping[str, RunAnswer] | None = None) -> int:
    """``skillmine trace serve``: check the binding, open the store read-only, serve until interrupted (with
    ``run_answers`` mounted, see :data:`RunAnswer`)."""
    token = os.environ.get(TOKEN_ENV) or None
    check_binding(host, token)
    engine = open_read_only(url)
    try:
        try:
            server = TraceServer(engine, host, port, settings=Settings(token=token, verbose=verbose,
                                                                       cors_origins=cors_origins),
                                 run_answers=run_answers)
        except OSError as exc:
            raise ServerRefused(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        auth = "token required" if token else "no token: loopback only"
        print(f"trace API and timeline at {server.url}/ ({auth}; Ctrl-C stops)", flush=True)
        server.serve_forever()
    finally:
        engine.dispose()
    return 0
