"""Fixtures for the importer tests: the shared real datasets and a migrated SQLite store."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from capture.migrate import upgrade
from capture.models import Base
from capture.store import CaptureStore

DATA = Path(os.environ.get("SKILLMINE_SHARED_DATA")
            or Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()
COUNTED_TABLES = ("sessions", "workflow_runs", "dag_nodes", "dag_edges", "execution_events", "files",
                  "messages", "cost_records")


@pytest.fixture
def data() -> Path:
    """The shared, read-only dataset directory."""
    if not DATA.is_dir():
        pytest.fail(f"shared data not found at {DATA} (set SKILLMINE_SHARED_DATA)")
    return DATA


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
