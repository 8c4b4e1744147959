"""Bulk reading of the capture store into DuckDB temp tables, without handling rows one by one in Python.

SQLite is read by DuckDB's SQLite scanner: ``sqlite_query`` runs a statement inside SQLite (one read transaction,
filters answered by SQLite's indexes) and ``sqlite_scan`` reads a whole table with DuckDB's threads. PostgreSQL
streams ``COPY (SELECT ...) TO STDOUT`` as CSV into a file that DuckDB reads in parallel. Either way the rows are
handed over in C. The scanner rejects text that is not UTF-8 (rows a foreign writer left dirty); such a
statement is then re-read by Python's driver with the bad bytes replaced (slow, and only then).
"""

import csv
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from sqlalchemy import Engine

from skill_pipeline.lib import warehouse
from skill_pipeline.lib.warehouse import sql_literal

ALIAS = "capture_source"


def _typed(source: str, columns: dict[str, str]) -> str:
    return "SELECT " + ", ".join(f'CAST("{n}" AS {t}) AS "{n}"' for n, t in columns.items()) + f" FROM {source}"


def _replace_undecodable(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


class SourceReader:
    """Stages the rows of source-side SQL into DuckDB temp tables (see the module docstring)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, source: Engine, scratch: Path) -> None:
        self.con, self.source, self.scratch = con, source, scratch
        self.dialect = source.dialect.name
        database = source.url.database
        if self.dialect == "sqlite" and database not in (None, "", ":memory:"):
            self.database = str(database)
        elif self.dialect == "postgresql":
            self.database = None
        else:
            raise ValueError(f"extraction reads a file-backed SQLite or a PostgreSQL store, not {source.url!r}")

    def stage(self, table: str, sql: str, columns: dict[str, str], *, scan_table: str | None = None) -> None:
        """Create temp ``table`` (``columns``, in order) from the rows of ``sql``. With ``scan_table`` (SQLite
        only), ``sql`` is run by DuckDB over a parallel scan of that source table instead of inside SQLite: for
        reading most of a big table, where an index does not help and DuckDB's threads do."""
        create = f"CREATE OR REPLACE TEMP TABLE {table} AS "
        if self.database is None:
            self.con.execute(create + f"SELECT * FROM {warehouse.read_csv_sql(self._copy_postgres(table, sql), columns)}")
            return
        if scan_table is not None:
            scanned = f"sqlite_scan({sql_literal(self.database)}, {sql_literal(scan_table)})"
            relation = f"({sql.replace(f'FROM {scan_table}', f'FROM {scanned}', 1)})"
        else:
            relation = f"sqlite_query({sql_literal(ALIAS)}, {sql_literal(sql)})"
        try:
            self.con.execute(create + _typed(relation, columns))
        except duckdb.InvalidInputException as exc:
            if "unicode" not in str(exc).lower():
                raise
            path = self._copy_sqlite_replacing(table, sql)
            self.con.execute(create + f"SELECT * FROM {warehouse.read_csv_sql(path, columns)}")

    def _copy_postgres(self, table: str, sql: str) -> Path:
        path = self.scratch / f"{table}.csv"
        with self.source.connect() as conn, open(path, "wb") as out, \
                conn.connection.driver_connection.cursor() as cursor, \
                cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT csv)") as copy:
            out.writelines(copy)
        return path

    def _copy_sqlite_replacing(self, table: str, sql: str) -> Path:
        path = self.scratch / f"{table}.csv"
        conn = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        conn.text_factory = _replace_undecodable
        try:
            with open(path, "w", newline="", encoding="utf-8") as out:
                csv.writer(out).writerows(conn.execute(sql))
        finally:
            conn.close()
        return path


@contextmanager
def source_reader(con: duckdb.DuckDBPyConnection, source: Engine, scratch: Path) -> Iterator[SourceReader]:
    """A :class:`SourceReader`; on SQLite the store is attached read-only for its lifetime."""
    reader = SourceReader(con, source, scratch)
    if reader.database is None:
        yield reader
        return
    warehouse.load_sqlite_scanner(con)
    con.execute(f"ATTACH {sql_literal(reader.database)} AS {ALIAS} (TYPE sqlite, READ_ONLY)")
    try:
        yield reader
    finally:
        con.execute(f"DETACH {ALIAS}")

