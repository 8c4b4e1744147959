"""Warehouse backends: the embedded DuckDB file (default) and a DuckLake lakehouse shared by many processes.

DuckLake keeps its catalog in PostgreSQL and its data in Parquet files under a data path (local disk or object
storage), so several step processes and hosts can write one warehouse; a DuckDB file admits one writer at a time.
The mining code is the same for both: a DuckLake connection is an in-memory DuckDB with the lake attached as
``lake`` and selected with ``USE``, so every unqualified table name resolves inside the lake.

The rest of the pipeline names a warehouse by a local path (it checks that it exists and puts scratch files
beside it). A DuckLake warehouse is therefore named by a small descriptor file, ``skillmine.ducklake.json`` in
the data directory, holding the catalog and the data path: :func:`is_descriptor` tells ``warehouse.connect`` to
open the lake it describes. Both extensions load from their pip packages (this machine cannot download DuckDB
extensions), as the SQLite scanner does.
"""

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import duckdb
import duckdb_extension_ducklake
import duckdb_extension_postgres_scanner
from sqlalchemy.engine import make_url

from skill_pipeline.lib.sql_text import sql_literal

BACKENDS = ("duckdb", "ducklake")
DESCRIPTOR_NAME = "skillmine.ducklake.json"
LAKE_ALIAS = "lake"


def load_packaged_extension(con: duckdb.DuckDBPyConnection, package: ModuleType, name: str) -> None:
    """Load extension ``name`` from its pip ``package`` (``duckdb-extension-<name>``) matching the pinned DuckDB;
    DuckDB checks its signature when loading it."""
    binary = Path(package.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not binary.exists():
        raise RuntimeError(f"no {name} extension for DuckDB {duckdb.__version__} at {binary}; install the "
                           f"{package.__name__.replace('_', '-')} release that matches duckdb")
    con.execute(f"LOAD {sql_literal(binary)}")


def catalog_dsn(catalog: str) -> str:
    """The ``ducklake:`` attach string for a catalog: a PostgreSQL URL (any SQLAlchemy driver suffix) becomes
    ``ducklake:postgres:<libpq keywords>``; a string already starting with ``ducklake:`` is used as given."""
    if catalog.startswith("ducklake:"):
        return catalog
    url = make_url(catalog)
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"DuckLake catalog {catalog!r}: give a PostgreSQL URL (postgresql://USER@HOST/DB) "
                         "or a ducklake: attach string")
    keywords = {"dbname": url.database, "host": url.host, "port": url.port, "user": url.username,
                "password": url.password}
    return "ducklake:postgres:" + " ".join(f"{k}={v}" for k, v in keywords.items() if v is not None)


@dataclass(frozen=True)
class DuckLakeConfig:
    """Where a DuckLake warehouse lives: its catalog (PostgreSQL URL or ``ducklake:`` string) and data path."""

    catalog: str
    data_path: str

    def write_descriptor(self) -> Path:
        """Write (atomically, only when changed) the descriptor naming this lake; returns its path."""
        directory = Path(self.data_path).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / DESCRIPTOR_NAME
        text = json.dumps(asdict(self), sort_keys=True)
        if target.exists() and target.read_text(encoding="utf-8") == text:
            return target
        handle, name = tempfile.mkstemp(prefix=".descriptor-", dir=directory)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(name, target)
        return target


def is_descriptor(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` names a DuckLake descriptor rather than a DuckDB file."""
    return Path(path).name == DESCRIPTOR_NAME


def read_descriptor(path: str | os.PathLike[str]) -> DuckLakeConfig:
    """The lake a descriptor file names."""
    return DuckLakeConfig(**json.loads(Path(path).read_text(encoding="utf-8")))


def open_lake(descriptor: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the described lake attached and selected."""
    lake = read_descriptor(descriptor)
    con = duckdb.connect()
    try:
        load_packaged_extension(con, duckdb_extension_postgres_scanner, "postgres_scanner")
        load_packaged_extension(con, duckdb_extension_ducklake, "ducklake")
        data = Path(lake.data_path).expanduser() / "data"
        con.execute(f"ATTACH {sql_literal(catalog_dsn(lake.catalog))} AS {LAKE_ALIAS} "
                    f"(DATA_PATH {sql_literal(str(data) + os.sep)})")
        con.execute(f"USE {LAKE_ALIAS}")
    except BaseException:
        con.close()
        raise
    return con


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """True when ``con`` works inside a DuckLake (no primary keys there: upserts delete, then insert)."""
    return con.execute("SELECT current_database()").fetchone()[0] == LAKE_ALIAS
