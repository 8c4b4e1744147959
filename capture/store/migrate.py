"""Alembic, driven from code so that ``skillmine db`` works from any directory and a non-editable install.

The migration scripts live in the ``migrations`` package (shipped as package data); this module builds the
Alembic configuration pointing at it and the target URL.
"""

import fcntl
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect

from capture.core import config
from capture.store.db import SchemaOutOfDate, check_url, current_revision, make_engine, ping, safe_url


def _script_location() -> str:
    import migrations

    return str(Path(migrations.__file__).resolve().parent)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for the store at ``url`` (default: the configured store)."""
    url = url or config.database_url()
    check_url(url)
    cfg = Config()
    cfg.set_main_option("script_location", _script_location())
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None, "no migration scripts found"
    return head


def require_current_schema(engine: Engine) -> None:
    """Raise :class:`SchemaOutOfDate` unless the store is at the head revision shipped with this code."""
    at, head = current_revision(engine), head_revision()
    if at != head:
        where = safe_url(engine.url.render_as_string(False))
        state = "has no skillmine schema" if at is None else f"is at schema revision {at}"
        raise SchemaOutOfDate(f"the capture store {where} {state}, this code needs {head}: "
                              f"run `skillmine db upgrade`")


def _reachable_config(url: str | None) -> Config:
    """The Alembic config for ``url``, after checking the store answers, so a dead server fails as a
    :class:`StoreUnreachable` naming the URL rather than inside Alembic."""
    cfg = alembic_config(url)
    engine = make_engine(cfg.get_main_option("sqlalchemy.url").replace("%%", "%"))
    ping(engine)
    engine.dispose()
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the store at ``url`` up to ``revision`` (creating a SQLite file if needed)."""
    command.upgrade(_reachable_config(url), revision)


def migrate_new_sqlite(engine: Engine) -> bool:
    """First use: a SQLite store without any table (a file just created) is migrated to head; returns whether it
    was. Stores that hold tables, and PostgreSQL stores, are left to an explicit ``skillmine db upgrade``.

    Processes opening the same new file at once (forked workers) take turns on an exclusive ``flock`` of the file:
    the first migrates, the others then find the tables and the head revision it committed."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or database in (None, "", ":memory:") or database.startswith("file:"):
        return False
    if current_revision(engine) == head_revision():
        return False
    with open(Path(database).expanduser(), "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the handle closes
        with engine.connect() as conn:
            if inspect(conn).get_table_names():
                return False
        upgrade(engine.url.render_as_string(hide_password=False))
    return True


def downgrade(revision: str, url: str | None = None) -> None:
    """Take the store at ``url`` down to ``revision`` (``base`` drops everything)."""
    command.downgrade(_reachable_config(url), revision)


def stamp(revision: str, url: str | None = None) -> None:
    """Record ``revision`` without running migrations (for foreign databases with a matching schema)."""
    command.stamp(alembic_config(url), revision)
