"""The floor a store's schema sets for any write path: the very rows a store holds, copied by raw
``sqlite3.executemany`` into a fresh migrated store (same schema, indexes, triggers and pragmas), with no checks,
no conflict handling and no ORM. A write path can approach this figure, never beat it."""

import sqlite3
import time
from pathlib import Path

from capture.importers.merge import FINGERPRINT_TABLES, STORE_ASSIGNED
from capture.store.migrate import upgrade

# Parents before children; what the database assigns (sequence numbers, integer ids, the change stamp) is left to
# it: the fingerprint's store-assigned columns but a session's creation time, which the writer sends.
TABLES = FINGERPRINT_TABLES
DATABASE_ASSIGNED = {table: columns for table, columns in STORE_ASSIGNED.items() if table != "sessions"}
PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "cache_size=-65536")


def _read(source: Path) -> list[tuple[str, list[str], list[tuple]]]:
    conn = sqlite3.connect(source)
    try:
        out = []
        for table in TABLES:
            columns = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")
                       if r[1] not in DATABASE_ASSIGNED.get(table, set())]
            order = "seq" if table == "execution_events" else "rowid"
            rows = conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}").fetchall()
            out.append((table, columns, rows))
        return out
    finally:
        conn.close()


def raw_copy(source: Path, target: Path, rows_per_transaction: int = 50_000) -> tuple[float, float]:
    """Copy every row of the SQLite store at ``source`` (read beforehand, untimed) into a new store at ``target``;
    returns (wall, CPU) seconds of the inserts and commits alone."""
    tables = _read(source)
    upgrade(f"sqlite:///{target}")
    conn = sqlite3.connect(target, isolation_level=None)
    for pragma in PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    wall, cpu = time.perf_counter(), time.process_time()
    for table, columns, rows in tables:
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        for start in range(0, len(rows), rows_per_transaction):
            conn.execute("BEGIN")
            conn.executemany(sql, rows[start:start + rows_per_transaction])
            conn.execute("COMMIT")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    conn.close()
    return wall, cpu
