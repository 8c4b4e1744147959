"""The DuckDB warehouse: table layout, a lock-tolerant connection and CSV bulk loading.

Only pipeline runs open the file (webserver, daemon and sensors never do); a connection is always closed in
``finally`` so an exception cannot keep the file lock alive, and lock errors from another writer are retried
with backoff. Rows are bulk-loaded through a temporary CSV file next to the warehouse: DuckDB's ``executemany``
costs milliseconds per row, ``read_csv`` loads hundreds of thousands of rows per second.
"""

import csv
import itertools
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import duckdb_extension_sqlite_scanner

from skill_pipeline.lib import warehouse_backends
from skill_pipeline.lib.sql_text import sql_list, sql_literal  # noqa: F401 - the warehouse's SQL text helpers

# Column name -> DuckDB type, per warehouse table; the order is the CSV column order.
EVENT_COLUMNS: dict[str, str] = {
    "seq": "BIGINT", "id": "VARCHAR", "run_id": "VARCHAR", "node_id": "VARCHAR", "session_id": "VARCHAR",
    "parent_event_id": "VARCHAR", "event_type": "VARCHAR", "event_subtype": "VARCHAR", "agent_name": "VARCHAR",
    "agent_role": "VARCHAR", "timestamp": "TIMESTAMPTZ", "duration_ms": "BIGINT", "execution_order": "BIGINT",
    "depth": "INTEGER", "status": "VARCHAR", "tool_name": "VARCHAR", "exit_code": "VARCHAR",
    "file_type": "VARCHAR", "error_message": "VARCHAR", "inputs": "VARCHAR", "outputs": "VARCHAR",
    "payload_truncated": "BOOLEAN",
}
RUN_COLUMNS: dict[str, str] = {
    "id": "VARCHAR", "session_id": "VARCHAR", "mode": "VARCHAR", "agent": "VARCHAR", "model": "VARCHAR",
    "status": "VARCHAR", "started_at": "TIMESTAMPTZ", "completed_at": "TIMESTAMPTZ",
    "task_description": "VARCHAR", "cost_usd": "DOUBLE", "total_tokens": "BIGINT",
}
NODE_COLUMNS: dict[str, str] = {
    "id": "VARCHAR", "run_id": "VARCHAR", "parent_node_id": "VARCHAR", "node_type": "VARCHAR",
    "agent": "VARCHAR", "status": "VARCHAR", "order_index": "INTEGER", "depth": "INTEGER",
}
FILE_COLUMNS: dict[str, str] = {
    "id": "VARCHAR", "run_id": "VARCHAR", "event_id": "VARCHAR", "node_id": "VARCHAR", "file_path": "VARCHAR",
    "file_type": "VARCHAR", "size_bytes": "BIGINT", "content_hash": "VARCHAR", "generating_agent": "VARCHAR",
    "is_final_output": "BOOLEAN",
}
EXTRACT_TABLES: dict[str, dict[str, str]] = {
    "events": EVENT_COLUMNS, "runs": RUN_COLUMNS, "nodes": NODE_COLUMNS, "files": FILE_COLUMNS,
}
# Upserted tables. Events carry no index: they are only appended, each seq once (extraction anti-joins on seq
# and runs are serialised), and an index would cost a fifth of a bulk load and its memory.
PRIMARY_KEYS = {"runs": "id", "nodes": "id", "files": "id"}

# Derived tables the mining steps rebuild (``skill_pipeline.lib.mining_steps``).
RUN_SEQUENCE_COLUMNS: dict[str, str] = {
    "run_id": "VARCHAR", "last_seq": "BIGINT", "first_seq": "BIGINT", "n_events": "INTEGER", "n_tokens": "INTEGER", "tokens": "VARCHAR",
    "unknown_types": "INTEGER", "events_without_node": "INTEGER", "unknown_agents": "INTEGER",
    "order_gaps": "BOOLEAN"}
NODE_SEQUENCE_COLUMNS: dict[str, str] = {"run_id": "VARCHAR", "node_id": "VARCHAR", "n_tokens": "INTEGER",
                                         "tokens": "VARCHAR"}
RUN_CLUSTER_COLUMNS: dict[str, str] = {"run_id": "VARCHAR", "cluster_id": "VARCHAR", "distance": "DOUBLE",
                                       "last_seq": "BIGINT"}
CLUSTER_COLUMNS: dict[str, str] = {"cluster_id": "VARCHAR", "size": "INTEGER", "medoid": "VARCHAR",
                                   "group_json": "VARCHAR"}
PATTERN_COLUMNS: dict[str, str] = {"cluster_id": "VARCHAR", "support": "INTEGER", "n_steps": "INTEGER",
                                   "description": "VARCHAR", "pattern": "VARCHAR"}
TEMPLATE_COLUMNS: dict[str, str] = {
    "cluster_id": "VARCHAR", "name": "VARCHAR", "support": "INTEGER", "success_rate": "DOUBLE",
    "publishable": "BOOLEAN", "errors": "VARCHAR", "candidate": "VARCHAR", "slot_values": "VARCHAR",
    "cache_key": "VARCHAR", "inferred_candidate": "VARCHAR", "sampled_slot_values": "VARCHAR"}
QUALITY_COLUMNS: dict[str, str] = {"silhouette": "DOUBLE", "n_clusters": "INTEGER", "runs": "INTEGER",
                                   "coverage": "DOUBLE", "mean_distance_to_medoid": "DOUBLE"}
OUTCOME_COLUMNS: dict[str, str] = {"run_id": "VARCHAR", "mode": "VARCHAR", "status": "VARCHAR",
                                   "cluster_id": "VARCHAR"}

DEFAULT_MEMORY_LIMIT = "1GB"
WRITE_BATCH = 10_000  # rows per CSV write call
LOCK_MARKERS = ("could not set lock", "conflicting lock", "lock on file")


class WarehouseLocked(RuntimeError):
    """Another process held the DuckDB file for longer than the retry budget."""


# One row per extraction: the seq range it read, so checks can verify that hand-off without rescanning the table.
EXTRACTION_LOG_COLUMNS: dict[str, str] = {
    "extracted_at": "TIMESTAMPTZ", "previous_hwm": "BIGINT", "start_after": "BIGINT", "upper": "BIGINT",
    "hwm": "BIGINT", "events_read": "BIGINT", "events_inserted": "BIGINT",
}


def column_definitions(columns: dict[str, str]) -> str:
    """``columns`` (name -> DuckDB type) as the column list of a CREATE TABLE statement."""
    return ", ".join(f'"{name}" {kind}' for name, kind in columns.items())


def ddl(*, primary_keys: bool = True) -> list[str]:
    """CREATE statements for the extraction tables and the extraction log (idempotent). DuckLake has no
    primary keys (``primary_keys=False``): its upserts delete, then insert."""
    statements = []
    for table, columns in {**EXTRACT_TABLES, "extractions": EXTRACTION_LOG_COLUMNS}.items():
        key = f', PRIMARY KEY ("{PRIMARY_KEYS[table]}")' if table in PRIMARY_KEYS and primary_keys else ""
        statements.append(f"CREATE TABLE IF NOT EXISTS {table} ({column_definitions(columns)}{key})")
    return statements


def load_sqlite_scanner(con: duckdb.DuckDBPyConnection) -> None:
    """Load DuckDB's SQLite scanner from its pip package (no download: this machine has no extension repository).
    DuckDB checks the extension's signature when loading it."""
    warehouse_backends.load_packaged_extension(con, duckdb_extension_sqlite_scanner, "sqlite_scanner")


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in LOCK_MARKERS)


@contextmanager
def connect(path: str | os.PathLike[str], *, read_only: bool = False, attempts: int = 8,
            first_delay_s: float = 0.25, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating its tables), retrying lock errors with exponential backoff; always close.

    ``path`` is a DuckDB file or a DuckLake descriptor (``warehouse_backends``), opened as the lake it names.
    ``memory_limit`` caps DuckDB's buffer memory (it spills to disk beyond it); by default DuckDB would take up to
    80% of the machine's RAM for a bulk load."""
    target = Path(path)
    lake = warehouse_backends.is_descriptor(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    delay = first_delay_s
    for attempt in range(1, attempts + 1):
        try:
            con = (warehouse_backends.open_lake(target) if lake
                   else duckdb.connect(str(target), read_only=read_only))
            break
        except duckdb.Error as exc:
            if not _is_lock_error(exc) or attempt == attempts:
                if _is_lock_error(exc):
                    raise WarehouseLocked(f"DuckDB warehouse {target} is locked by another process: {exc}") from exc
                raise
            time.sleep(delay)
            delay *= 2
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute("SET preserve_insertion_order = false")
        if not read_only:
            for statement in ddl(primary_keys=not lake):
                con.execute(statement)
        yield con
    finally:
        con.close()


def read_csv_sql(path: Path, columns: dict[str, str]) -> str:
    """A ``read_csv`` table expression for a header-less CSV file with ``columns`` (empty cells are NULL)."""
    names = ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items())
    return (f"read_csv({sql_literal(path)}, header=false, columns={{{names}}}, quote='\"', escape='\"', "
            f"nullstr='', auto_detect=false)")


class CsvSpool:
    """Rows for one table written to a temporary CSV file, so memory stays flat however many rows there are."""

    def __init__(self, directory: Path, table: str, columns: dict[str, str] | None = None) -> None:
        self.table = table
        self.columns = columns or EXTRACT_TABLES[table]
        handle, name = tempfile.mkstemp(prefix=f".{table}-", suffix=".csv", dir=directory)
        self.path = Path(name)
        self._file = os.fdopen(handle, "w", newline="", encoding="utf-8", errors="replace")
        self._writer = csv.writer(self._file)
        self.rows = 0

    def write(self, rows: Iterable[Sequence[Any]]) -> None:
        """Append rows (the C writer turns None into an empty cell, read back as NULL; booleans into
        True/False, which DuckDB reads as booleans)."""
        iterator = iter(rows)
        while batch := list(itertools.islice(iterator, WRITE_BATCH)):
            self._writer.writerows(batch)
            self.rows += len(batch)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def reader_sql(self) -> str:
        """A ``read_csv`` table expression for this spool."""
        return read_csv_sql(self.path, self.columns)


def upsert_staged(con: duckdb.DuckDBPyConnection, staged: str, table: str) -> int:
    """Upsert the rows of temp table ``staged`` into ``table`` by its primary key (runs, nodes and files change
    after they are first seen); returns how many keys are new."""
    key = PRIMARY_KEYS[table]
    con.execute(f'CREATE OR REPLACE TEMP TABLE upserted AS SELECT DISTINCT ON ("{key}") * FROM {staged}')
    new = con.execute(f'SELECT count(*) FROM upserted s ANTI JOIN {table} t ON s."{key}" = t."{key}"').fetchone()[0]
    if warehouse_backends.is_lake(con):
        con.execute(f'DELETE FROM {table} WHERE "{key}" IN (SELECT "{key}" FROM upserted)')
        con.execute(f"INSERT INTO {table} SELECT * FROM upserted")
    else:
        con.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM upserted")
    con.execute("DROP TABLE upserted")
    return int(new)


@contextmanager
def scratch_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary directory beside the warehouse (same disk) for bulk files, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=Path(path).parent) as tmp:
        yield Path(tmp)


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str], rows: Iterable[Sequence[Any]],
                directory: Path) -> int:
    """Append ``rows`` to the existing ``table`` through a CSV file; returns the row count."""
    spool = CsvSpool(directory, table, columns)
    try:
        spool.write(rows)
        spool.close()
        if spool.rows:
            con.execute(f"INSERT INTO {table} SELECT * FROM {spool.reader_sql()}")
        return spool.rows
    finally:
        spool.discard()


def replace_table(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str],
                  rows: Iterable[Sequence[Any]], directory: Path) -> int:
    """Replace ``table`` with ``rows`` (a derived table rebuilt by each mining step); returns the row count."""
    con.execute(f"CREATE OR REPLACE TABLE {table} ({column_definitions(columns)})")
    return insert_rows(con, table, columns, rows, directory)


def has_layout(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> bool:
    """True when ``table`` exists with exactly ``columns`` in the current schema (a table of an older layout is
    rebuilt, not read; a mode partition's schema has its own tables, ``skill_pipeline.lib.partitions``)."""
    found = [r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ? "
                                       "AND table_catalog = current_database() AND table_schema = current_schema() "
                                       "ORDER BY ordinal_position", [table]).fetchall()]
    return found == list(columns)
