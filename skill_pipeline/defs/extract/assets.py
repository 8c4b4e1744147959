"""Extraction assets: the capture store's events, runs, nodes and files, incrementally copied into DuckDB."""

import dagster as dg
from pydantic import Field

from skill_pipeline.defs.common import DUCKDB_POOL, OWNERS, table_metadata
from skill_pipeline.lib import extraction, warehouse
from skill_pipeline.lib.charts import markdown_table
from skill_pipeline.resources import EventStoreResource, WarehouseResource

GROUP = "extract"
KINDS = {"duckdb", "sql"}


class ExtractConfig(dg.Config):
    """How much to re-read and keep."""

    overlap: int = Field(default=1000, description="seqs below the HWM re-read to catch late commits")
    payload_chars: int = Field(default=2048, description="characters of inputs/outputs kept per event")


def _spec(key: str, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(key, group_name=GROUP, kinds=KINDS, owners=OWNERS, description=description)


@dg.multi_asset(
    specs=[
        _spec("raw_agent_events", "Execution events (slim columns, payloads cut to payload_chars) loaded "
                                  "incrementally by seq with an overlap window; the HWM is MAX(seq) in DuckDB."),
        _spec("raw_workflow_runs", "Workflow runs with status and summed cost, re-synced for every run touched "
                                   "by new events and every run still open."),
        _spec("raw_dag_nodes", "DAG nodes of the re-synced runs."),
        _spec("raw_files", "Files produced by the re-synced runs."),
    ],
    pool=DUCKDB_POOL,
    can_subset=False,
)
def extracted_tables(context: dg.AssetExecutionContext, config: ExtractConfig, event_store: EventStoreResource,
                     warehouse_db: WarehouseResource):
    """Read the capture store above HWM - overlap, then write the four tables in one DuckDB transaction."""
    with event_store.engine() as engine:
        result = extraction.extract(engine, warehouse_db.resolved_path(), overlap=config.overlap,
                                    payload_chars=config.payload_chars, memory_limit=warehouse_db.memory_limit)
    context.log.info(f"extracted {result.events_inserted} new events (read {result.events_read}), "
                     f"HWM {result.previous_hwm} -> {result.hwm}")
    with warehouse_db.connection() as con:
        by_type = con.execute("SELECT event_type, count(*) FROM events GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
        by_status = con.execute("SELECT status, count(*) FROM runs GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()
        no_node = con.execute("SELECT count(*) FROM events WHERE node_id IS NULL").fetchone()[0]
    counts = result.warehouse_counts
    stats = {k: dg.MetadataValue.int(v) for k, v in result.metadata().items()}
    yield dg.MaterializeResult(
        asset_key="raw_agent_events",
        metadata={**table_metadata(counts["events"], warehouse.EVENT_COLUMNS), **stats,
                  "events_without_node": dg.MetadataValue.int(int(no_node)),
                  "preview": dg.MetadataValue.md("**Events by type**\n\n" + markdown_table(["event_type", "events"],
                                                                                         by_type))})
    yield dg.MaterializeResult(
        asset_key="raw_workflow_runs",
        metadata={**table_metadata(counts["runs"], warehouse.RUN_COLUMNS),
                  "rows_upserted": dg.MetadataValue.int(result.runs_synced),
                  "rows_inserted": dg.MetadataValue.int(result.runs_inserted),
                  "hwm": dg.MetadataValue.int(result.hwm),
                  "preview": dg.MetadataValue.md("**Runs by status**\n\n" + markdown_table(["status", "runs"],
                                                                                          by_status))})
    yield dg.MaterializeResult(
        asset_key="raw_dag_nodes",
        metadata={**table_metadata(counts["nodes"], warehouse.NODE_COLUMNS),
                  "rows_upserted": dg.MetadataValue.int(result.nodes_synced), "hwm": dg.MetadataValue.int(result.hwm)})
    yield dg.MaterializeResult(
        asset_key="raw_files",
        metadata={**table_metadata(counts["files"], warehouse.FILE_COLUMNS),
                  "rows_upserted": dg.MetadataValue.int(result.files_synced), "hwm": dg.MetadataValue.int(result.hwm)})
