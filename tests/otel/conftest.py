"""A real OTLP/HTTP receiver on loopback (``capture.importers.otlp_server`` under uvicorn, parsing with
``opentelemetry-proto``) writing into a fresh SQLite capture store."""

import threading
import time
from collections.abc import Iterator
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
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    running, server, thread = start_receiver(tmp_path / "received.db")
    yield running
    server.should_exit = True
    thread.join(10)
    running.store.close()
