"""Engines for the capture store: URL checks, SQLite pragmas, reachability and schema-revision errors."""

import time
from pathlib import Path
from typing import NoReturn

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError

from capture.core import config
from capture.core.payload import dumps

SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_CACHE_KIB = 32_768
SQLITE_PAGE_BYTES = 16_384


class StoreError(RuntimeError):
    """A capture store problem with a message meant for people (names the URL, never the password)."""


class StoreUnreachable(StoreError):
    """The database could not be reached or opened."""


class SchemaOutOfDate(StoreError):
    """The store is not at the revision this code expects; run ``skillmine db upgrade``."""


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable database URL>"


def check_url(url: str) -> None:
    """Reject URLs we cannot use reliably: PostgreSQL URLs must name their driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"invalid database URL {url!r}: {exc}") from None
    if parsed.get_backend_name() == "postgresql" and "+" not in parsed.drivername:
        raise StoreError(
            f"database URL {safe_url(url)} names no driver; use postgresql+psycopg://... "
            "(SQLAlchemy 2.1 picks a driver that may not be installed otherwise)"
        )
    if parsed.get_backend_name() not in {"sqlite", "postgresql"}:
        raise StoreError(f"database URL {safe_url(url)}: only SQLite and PostgreSQL are supported")


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # Only a new, empty database takes it (before WAL is on and the first table exists); an event row with its JSON
    # payloads is ~1 KB, and 16 KiB pages cut SQLite's insert CPU by about a quarter against 4 KiB (RESULTS.md).
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_BYTES}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")  # bulk inserts touch many index pages
    cursor.close()


def make_engine(url: str | None = None, *, echo: bool = False) -> Engine:
    """Create an engine for ``url`` (default: the configured store), creating a SQLite file's directory."""
    url = url or config.database_url()
    check_url(url)
    parsed = make_url(url)
    kwargs: dict = {"echo": echo, "json_serializer": dumps, "future": True}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False}
    else:
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"connect_timeout": 5}
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def ping(engine: Engine) -> None:
    """Open a connection or raise :class:`StoreUnreachable` naming the URL (password hidden).

    While other processes create and migrate the same new SQLite file, opening it (the switch to WAL, the first
    read of its WAL index) can be refused with "database is locked" at once, without SQLite's busy handler; such a
    refusal is retried until the busy timeout has passed, as a busy lock would be waited for."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return
        except OperationalError as exc:
            if "database is locked" not in str(exc.orig) or time.monotonic() > deadline:
                _unreachable(engine, exc)
            time.sleep(0.05)
        except (SQLAlchemyError, OSError) as exc:
            _unreachable(engine, exc)


def _unreachable(engine: Engine, exc: Exception) -> NoReturn:
    """Raise :class:`StoreUnreachable` for ``exc``, naming the store's URL (password hidden)."""
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    raise StoreUnreachable(
        f"cannot reach the capture store at {safe_url(engine.url.render_as_string(False))}: {reason}"
    ) from None


def current_revision(engine: Engine) -> str | None:
    """The Alembic revision the store is at, or ``None`` for an unmigrated store."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
