"""Conventions shared by every asset: owner, the DuckDB writer pool and table-schema metadata."""

from collections.abc import Mapping

import dagster as dg

OWNERS = ["team:skillmine"]
DUCKDB_POOL = "duckdb_writer"
WAREHOUSE_TAG = {"skills/warehouse": "duckdb-writer"}


def column_schema(columns: Mapping[str, str]) -> dg.TableSchema:
    """A Dagster table schema from ``{column: type}``."""
    return dg.TableSchema(columns=[dg.TableColumn(name=name, type=kind) for name, kind in columns.items()])


def table_metadata(row_count: int, columns: Mapping[str, str]) -> dict[str, object]:
    """The two standard keys the UI understands for a table-like asset."""
    return {"dagster/row_count": dg.MetadataValue.int(int(row_count)),
            "dagster/column_schema": column_schema(columns)}
