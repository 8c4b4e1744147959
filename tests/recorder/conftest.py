"""Recorder test helpers: a configured process recorder on each backend, and plain-SQL reads of what landed."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import capture
from capture.core.settings import CaptureSettings
from capture.recorder.processor import Recorder
from capture.store.migrate import upgrade


def _fetch(url: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


@pytest.fixture
def fetch() -> Callable[..., list[dict[str, Any]]]:
    """``fetch(url, sql, **params)``: rows of ``sql`` as dicts (a fresh engine, disposed after)."""
    return _fetch


def settle(timeout: float = 10.0) -> bool:
    """Flush, then wait until nothing is left in the spool (a spooled batch is durable but not yet in the DB)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if capture.flush(timeout) and not capture.stats()["spool_pending"]:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., CaptureSettings]:
    """Settings on a URL with a per-test spool and a short flush interval."""
    def make(url: str, **overrides: Any) -> CaptureSettings:
        values = {"database_url": url, "spool_dir": tmp_path / "spool", "flush_interval_s": 0.05, **overrides}
        return CaptureSettings(**values)
    return make


@pytest.fixture
def recorder(store_url: str, settings_for: Callable[..., CaptureSettings]) -> Iterator[Recorder]:
    """The process recorder on a migrated store of each backend; shut down after the test."""
    upgrade(store_url)
    rec = capture.configure(settings_for(store_url))
    try:
        yield rec
    finally:
        capture.shutdown()


@pytest.fixture
def url(recorder: Recorder) -> str:
    """The database URL the recorder writes to."""
    return recorder.settings.database_url
