"""``skillmine serve otlp``: an OTLP/HTTP traces receiver (``POST /v1/traces``) writing into the capture store.

Protobuf (``application/x-protobuf``) and JSON (``application/json``) bodies, gzip or not, as the OTLP/HTTP
specification describes; the response is an ``ExportTraceServiceResponse`` in the request's encoding. A request
is acknowledged (200) only after its traces are committed (one transaction per trace, through
:class:`~capture.importers.otlp.OtlpIngestor`), so a client never gets a 200 for spans that are not stored. On
SIGTERM uvicorn stops accepting connections and lets requests in progress finish before the process exits: nothing
acknowledged is lost, and what was not acknowledged is retried by the client (OTLP exporters retry on 503 and on
connection errors). Bad input gets a 400 whose message names the span; a store that cannot be written, a 503.

Binding beyond loopback is refused without a token (the trace server's rule, checked by the CLI); with a token every
request needs ``Authorization: Bearer <token>``. Writes are serialised and grouped (group commit): whoever holds
the write lock writes every request that queued meanwhile in one transaction (each trace still all-or-nothing, each
request answered only after that commit), so concurrent clients share commits instead of waiting for one each; a
trace's late spans are merged against what the earlier requests committed.
"""

import asyncio
import gzip
import hmac
import io
import json
import signal
import socket
import threading
import zlib
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from capture.importers.common import SourceError
from capture.importers.otlp import OtlpIngestor, Span, TraceOutcome, spans_from_json, spans_from_protobuf
from capture.store.capture_store import CaptureStore
from capture.store.db import StoreError

MAX_BODY_BYTES = 32 * 1024 * 1024
PROTOBUF = "application/x-protobuf"


@dataclass
class _Pending:
    """A parsed request waiting for the group commit that writes it."""

    spans: list[Span]
    result: list[TraceOutcome] | Exception | None = None
    done: bool = False


@dataclass
class ReceiverStats:
    """What the receiver has acknowledged since it started."""

    requests: int = 0
    spans: int = 0
    refused: int = 0
    groups: int = 0  # group commits: requests / groups is how many requests shared a write


class OtlpReceiver:
    """The Starlette app and the single writer behind it."""

    def __init__(self, store: CaptureStore, *, token: str | None = None, session: str | None = None,
                 max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.ingestor = OtlpIngestor(store, session=session)
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.cond = threading.Condition()  # guards ``pending`` and ``writing``; told when a group is written
        self.writing = False  # a group is being written (by the request that took it)
        self.pending: list[_Pending] = []
        self.stats = ReceiverStats()
        self.app = Starlette(routes=[Route("/v1/traces", self.traces, methods=["POST"])])

    def _ingest(self, body: bytes, protobuf: bool) -> int:
        """Parse, then wait for the group commit that writes this request (leading it if no one else is): a request
        queues while a group is written, and the first to wake after it takes everything queued as the next group;
        one written meanwhile is answered at once."""
        slot = _Pending(spans_from_protobuf(body) if protobuf else spans_from_json(json.loads(body)))
        group: list[_Pending] = []
        with self.cond:
            self.pending.append(slot)
            while self.writing and not slot.done:
                self.cond.wait()
            if not slot.done:
                self.writing = True
                group, self.pending = self.pending, []
        if group:
            self._write_group(group)
        if isinstance(slot.result, Exception):
            raise slot.result
        return len(slot.spans)

    def _write_group(self, group: list["_Pending"]) -> None:
        """One transaction for the group's requests; then each learns its result and the next group may start."""
        results: list[list[TraceOutcome] | Exception] = [RuntimeError("the write was interrupted")] * len(group)
        try:
            results = self.ingestor.ingest_requests([item.spans for item in group])
        except Exception as exc:  # noqa: BLE001 - e.g. the store unreachable: every request of the group
            results = [exc] * len(group)
        finally:
            with self.cond:
                self.stats.groups += 1
                for item, result in zip(group, results):
                    item.result, item.done = result, True
                    if not isinstance(result, Exception):
                        self.stats.requests += 1
                        self.stats.spans += len(item.spans)
                self.writing = False
                self.cond.notify_all()

    def _refuse(self, status: int, message: str, protobuf: bool) -> Response:
        self.stats.refused += 1
        if protobuf:
            from google.rpc.status_pb2 import Status

            return Response(Status(code=3 if status == 400 else 14, message=message).SerializeToString(),
                            status_code=status, media_type=PROTOBUF)
        return JSONResponse({"code": 3 if status == 400 else 14, "message": message}, status_code=status)

    async def _body(self, request: Request) -> bytes | None:
        """The request body, or None past the size limit (never more than the limit held in memory)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def traces(self, request: Request) -> Response:
        """``POST /v1/traces``: parse, commit, then acknowledge."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        protobuf = media != "application/json"
        if self.token and not hmac.compare_digest(request.headers.get("authorization", "").encode(),
                                                  f"Bearer {self.token}".encode()):
            return self._refuse(401, "missing or wrong 'Authorization: Bearer <token>'", protobuf)
        if media not in (PROTOBUF, "application/json"):
            return self._refuse(415, f"content type {media!r}: send {PROTOBUF} or application/json", protobuf)
        body = await self._body(request)
        if body is None:
            return self._refuse(413, f"body over {self.max_body_bytes} bytes", protobuf)
        try:
            if request.headers.get("content-encoding", "").lower() == "gzip":
                with gzip.GzipFile(fileobj=io.BytesIO(body)) as unzipped:
                    body = unzipped.read(self.max_body_bytes + 1)
            if len(body) > self.max_body_bytes:
                return self._refuse(413, f"body over {self.max_body_bytes} bytes uncompressed", protobuf)
            await asyncio.to_thread(self._ingest, body, protobuf)
        except (SourceError, ValueError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
            return self._refuse(400, str(exc), protobuf)
        except StoreError as exc:
            return self._refuse(503, str(exc), protobuf)
        if protobuf:
            return Response(b"", media_type=PROTOBUF)
        return JSONResponse({})


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    return sock


def serve(receiver: OtlpReceiver, sock: socket.socket, *, verbose: bool = False) -> None:
    """Serve until SIGINT/SIGTERM (from the main thread); requests in progress finish (and are committed) before
    this returns."""
    import uvicorn

    config = uvicorn.Config(receiver.app, log_level="info" if verbose else "warning", access_log=verbose,
                            timeout_graceful_shutdown=30, lifespan="off")
    # uvicorn re-raises the stopping signal after its graceful shutdown; with these handlers that returns here,
    # so the caller can report and close the store (and the process exits 0 after a clean stop).
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
