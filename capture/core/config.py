"""Where skillmine keeps things, read from ``SKILLMINE_*`` environment variables.

Nothing writes outside the data directory ``SKILLMINE_HOME`` (default ``.skillmine`` under the working directory)
unless a location is configured explicitly.
"""

import os
from pathlib import Path

ENV_PREFIX = "SKILLMINE_"


def env(name: str, default: str | None = None) -> str | None:
    """Read ``SKILLMINE_<name>``; an empty value counts as unset."""
    value = os.environ.get(ENV_PREFIX + name)
    return value if value not in (None, "") else default


def home() -> Path:
    """The data directory (not created here)."""
    return Path(env("HOME", ".skillmine")).expanduser().resolve()


def database_url() -> str:
    """The capture store URL: ``SKILLMINE_DATABASE_URL`` or a SQLite file in the data directory."""
    return env("DATABASE_URL") or f"sqlite:///{home() / 'capture.db'}"
