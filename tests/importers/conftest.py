"""Fixtures for the importer tests: the real-record fixtures and a migrated SQLite store."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from capture.store.models import Base

COUNTED_TABLES = ("sessions", "workflow_runs", "dag_nodes", "dag_edges", "execution_events", "files",
                  "messages", "cost_records")


@pytest.fixture
def data(fixture_path: Callable[..., Path]) -> Path:
    """The root of the real-record fixtures (``tests/fixtures``, laid out like the shared data set)."""
    return fixture_path()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[CaptureStore]:
    """A migrated capture store in a fresh SQLite file."""
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    store = CaptureStore.open(url)
    yield store
    store.close()


def _row_counts(store: CaptureStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {name: conn.execute(select(func.count()).select_from(Base.metadata.tables[name])).scalar_one()
                for name in COUNTED_TABLES}


@pytest.fixture
def row_counts() -> Callable[[CaptureStore], dict[str, int]]:
    """Rows per table of a store: what "importing twice changes nothing" compares."""
    return _row_counts
