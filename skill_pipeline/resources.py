"""Dagster resources: the capture store (source), the DuckDB warehouse, the skill library and mining settings.

Every location comes from explicit resource config or, when left unset, from ``SKILLMINE_*`` environment variables
(resolved when the resource is used, so a code location loads even where they are unset):

* ``SKILLMINE_DATABASE_URL`` - capture store URL with an explicit driver (default: SQLite in ``SKILLMINE_HOME``)
* ``SKILLMINE_WAREHOUSE`` - DuckDB file (default ``$SKILLMINE_HOME/warehouse.duckdb``), or ``ducklake`` for a
  DuckLake warehouse with ``SKILLMINE_DUCKLAKE_CATALOG`` (PostgreSQL URL) and ``SKILLMINE_DUCKLAKE_DATA``
  (data directory, default ``$SKILLMINE_HOME/ducklake``)
* ``SKILLMINE_LIBRARY`` - skill library directory (default ``$SKILLMINE_HOME/library``)
* ``SKILLMINE_MIN_SUPPORT``, ``SKILLMINE_MAX_MEDOID_DISTANCE``, ``SKILLMINE_GRANULARITY`` - mining thresholds
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field
from sqlalchemy import Engine

from capture.core import config
from capture.store.db import make_engine
from skill_pipeline.lib import extraction, warehouse, warehouse_backends
from skill_pipeline.mining.compose import MiningParams


class EventStoreResource(dg.ConfigurableResource):
    """Read access to the capture store (SQLite or PostgreSQL); the URL must name its driver."""

    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL with driver; default SKILLMINE_DATABASE_URL or SQLite in "
                                  "SKILLMINE_HOME")

    def url(self) -> str:
        return self.database_url or config.database_url()

    @contextmanager
    def engine(self) -> Iterator[Engine]:
        """A short-lived engine, disposed afterwards (sensors and runs must not leak connections)."""
        engine = make_engine(self.url())
        try:
            yield engine
        finally:
            engine.dispose()

    def max_seq(self) -> int:
        """The highest event seq in the store: what the new-events sensor compares with its cursor."""
        with self.engine() as engine:
            return extraction.source_max_seq(engine)


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: a DuckDB file (one writer, lock errors retried) or a DuckLake shared by many processes;
    opened only inside runs, closed in ``finally``. The mining code is the same for both backends."""

    path: str | None = Field(default=None, description="DuckDB file; default SKILLMINE_WAREHOUSE or "
                                                           "$SKILLMINE_HOME/warehouse.duckdb")
    backend: str | None = Field(default=None, description="duckdb|ducklake; default duckdb when path is set, "
                                                              "else SKILLMINE_WAREHOUSE=ducklake selects DuckLake")
    ducklake_catalog: str | None = Field(default=None, description="DuckLake catalog: PostgreSQL URL; default "
                                                                       "SKILLMINE_DUCKLAKE_CATALOG")
    ducklake_data: str | None = Field(default=None, description="DuckLake data directory; default "
                                                                    "SKILLMINE_DUCKLAKE_DATA or $SKILLMINE_HOME/ducklake")
    lock_attempts: int = Field(default=8, description="connection attempts while another process holds the lock")
    memory_limit: str = Field(default=warehouse.DEFAULT_MEMORY_LIMIT,
                              description="DuckDB buffer memory cap (spills to disk beyond it), e.g. '1GB'")

    def resolved_backend(self) -> str:
        """``duckdb`` or ``ducklake``: the configured backend, else the one SKILLMINE_WAREHOUSE names."""
        env = config.env("WAREHOUSE")
        chosen = self.backend or ("duckdb" if self.path else env if env in warehouse_backends.BACKENDS else "duckdb")
        if chosen not in warehouse_backends.BACKENDS:
            raise ValueError(f"warehouse backend {chosen!r}: choose one of {', '.join(warehouse_backends.BACKENDS)}")
        return chosen

    def ducklake(self) -> warehouse_backends.DuckLakeConfig:
        """The DuckLake catalog and data path (the catalog must be given: there is no sensible default)."""
        catalog = self.ducklake_catalog or config.env("DUCKLAKE_CATALOG")
        if not catalog:
            raise ValueError("the DuckLake warehouse needs a catalog: set SKILLMINE_DUCKLAKE_CATALOG to a "
                             "PostgreSQL URL (postgresql://USER@HOST/DB)")
        data = self.ducklake_data or config.env("DUCKLAKE_DATA") or config.home() / "ducklake"
        return warehouse_backends.DuckLakeConfig(catalog, str(Path(data).expanduser().resolve()))

    def resolved_path(self) -> Path:
        """The DuckDB file, or the descriptor naming the DuckLake (``warehouse.connect`` opens either)."""
        if self.resolved_backend() == "ducklake":
            return self.ducklake().write_descriptor()
        env = config.env("WAREHOUSE")
        path = self.path or (env if env not in warehouse_backends.BACKENDS else None)
        return Path(path or config.home() / "warehouse.duckdb").expanduser()

    @contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.connect(self.resolved_path(), attempts=self.lock_attempts,
                               memory_limit=self.memory_limit) as con:
            yield con


class SkillLibraryResource(dg.ConfigurableResource):
    """Where releases of the skill library are published."""

    path: str | None = Field(default=None, description="library directory; default SKILLMINE_LIBRARY or "
                                                           "$SKILLMINE_HOME/library")

    def resolved_path(self) -> Path:
        return Path(self.path or config.env("LIBRARY") or config.home() / "library").expanduser()


def _env_int(name: str, default: int) -> int:
    raw = config.env(name)
    try:
        return int(raw) if raw is not None else default
    except ValueError:
        raise ValueError(f"SKILLMINE_{name}={raw!r} is not an integer") from None


def _env_float(name: str, default: float) -> float:
    raw = config.env(name)
    try:
        return float(raw) if raw is not None else default
    except ValueError:
        raise ValueError(f"SKILLMINE_{name}={raw!r} is not a number") from None


class MiningSettings(dg.ConfigurableResource):
    """Thresholds of the mining and publishing steps (unset fields fall back to SKILLMINE_* variables)."""

    min_support: int | None = Field(default=None, description="runs a template needs before it is published "
                                                                 "(SKILLMINE_MIN_SUPPORT, default 1: a skill "
                                                                 "seen once is published with its interval)")
    max_medoid_distance: float | None = Field(
        default=None, description="largest mean edit distance of runs to their group's behaviour medoid the "
                                  "clustering check accepts (SKILLMINE_MAX_MEDOID_DISTANCE, default 0.35)")
    granularity: str | None = Field(default=None, description="token granularity coarse|standard|fine "
                                                                 "(SKILLMINE_GRANULARITY, default standard)")
    sample_size: int = Field(default=2000, description="sequences clustered exactly before medoid assignment")

    def support(self) -> int:
        return self.min_support if self.min_support is not None else _env_int("MIN_SUPPORT", MiningParams.min_support)

    def medoid_distance(self) -> float:
        return (self.max_medoid_distance if self.max_medoid_distance is not None
                else _env_float("MAX_MEDOID_DISTANCE", 0.35))

    def token_granularity(self) -> str:
        return self.granularity or config.env("GRANULARITY", "standard")

    def params(self) -> MiningParams:
        """The settings as the mining steps take them (``mining.compose.MiningParams``)."""
        return MiningParams(sample_size=self.sample_size, granularity=self.token_granularity(),
                            min_support=self.support())
