"""The library asset: publishing the publishable skill templates as a new immutable release."""

import dagster as dg

from skill_library import open_library
from skill_library.publish import publish
from skill_pipeline.defs.common import OWNERS, table_metadata
from skill_pipeline.lib import mining_steps
from skill_pipeline.lib.charts import markdown_table
from skill_pipeline.resources import SkillLibraryResource, WarehouseResource

RELEASE_COLUMNS = {"name": "string", "version": "semver", "support": "integer", "success_rate": "number",
                   "task_template": "string"}


@dg.asset(group_name="library", kinds={"json"}, owners=OWNERS, deps=["skill_templates"],
          description="A release of the versioned skill library: templates with enough support, published through "
                      "skill_library (identical content is a no-op and keeps the release).")
def skill_library_release(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                          skill_library: SkillLibraryResource) -> dg.MaterializeResult:
    with warehouse_db.connection() as con:
        candidates = mining_steps.publishable_candidates(con)
        hwm = mining_steps.watermark(con)
    path = skill_library.resolved_path()
    result = publish(path, candidates, pipeline_run_id=context.run.run_id, source_watermark=hwm)
    counts: dict[str, int] = {}
    for o in result.outcomes:
        counts[o.outcome] = counts.get(o.outcome, 0) + 1
    skills = open_library(path).skills(include_deprecated=False) if result.release else []
    context.log.info(f"release {result.release} ({'new' if result.created else 'unchanged'}): {counts}")
    preview = markdown_table(["skill", "version", "runs", "success rate", "task template"],
                             [(s["name"], s["version"], s["support"], s["success_rate"], s["task_template"])
                              for s in skills[:15]])
    return dg.MaterializeResult(metadata={
        **table_metadata(len(skills), RELEASE_COLUMNS),
        "release": result.release, "created": result.created, "source_watermark": hwm,
        **{f"skills_{k}": v for k, v in sorted(counts.items())},
        "library_path": dg.MetadataValue.path(str(path)),
        "preview": dg.MetadataValue.md("**Active skills**\n\n" + preview)})
