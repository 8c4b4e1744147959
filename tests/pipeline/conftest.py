"""Pipeline fixtures: a migrated SQLite capture store with realistic runs, warehouse and library paths."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from skill_pipeline.resources import (
    EventStoreResource,
    MiningSettings,
    SkillLibraryResource,
    WarehouseResource,
)


def open_store(url: str) -> CaptureStore:
    upgrade(url)
    return CaptureStore.open(url)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[CaptureStore]:
    store = open_store(f"sqlite:///{tmp_path / 'capture.db'}")
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[CaptureStore]:
    store = open_store(pg_url)
    try:
        yield store
    finally:
        store.close()


def pipeline_resources(store: CaptureStore, tmp_path: Path, **settings: object) -> dict[str, object]:
    """The real resources pointed at a test store, a DuckDB file and a library directory under ``tmp_path``."""
    return {"event_store": EventStoreResource(database_url=store.engine.url.render_as_string(False)),
            "warehouse_db": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
            "skill_library": SkillLibraryResource(path=str(tmp_path / "library")),
            "mining_settings": MiningSettings(**settings)}
