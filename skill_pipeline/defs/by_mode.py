"""Mining by mode on Dagster: one dynamic partition per mode, one release from every mined mode.

``mode_skill_templates`` mines one mode's runs in that mode's warehouse schema (``skill_pipeline.lib.partitions``,
the same mining steps as ``mine_skills_job``); ``mode_skill_library_release`` depends on every partition and
publishes one release from the publishable templates of all materialised modes. ``new_modes_sensor`` reads the
modes of the capture store (never the warehouse) and adds a partition, with a run, for each new one.

Partitions are separate runs, so with a DuckLake warehouse they mine at the same time in separate processes or
pods (``mine_mode_job`` uses the multiprocess executor); with the DuckDB file the runs carry the warehouse's
writer tag, which the run queue limits to one at a time. Extraction stays ``mine_skills_job``'s (or
``extracted_tables`` alone): the partitions read what it extracted.
"""

import dagster as dg
from sqlalchemy import select

from capture.store.models import WorkflowRun
from skill_library.publish import publish
from skill_pipeline.defs.common import OWNERS, WAREHOUSE_TAG
from skill_pipeline.lib import mining_steps, partitions, warehouse
from skill_pipeline.resources import (
    EventStoreResource,
    MiningSettings,
    SkillLibraryResource,
    WarehouseResource,
)

GROUP = "by_mode"
NO_MODE = "(no mode)"  # the partition key of runs captured without a mode
mode_partitions = dg.DynamicPartitionsDefinition(name="mode")
EXTRACTED = ["raw_agent_events", "raw_workflow_runs", "raw_dag_nodes", "raw_files"]


def partition_key(mode: str | None) -> str:
    """The partition key of ``mode``."""
    return NO_MODE if mode is None else mode


def mode_of(key: str) -> str | None:
    """The mode a partition key stands for."""
    return None if key == NO_MODE else key


@dg.asset(group_name=GROUP, partitions_def=mode_partitions, deps=EXTRACTED, kinds={"duckdb", "python"},
          owners=OWNERS, description="Skill groups, patterns and templates of one mode's runs, mined in that mode's "
                                     "warehouse schema by the same steps as the unpartitioned assets.")
def mode_skill_templates(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                         mining_settings: MiningSettings) -> dg.MaterializeResult:
    mode = mode_of(context.partition_key)
    with warehouse_db.connection() as con, warehouse.scratch_directory(warehouse_db.resolved_path()) as scratch:
        mined = partitions.mine_mode(con, scratch, mode, mining_settings.params())
    publishable = sum(t.publishable for t in mined.templates)
    context.log.info(f"mode {context.partition_key}: {len(mined.groups)} groups, {len(mined.templates)} "
                     f"templates, {publishable} publishable")
    return dg.MaterializeResult(metadata={
        "schema": partitions.schema_name(mode), "groups": len(mined.groups),
        "runs": sum(len(g.run_ids) for g in mined.groups), "templates": len(mined.templates),
        "publishable": publishable, "backend": warehouse_db.resolved_backend()})


@dg.asset(group_name=GROUP, deps=[mode_skill_templates], kinds={"json"}, owners=OWNERS,
          description="One library release from the publishable templates of every materialised mode partition.")
def mode_skill_library_release(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                               skill_library: SkillLibraryResource) -> dg.MaterializeResult:
    keys = sorted(context.instance.get_materialized_partitions(mode_skill_templates.key))
    with warehouse_db.connection() as con:
        candidates = partitions.publishable_candidates(con, [mode_of(k) for k in keys])
        hwm = mining_steps.watermark(con)
    result = publish(skill_library.resolved_path(), candidates, pipeline_run_id=context.run.run_id,
                     source_watermark=hwm)
    context.log.info(f"release {result.release} ({'new' if result.created else 'unchanged'}) from modes {keys}")
    return dg.MaterializeResult(metadata={"release": result.release, "created": result.created,
                                          "modes": len(keys), "skills": len(candidates), "source_watermark": hwm})


def _writer_tags() -> dict[str, str]:
    """The DuckDB file's writer tag (one mining run at a time); none for DuckLake, whose partitions run together."""
    return {} if WarehouseResource().resolved_backend() == "ducklake" else WAREHOUSE_TAG


mine_mode_job = dg.define_asset_job(
    name="mine_mode_job", selection=dg.AssetSelection.assets(mode_skill_templates),
    executor_def=dg.multiprocess_executor, tags=_writer_tags(),
    description="Mine one mode partition (run one per mode; with DuckLake they run at the same time).")
publish_by_mode_job = dg.define_asset_job(
    name="publish_by_mode_job", selection=dg.AssetSelection.assets(mode_skill_library_release), tags=_writer_tags(),
    description="Publish one library release from every mined mode partition.")


def store_modes(event_store: EventStoreResource) -> list[str | None]:
    """The modes of the capture store's runs."""
    with event_store.engine() as engine, engine.connect() as conn:
        return list(conn.execute(select(WorkflowRun.mode).distinct()).scalars())


@dg.sensor(job=mine_mode_job, minimum_interval_seconds=300,
           description="Adds a mode partition, and requests its run, for each mode new in the capture store.")
def new_modes_sensor(context: dg.SensorEvaluationContext, event_store: EventStoreResource) -> dg.SensorResult:
    known = set(context.instance.get_dynamic_partitions(mode_partitions.name))
    new = sorted({partition_key(m) for m in store_modes(event_store)} - known)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=f"mode-{key}", partition_key=key) for key in new],
        dynamic_partitions_requests=[mode_partitions.build_add_request(new)] if new else [])
