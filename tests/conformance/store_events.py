"""Events per run and run statuses read straight from a capture store (what conformance reads for a run)."""
from collections import defaultdict
from typing import Any

from sqlalchemy import create_engine, select

from capture.store.capture_store import EVENTS, RUNS


def events_by_run(url: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """Every run's events (as row dicts) and every run's status."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            events: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for row in conn.execute(select(EVENTS).order_by(EVENTS.c.seq)).mappings():
                events[row["run_id"]].append(dict(row))
            statuses = {r.id: r.status for r in conn.execute(select(RUNS.c.id, RUNS.c.status))}
    finally:
        engine.dispose()
    return dict(events), statuses
