"""Opening a SQLite store that other processes are creating: SQLite may refuse the open with "database is locked"
at once (without its busy handler); ping waits that out within the busy timeout, and past it names the store."""

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import event

from capture.store import db
from capture.store.db import StoreUnreachable, make_engine, ping


def _refusing(tmp_path: Path, times: int):
    """An engine on a real SQLite file whose first ``times`` connections are refused as locked."""
    engine = make_engine(f"sqlite:///{tmp_path / 'capture.db'}")
    refusals = {"left": times}

    @event.listens_for(engine, "connect")
    def _locked(_dbapi_connection, _record) -> None:
        if refusals["left"]:
            refusals["left"] -= 1
            raise sqlite3.OperationalError("database is locked")

    return engine, refusals


def test_an_open_refused_as_locked_is_retried(tmp_path: Path) -> None:
    engine, refusals = _refusing(tmp_path, times=3)
    ping(engine)
    assert refusals["left"] == 0


def test_a_lock_held_past_the_busy_timeout_names_the_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_MS", 200)
    engine, _ = _refusing(tmp_path, times=10**6)
    with pytest.raises(StoreUnreachable, match=r"capture\.db: database is locked"):
        ping(engine)


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'capture.db'}")
    calls = []

    @event.listens_for(engine, "connect")
    def _broken(_dbapi_connection, _record) -> None:
        calls.append(1)
        raise sqlite3.OperationalError("unable to open database file")

    with pytest.raises(StoreUnreachable, match="unable to open database file"):
        ping(engine)
    assert len(calls) == 1
