"""Fixtures: capture configured to a fresh, migrated SQLite store per test; rows read back with plain SQL."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import capture
from capture.store.migrate import upgrade


class StoredRows:
    """Read what capture wrote (after ``capture.flush()``), ordered by ``execution_order`` / insertion."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def query(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        assert capture.flush(10.0), "capture did not flush within 10 s"
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(text(sql), params)]

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        where = "WHERE event_type = :t" if event_type else ""
        return self.query(f"SELECT * FROM execution_events {where} ORDER BY run_id, execution_order",
                          t=event_type)

    def messages(self) -> list[dict[str, Any]]:
        return self.query("SELECT m.*, e.event_subtype, e.execution_order FROM messages m "
                          "JOIN execution_events e ON e.id = m.event_id ORDER BY e.execution_order")

    def table(self, name: str) -> list[dict[str, Any]]:
        return self.query(f"SELECT * FROM {name}")


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[StoredRows]:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    capture.configure(database_url=url, spool_dir=tmp_path / "spool", flush_interval_s=0.05)
    rows = StoredRows(url)
    yield rows
    capture.shutdown()
    rows.engine.dispose()
