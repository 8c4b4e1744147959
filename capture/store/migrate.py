"""Alembic, driven from code so that ``skillmine db`` works from any directory and a non-editable install.

The migration scripts live in the ``migrations`` package (shipped as package data); this module builds the
Alembic configuration pointing at it and the target URL.
"""

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from capture.core import config
from capture.store.db import check_url, make_engine, ping


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


def upgrade(url: str | None = None, revision: str = "head") -> None:
    """Bring the store at ``url`` up to ``revision`` (creating a SQLite file if needed)."""
    cfg = alembic_config(url)
    engine = make_engine(cfg.get_main_option("sqlalchemy.url").replace("%%", "%"))
    ping(engine)
    engine.dispose()
    command.upgrade(cfg, revision)


def downgrade(revision: str, url: str | None = None) -> None:
    """Take the store at ``url`` down to ``revision`` (``base`` drops everything)."""
    cfg = alembic_config(url)
    engine = make_engine(cfg.get_main_option("sqlalchemy.url").replace("%%", "%"))
    ping(engine)
    engine.dispose()
    command.downgrade(cfg, revision)


def stamp(revision: str, url: str | None = None) -> None:
    """Record ``revision`` without running migrations (for foreign databases with a matching schema)."""
    command.stamp(alembic_config(url), revision)
