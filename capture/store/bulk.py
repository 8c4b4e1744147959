"""The store's DB-API write path: prepared rows handed to the driver as plain tuples, one statement per table.

SQLAlchemy Core costs more per row than SQLite takes to store it (a bind processor per value, one compiled
statement per key set), so every write of :class:`~capture.store.capture_store.StoreTransaction` goes through
here instead. SQLite: ``executemany`` of one statement per table and key set (sqlite3 keeps it prepared in its
statement cache). PostgreSQL: events through ``COPY ... FROM STDIN`` straight into ``execution_events`` inside a
savepoint, and only when an id is already stored (a replay) through a temporary staging table and ``INSERT ...
SELECT ... ON CONFLICT (id) DO NOTHING`` in the same transaction; plain inserts (messages, costs, edges) through
``COPY`` into their table; upserts and updates through psycopg's ``executemany``.

Rows arrive prepared by :mod:`capture.store.records` with payloads as JSON text. Here they only get what
SQLAlchemy would have added: the models' Python-side insert defaults and, on SQLite, its storage form of times
(``YYYY-MM-DD HH:MM:SS.ffffff``) and decimals (floats), so a row written here reads back as one written by the
ORM. Driver errors surface as SQLAlchemy's (``IntegrityError`` ...), as they would through Core. Every statement
of the write path is in this module.
"""

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, DateTime, Numeric, Table
from sqlalchemy.exc import DBAPIError

from capture.store.models import COSTS, EDGES, EVENTS, FILES, MESSAGES, NODES, RUNS, SESSIONS
from capture.store.records import EVENT_INSERT_ORDER, encode_pending

ID_LOOKUP_CHUNK = 900  # under SQLite's historical 999-parameter limit
EVENT_TIMES = ("timestamp", "started_at", "completed_at")
STAGE = "skillmine_events_stage"


@dataclass(frozen=True)
class TableShape:
    """What a table's rows need besides their own values: insert defaults and the columns to convert."""

    defaults: tuple[tuple[str, Any, bool], ...]  # (column, value or zero-argument function, is a function)
    times: frozenset[str]
    decimals: frozenset[str]


def _shape(table: Table) -> TableShape:
    defaults = []
    for column in table.columns:
        default = column.default
        if default is not None and default.is_scalar:
            defaults.append((column.name, default.arg, False))
        elif default is not None and default.is_callable:
            defaults.append((column.name, default.arg, True))  # SQLAlchemy's wrapper takes an unused context
    return TableShape(tuple(defaults),
                      frozenset(c.name for c in table.columns if isinstance(c.type, DateTime)),
                      frozenset(c.name for c in table.columns if isinstance(c.type, Numeric)))


SHAPES: dict[str, TableShape] = {t.name: _shape(t) for t in (SESSIONS, RUNS, NODES, EDGES, FILES, MESSAGES, COSTS)}
EVENT_SHAPE = _shape(EVENTS)
_EVENT_ROW = itemgetter(*EVENT_INSERT_ORDER)
_EVENT_TIME_POSITIONS = tuple(EVENT_INSERT_ORDER.index(c) for c in EVENT_TIMES)


def sqlite_time(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage form of a prepared (UTC) time: always with microseconds, no offset
    (the offset ``+00:00`` is what follows the first 26 characters)."""
    return value.isoformat(" ", "microseconds")[:26]


def _columns(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


EVENT_COLUMNS_SQL = _columns(EVENT_INSERT_ORDER)


def _assignments(names: Iterable[str], value: Callable[[str], str]) -> str:
    return ", ".join(f'"{n}" = {value(n)}' for n in names)


def _excluded(name: str) -> str:
    return f'excluded."{name}"'


def _by_keys(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rows grouped by their key set: one statement serves one key set."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row)].append(row)
    return groups


class BulkWriter(ABC):
    """The write statements of one transaction, on its DB-API connection (see the module docstring)."""

    mark = "?"

    def __init__(self, conn: Connection) -> None:
        self.dbapi = conn.connection.dbapi_connection
        self.errors = conn.dialect.dbapi.Error

    @contextmanager
    def _cursor(self, what: str) -> Iterator[Any]:
        cursor = self.dbapi.cursor()
        try:
            yield cursor
        except self.errors as exc:
            raise DBAPIError.instance(what, None, exc, self.errors) from exc
        finally:
            cursor.close()

    # -- conversion ---------------------------------------------------------------------------------------

    def _converter(self, shape: TableShape, column: str) -> Callable[[Any], Any] | None:
        """How one column's value becomes the driver's (None: as it is)."""
        return None

    def _tuples(self, shape: TableShape, keys: tuple[str, ...], rows: list[dict[str, Any]],
                with_defaults: bool) -> tuple[tuple[str, ...], list[list[Any]]]:
        """The column list and value lists of rows sharing ``keys``, defaults added for absent columns."""
        defaults = [d for d in shape.defaults if d[0] not in keys] if with_defaults else []
        columns = (*keys, *(d[0] for d in defaults))
        convert = [(i, f) for i, c in enumerate(columns) if (f := self._converter(shape, c)) is not None]
        out = []
        for row in rows:
            values = [row[k] for k in keys]
            values.extend(value(None) if call else value for _, value, call in defaults)
            for i, f in convert:
                if values[i] is not None:
                    values[i] = f(values[i])
            out.append(values)
        return columns, out

    # -- statements ---------------------------------------------------------------------------------------

    def existing(self, table: str, column: str, values: Iterable[Any]) -> set[Any]:
        """Which of ``values`` are stored in ``table.column`` (one query per chunk of ids)."""
        wanted = list({v for v in values if v is not None})
        found: set[Any] = set()
        with self._cursor(f"SELECT {column} FROM {table}") as cursor:
            for start in range(0, len(wanted), ID_LOOKUP_CHUNK):
                chunk = wanted[start:start + ID_LOOKUP_CHUNK]
                cursor.execute(f'SELECT "{column}" FROM {table} WHERE "{column}" IN '
                               f'({", ".join([self.mark] * len(chunk))})', chunk)
                found.update(r[0] for r in cursor.fetchall())
        return found

    def upsert(self, table: str, rows: list[dict[str, Any]], *, replace: bool = True) -> None:
        """Insert rows by ``id``; a stored row gets the columns the new row has (``replace``) or is kept."""
        shape = SHAPES[table]
        for keys, group in _by_keys(rows).items():
            columns, values = self._tuples(shape, keys, group, with_defaults=True)
            changed = [k for k in keys if k != "id"] if replace else []
            action = f"DO UPDATE SET {_assignments(changed, _excluded)}" if changed else "DO NOTHING"
            sql = (f"INSERT INTO {table} ({_columns(columns)}) VALUES ({', '.join([self.mark] * len(columns))}) "
                   f"ON CONFLICT (id) {action}")
            with self._cursor(sql) as cursor:
                cursor.executemany(sql, values)

    def insert(self, table: str, rows: list[dict[str, Any]]) -> None:
        """Plain inserts (rows with a store-assigned integer id: messages, costs, edges)."""
        shape = SHAPES[table]
        for keys, group in _by_keys(rows).items():
            columns, values = self._tuples(shape, keys, group, with_defaults=True)
            self._insert_values(table, columns, values)

    def _insert_values(self, table: str, columns: tuple[str, ...], values: list[list[Any]]) -> None:
        sql = f"INSERT INTO {table} ({_columns(columns)}) VALUES ({', '.join([self.mark] * len(columns))})"
        with self._cursor(sql) as cursor:
            cursor.executemany(sql, values)

    def update_events(self, updates: list[dict[str, Any]]) -> int:
        """Set the given columns of stored events (lifecycle updates); returns how many rows were sent."""
        sent = 0
        for keys, group in _by_keys(updates).items():
            changed = tuple(k for k in keys if k != "id")
            if not changed:
                continue
            _, values = self._tuples(EVENT_SHAPE, (*changed, "id"), group, with_defaults=False)
            sql = (f"UPDATE execution_events SET {_assignments(changed, lambda _: self.mark)} "
                   f"WHERE id = {self.mark}")
            with self._cursor(sql) as cursor:
                cursor.executemany(sql, values)
            sent += len(group)
        return sent

    @abstractmethod
    def insert_events(self, events: list[dict[str, Any]]) -> int:
        """Insert prepared events (every column present, payloads as JSON text), skipping ids already stored;
        returns how many were inserted."""


class SqliteWriter(BulkWriter):
    """SQLite: ``executemany`` throughout; times and decimals in SQLAlchemy's storage form."""

    EVENTS_SQL = (f"INSERT INTO execution_events ({EVENT_COLUMNS_SQL}) "
                  f"VALUES ({', '.join('?' * len(EVENT_INSERT_ORDER))}) ON CONFLICT (id) DO NOTHING")

    def _converter(self, shape: TableShape, column: str) -> Callable[[Any], Any] | None:
        if column in shape.times:
            return sqlite_time
        return float if column in shape.decimals else None

    def insert_events(self, events: list[dict[str, Any]]) -> int:
        rows = []
        for event in events:
            row = list(_EVENT_ROW(encode_pending(event)))
            for i in _EVENT_TIME_POSITIONS:
                if row[i] is not None:
                    row[i] = sqlite_time(row[i])
            rows.append(row)
        with self._cursor(self.EVENTS_SQL) as cursor:
            cursor.executemany(self.EVENTS_SQL, rows)
            return max(cursor.rowcount, 0)


class PostgresWriter(BulkWriter):
    """PostgreSQL (psycopg 3): ``COPY`` for inserts; events replay-safe through a staging table when needed."""

    mark = "%s"

    def insert_events(self, events: list[dict[str, Any]]) -> int:
        """``COPY`` straight into ``execution_events`` inside a savepoint: the usual case, where no id is stored
        yet, costs the table's own insert only (a staging table costs the server a third more per event,
        measured: benchmarks/RESULTS.md). If an id is already stored (a replay), the savepoint is rolled back and
        the rows go through the staging table: ``COPY`` into it, then ``INSERT ... SELECT ... ON CONFLICT (id)
        DO NOTHING``, in the same transaction. Either way ``seq`` follows the batch's (parents-first) order."""
        from psycopg.errors import UniqueViolation  # the only PostgreSQL driver the store accepts

        with self._cursor(f"COPY execution_events; INSERT INTO execution_events SELECT FROM {STAGE}") as cursor:
            cursor.execute("SAVEPOINT skillmine_events")
            try:  # rows made as they stream: the server stores the first while the rest are encoded
                self._copy(cursor, "execution_events", EVENT_COLUMNS_SQL,
                           (_EVENT_ROW(encode_pending(event)) for event in events))
            except UniqueViolation:
                cursor.execute("ROLLBACK TO SAVEPOINT skillmine_events")
                return self._insert_absent(cursor, [_EVENT_ROW(encode_pending(event)) for event in events])
            cursor.execute("RELEASE SAVEPOINT skillmine_events")
        return len(events)

    @staticmethod
    def _copy(cursor: Any, table: str, columns_sql: str, rows: Iterable[Any]) -> None:
        with cursor.copy(f"COPY {table} ({columns_sql}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _insert_absent(self, cursor: Any, rows: list[Any]) -> int:
        """The staging path: the rows whose id is not stored yet, inserted in their order; returns how many."""
        # Per connection: a temporary table lives as long as the (pooled) connection.
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {STAGE} AS "
                       f"SELECT {EVENT_COLUMNS_SQL} FROM execution_events WITH NO DATA")
        self._copy(cursor, STAGE, EVENT_COLUMNS_SQL, rows)
        # ctid order is the COPY order of the freshly emptied table
        cursor.execute(f"INSERT INTO execution_events ({EVENT_COLUMNS_SQL}) SELECT {EVENT_COLUMNS_SQL} "
                       f"FROM {STAGE} ORDER BY ctid ON CONFLICT (id) DO NOTHING")
        inserted = max(cursor.rowcount, 0)
        cursor.execute(f"TRUNCATE {STAGE}")
        return inserted

    def _insert_values(self, table: str, columns: tuple[str, ...], values: list[list[Any]]) -> None:
        with self._cursor(f"COPY {table}") as cursor:
            self._copy(cursor, table, _columns(columns), values)


def writer_for(conn: Connection) -> BulkWriter:
    """The bulk writer of ``conn``'s dialect."""
    return PostgresWriter(conn) if conn.dialect.name == "postgresql" else SqliteWriter(conn)
