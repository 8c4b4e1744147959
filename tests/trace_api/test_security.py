"""The trace server beyond loopback: token required to bind elsewhere and to read, bounded parameters and bodies
(400/413, never 500), a cap on live streams (503), one change feed for all streams, idle stream timeout, security
headers, no CORS unless configured, and the token never in the log."""

import http.client
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
from typing import Any

import pytest
from sqlalchemy import event

from capture.read.trace_api import server as trace_server
from capture.read.trace_api.reader import open_read_only
from capture.read.trace_api.server import TOKEN_ENV, ServerRefused, TraceServer

TOKEN = "s3cret-token-for-tests-0123456789"


def request(url: str, path: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    """One HTTP request: (status, headers with lower-case names, parsed JSON or text body)."""
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    response = conn.getresponse()
    raw = response.read().decode()
    conn.close()
    head = {k.lower(): v for k, v in response.getheaders()}
    return response.status, head, json.loads(raw) if head.get("content-type", "").startswith(
        "application/json") else raw


def test_binding_beyond_loopback_requires_a_long_token(sqlite_url, writer, monkeypatch, capsys):
    engine = open_read_only(sqlite_url)
    try:
        with pytest.raises(ServerRefused, match=TOKEN_ENV):
            TraceServer(engine, "0.0.0.0", 0, token=None)
        with pytest.raises(ServerRefused, match="at least 16"):
            TraceServer(engine, "127.0.0.1", 0, token="short")
        TraceServer(engine, "127.0.0.2", 0, token=None).socket.close()  # loopback: allowed
    finally:
        engine.dispose()
    from skillmine.cli import main
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["trace", "serve", "--host", "0.0.0.0", "--port", "0", "--url", sqlite_url]) == 2
    err = capsys.readouterr().err
    assert TOKEN_ENV in err and "binding to 0.0.0.0" in err


def test_token_guards_every_api_route_but_not_the_page(sqlite_url, writer, serve):
    srv = serve(sqlite_url, token=TOKEN)
    status, head, body = request(srv.url, "/api/runs")
    assert status == 401 and TOKEN_ENV in body["error"] and head["www-authenticate"].startswith("Bearer")
    assert request(srv.url, "/api/runs", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert request(srv.url, "/api/runs/run-1/stream")[0] == 401
    status, _, body = request(srv.url, "/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body["total_runs"] == 2
    assert request(srv.url, "/")[0] == 200  # static page, no data: it asks for the token

    assert request(srv.url, "/api/session", "POST", headers={"Authorization": "Bearer nope"})[0] == 401
    status, head, _ = request(srv.url, "/api/session", "POST", headers={"Authorization": f"Bearer {TOKEN}"})
    cookie = head["set-cookie"]
    assert status == 204 and "HttpOnly" in cookie and "SameSite=strict" in cookie and TOKEN not in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would never come back
    behind_tls = request(srv.url, "/api/session", "POST", headers={"Authorization": f"Bearer {TOKEN}",
                                                                   "X-Forwarded-Proto": "https"})[1]["set-cookie"]
    assert "Secure" in behind_tls
    pair = cookie.split(";")[0]
    assert request(srv.url, "/api/runs/run-1/agents", headers={"Cookie": pair})[0] == 200
    assert request(srv.url, "/api/runs", headers={"Cookie": pair[:-2] + "00"})[0] == 401


@pytest.mark.parametrize("path, parameter", [
    (f"/api/runs?limit={2**63}", "limit"),
    (f"/api/runs/run-1/events?limit={2**63}", "limit"),
    (f"/api/runs/run-1/stream?after_seq={2**63}", "after_seq"),
    (f"/api/search?limit={2**63}", "limit"),
    ("/api/search?q=" + "x" * 300, "q"),
    ("/api/runs?limit=" + "9" * 3000, "query"),
])
def test_oversized_parameters_are_400_never_500(server, path, parameter):
    status, _, body = request(server.url, path)
    assert status == 400 and body["parameter"] == parameter


def test_bodies_are_bounded(server):
    status, _, body = request(server.url, "/api/runs", body=b"x" * 5000, headers={"Content-Length": "5000"})
    assert status == 413 and "1024 bytes" in body["error"]
    assert request(server.url, "/api/runs", "DELETE")[0] in (404, 405)


def test_live_streams_are_capped_with_a_clear_503(sqlite_url, writer, serve, sse):
    srv = serve(sqlite_url, max_streams=2, poll_interval=0.05)
    first, _second = sse(srv.url + "/api/runs/run-1/stream"), sse(srv.url + "/api/runs/run-2/stream")
    first.next(("run_status",))
    status, head, body = request(srv.url, "/api/runs/run-1/stream")
    assert status == 503 and "at most 2" in body["error"] and head["retry-after"] == "5"
    first.close()
    deadline = time.monotonic() + 3
    while srv.live_streams > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    third = sse(srv.url + "/api/runs/run-1/stream")
    assert third.response.status == 200 and third.next()["data"]["data"]["event_id"] == "e1"


def test_one_change_feed_serves_every_stream(sqlite_url, writer, serve, sse):
    """Statements per second against the store stay the same with 1 or 12 open streams."""
    srv = serve(sqlite_url, poll_interval=0.05, heartbeat_s=5)
    statements: list[float] = []
    event.listen(srv.engine, "before_cursor_execute", lambda *a: statements.append(time.monotonic()))

    def rate(streams: int) -> float:
        clients = [sse(srv.url + f"/api/runs/run-{1 + i % 2}/stream") for i in range(streams)]
        for client in clients:
            client.next(("run_status",))
        statements.clear()
        time.sleep(1.0)
        n = len(statements)
        for client in clients:
            client.close()
        return n

    one, twelve = rate(1), rate(12)
    assert one > 0 and twelve <= one * 1.5 + 5, (one, twelve)


def test_idle_streams_time_out(sqlite_url, writer, serve, sse):
    srv = serve(sqlite_url, stream_idle_s=0.5, heartbeat_s=0.2)
    client = sse(srv.url + "/api/runs/run-2/stream?after_seq=7")
    started = time.monotonic()
    assert client.next(("never",), timeout=4) is None
    assert time.monotonic() - started < 3


def test_security_headers_and_no_cors_by_default(sqlite_url, writer, serve):
    srv = serve(sqlite_url)
    for path in ("/", "/api/runs", "/api/runs/nope", "/api/nothing"):
        _, head, _ = request(srv.url, path, headers={"Origin": "https://evil.example"})
        assert head["x-content-type-options"] == "nosniff" and head["cache-control"] == "no-store"
        assert "access-control-allow-origin" not in head
    csp = request(srv.url, "/")[1]["content-security-policy"]
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", csp) and "frame-ancestors 'none'" in csp
    allowed = serve(sqlite_url, cors_origins=("https://ui.example",))
    head = request(allowed.url, "/api/runs", headers={"Origin": "https://ui.example"})[1]
    assert head["access-control-allow-origin"] == "https://ui.example"
    assert "access-control-allow-origin" not in request(allowed.url, "/api/runs",
                                                        headers={"Origin": "https://evil.example"})[1]


def test_the_token_never_reaches_the_log(sqlite_url, writer):
    script = ("import sys\nfrom skillmine.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", script, "trace", "serve", "--host", "0.0.0.0", "--port", "0",
                             "--url", sqlite_url, "--verbose"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, TOKEN_ENV: TOKEN})
    try:
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+)/", line)[1])
        url = f"http://127.0.0.1:{port}"
        assert "token required" in line
        assert request(url, "/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200
        assert request(url, "/api/session", "POST", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 204
        assert request(url, "/api/runs")[0] == 401
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert "GET /api/runs" in out + err  # the access log is on
    assert TOKEN not in out + err and trace_server.session_cookie_value(TOKEN) not in out + err


def test_streams_abandoned_at_once_give_their_slots_back(sqlite_url, writer, serve):
    srv = serve(sqlite_url, max_streams=5, poll_interval=0.05)
    host, port = srv.server_address
    for _ in range(20):  # request a stream and reset the connection before reading anything
        sock = socket.create_connection((host, port))
        sock.sendall(b"GET /api/runs/run-1/stream HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    deadline = time.monotonic() + 5
    while (srv.live_streams or srv.app.state.feed.streams) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (srv.live_streams, srv.app.state.feed.streams) == (0, 0)
    assert request(srv.url, "/api/runs/run-2/failure")[0] == 200


def test_connections_that_never_finish_a_request_head_are_closed(sqlite_url, writer, serve, sse):
    srv = serve(sqlite_url, request_head_s=0.5, heartbeat_s=0.2)
    silent = socket.create_connection(srv.server_address)
    dribbling = socket.create_connection(srv.server_address)
    dribbling.sendall(b"GET /api/runs HTTP/1.1\r\nHost: x\r\n")  # the blank line that ends the head never comes
    stream = sse(srv.url + "/api/runs/run-2/stream?after_seq=7")  # a long request: its connection stays
    for sock in (silent, dribbling):
        sock.settimeout(5)
        started = time.monotonic()
        assert sock.recv(100) == b"" and time.monotonic() - started < 3  # closed by the server
        sock.close()
    time.sleep(1.0)
    assert stream.next(("heartbeat",), timeout=2) is not None  # still flowing after twice the head deadline
    conn = http.client.HTTPConnection(*srv.server_address, timeout=5)
    for _ in range(2):  # keep-alive: the next request's head on the same connection is answered
        conn.request("GET", "/api/runs")
        assert conn.getresponse().read() and conn.sock is not None
    conn.close()
