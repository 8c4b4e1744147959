"""What a v1 scenario left behind: AG2 v1's own record and the capture store's rows, read with plain SQL."""

import json
from typing import Any

from sqlalchemy import create_engine, text


class Captured:
    """A v1 scenario's outcome: AG2 v1's own record (``record``) and the rows capture stored (plain SQL)."""

    def __init__(self, url: str, record: dict[str, Any]) -> None:
        self.url, self.record = url, record

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(text(sql), params)]
        finally:
            engine.dispose()

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Events (JSON columns decoded), by run and execution order."""
        found = self.rows("SELECT * FROM execution_events" + (" WHERE event_type = :t" if event_type else "")
                          + " ORDER BY run_id, execution_order", t=event_type)
        for event in found:
            for column in ("inputs", "outputs", "meta"):
                event[column] = json.loads(event[column]) if event[column] else None
        return found
