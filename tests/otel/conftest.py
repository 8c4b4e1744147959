"""A real OTLP/HTTP receiver on loopback (``capture.importers.otlp_server`` under uvicorn, parsing with
``opentelemetry-proto``) writing into a fresh SQLite capture store."""

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from capture.importers.otlp_server import OtlpReceiver, bind
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade


@dataclass
class Receiver:
    """A running receiver: where to send, and the store it writes."""

    endpoint: str
    url: str
    store: CaptureStore
    receiver: OtlpReceiver


def start_receiver(path: Path, token: str | None = None) -> tuple[Receiver, uvicorn.Server, threading.Thread]:
    url = f"sqlite:///{path}"
    upgrade(url)
    store = CaptureStore.open(url)
    receiver = OtlpReceiver(store, token=token)
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(receiver.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    port = sock.getsockname()[1]
    return Receiver(f"http://127.0.0.1:{port}/v1/traces", url, store, receiver), server, thread


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Callable[..., Receiver]]:
    """Start receivers (``name``, optional ``token``), each on its own store; all stopped after the test."""
    running: list[tuple[Receiver, uvicorn.Server, threading.Thread]] = []

    def start(name: str, token: str | None = None) -> Receiver:
        running.append(start_receiver(tmp_path / f"{name}.db", token=token))
        return running[-1][0]

    yield start
    for started, server, thread in running:
        server.should_exit = True
        thread.join(10)
        started.store.close()


@pytest.fixture
def receiver(receivers: Callable[..., Receiver]) -> Receiver:
    """One receiver without a token, on a fresh store."""
    return receivers("received")
