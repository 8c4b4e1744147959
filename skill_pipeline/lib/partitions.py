"""Mining one mode at a time: each mode mines in its own schema of the warehouse, with the unchanged mining steps.

Skill groups never cross modes (runs are split by mode first), so a mode's runs can be mined apart from the
others. :func:`mode_schema` creates a schema per mode whose ``events``, ``runs``, ``nodes`` and ``files`` are
views onto that mode's rows of the extracted tables and selects it with ``USE``: the steps of
``mining_steps.mine_warehouse`` then read only that mode and write their derived tables (``run_sequences`` ...
``skill_templates``) into the schema. With a DuckLake warehouse, partitions run in separate processes or hosts at
the same time; a DuckDB file admits one writer, so its partitions run one after another.
"""

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from skill_pipeline.lib import mining_steps, warehouse
from skill_pipeline.mining import compose

RAW_VIEWS = {
    "runs": "SELECT * FROM {main}.runs WHERE mode IS NOT DISTINCT FROM {mode}",
    "events": "SELECT e.* FROM {main}.events e SEMI JOIN {schema}.runs r ON e.run_id = r.id",
    "nodes": "SELECT n.* FROM {main}.nodes n SEMI JOIN {schema}.runs r ON n.run_id = r.id",
    "files": "SELECT f.* FROM {main}.files f SEMI JOIN {schema}.runs r ON f.run_id = r.id",
}


def modes(con: duckdb.DuckDBPyConnection) -> list[str | None]:
    """The modes of the extracted runs (the partitions), in order; ``None`` for runs without a mode."""
    return [r[0] for r in con.execute("SELECT DISTINCT mode FROM runs ORDER BY mode NULLS LAST").fetchall()]


def schema_name(mode: str | None) -> str:
    """A schema name for ``mode``: readable, and unique through a short hash of the exact mode."""
    readable = re.sub(r"[^a-z0-9]+", "_", (mode or "none").lower()).strip("_")[:40]
    digest = hashlib.sha256(repr(mode).encode()).hexdigest()[:8]
    return f"mode_{readable}_{digest}"


@contextmanager
def mode_schema(con: duckdb.DuckDBPyConnection, mode: str | None) -> Iterator[str]:
    """Create (or refresh) the schema of ``mode`` and work inside it; back in the main schema afterwards."""
    catalog = con.execute("SELECT current_database()").fetchone()[0]
    main = f'"{catalog}".main'
    schema = f'"{catalog}".{schema_name(mode)}'
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    mode_sql = "NULL" if mode is None else warehouse.sql_literal(mode)
    for table, select in RAW_VIEWS.items():
        con.execute(f"CREATE OR REPLACE VIEW {schema}.{table} AS "
                    + select.format(main=main, schema=schema, mode=mode_sql))
    con.execute(f"USE {schema}")
    try:
        yield schema
    finally:
        con.execute(f"USE {main}")


def mine_mode(con: duckdb.DuckDBPyConnection, scratch: Path, mode: str | None,
              params: compose.MiningParams) -> compose.MiningResult:
    """Mine the runs of ``mode`` in its schema (``mining_steps.mine_warehouse``)."""
    with mode_schema(con, mode):
        return mining_steps.mine_warehouse(con, scratch, params)


def publishable_candidates(con: duckdb.DuckDBPyConnection, mined: list[str | None]) -> list[dict[str, Any]]:
    """The publishable templates of every mined mode (support, then name, as ``mining_steps`` orders one
    warehouse's): what one library release publishes."""
    found: list[tuple[int, str, str]] = []
    for mode in mined:
        with mode_schema(con, mode):
            found += con.execute("SELECT support, name, candidate FROM skill_templates WHERE publishable").fetchall()
    return [json.loads(doc) for _, _, doc in sorted(found, key=lambda row: (-row[0], row[1]))]
