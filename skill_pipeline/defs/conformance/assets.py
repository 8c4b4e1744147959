"""``run_conformance`` (new runs aligned to the library's skills) and ``skill_replays`` (replay verification)."""

import dagster as dg

from skill_pipeline.defs.common import OWNERS, WAREHOUSE_TAG, table_metadata
from skill_pipeline.defs.conformance.settings import ConformanceSettings, ReplayResource
from skill_pipeline.lib.charts import bar_chart_markdown, markdown_table
from skill_pipeline.lib.warehouse import scratch_directory
from skill_pipeline.resources import SkillLibraryResource, WarehouseResource
from skill_pipeline.verification.replay import replay_store, shutdown_capture, unreplayed, verify_skill
from skill_pipeline.verification.runs import CONFORMANCE_COLUMNS, assess_new_runs, histogram, library_models

BINS = 10


@dg.asset(group_name="conformance", kinds={"duckdb"}, owners=OWNERS, deps=["skill_library_release"],
          description="Per run: the active skill it fits best, fitness and deviations (missing, extra, out of "
                      "order, repeated steps with their event ids). Incremental: only runs with events extracted "
                      "since the last materialisation are (re)assessed.")
def run_conformance(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                    skill_library: SkillLibraryResource,
                    conformance_settings: ConformanceSettings) -> dg.MaterializeResult:
    models = library_models(skill_library.resolved_path())
    threshold = conformance_settings.fitness_threshold()
    with warehouse_db.connection() as con, scratch_directory(warehouse_db.resolved_path()) as scratch:
        batch = assess_new_runs(con, models, scratch, min_fitness=threshold)
        total = con.execute("SELECT count(*) FROM run_conformance").fetchone()[0]
    context.log.info(f"{batch['runs']} runs assessed against {batch['skills']} skills; "
                     f"{batch['successful_unfit']} of {batch['successful']} successful runs fit none")
    counts = histogram(batch["fitness"], BINS)
    labels = [f"{i / BINS:.1f}-{(i + 1) / BINS:.1f}" for i in range(BINS)]
    top = markdown_table(["skill", "deviation", "step", "runs"],
                         [(skill, kind, label.replace("|", " "), n)
                          for skill, found in batch["top_deviations"].items() for (kind, label), n in found])
    return dg.MaterializeResult(metadata={
        **table_metadata(total, CONFORMANCE_COLUMNS),
        "runs_assessed": batch["runs"], "skills": batch["skills"], "successful_runs": batch["successful"],
        "successful_unfit": batch["successful_unfit"], "unfit_share": float(batch["unfit_share"]),
        "min_fitness": threshold, "seq_range": f"({batch['previous_hwm']}, {batch['hwm']}]",
        "mean_fitness": float(sum(batch["fitness"]) / len(batch["fitness"])) if batch["fitness"] else 0.0,
        "fitness_histogram": dg.MetadataValue.md(bar_chart_markdown("Runs by fitness to their best skill",
                                                                    labels, counts, fmt="{:.0f}")),
        "top_deviations": dg.MetadataValue.md("**Top deviations per skill (this batch)**\n\n" + top)})


@dg.asset(group_name="conformance", kinds={"json"}, owners=OWNERS, deps=["skill_library_release"],
          description="Replay verification: every skill version not replayed yet is re-run on tasks of its family "
                      "(held-out member runs first) as AG2 group chats it steers, captured into the replay store; "
                      "it becomes active when the Wilson lower bound of its pass rate reaches the threshold, else "
                      "stays candidate with its failures recorded. A failing replay never fails this asset.")
def skill_replays(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                  skill_library: SkillLibraryResource, conformance_settings: ConformanceSettings,
                  replays: ReplayResource) -> dg.MaterializeResult:
    library = skill_library.resolved_path()
    settings = replays.settings(conformance_settings.fitness_threshold())
    pending = unreplayed(library)
    rows, outcome = [], {"active": 0, "candidate": 0}
    if pending:
        replay_store(settings)
        try:
            with warehouse_db.connection() as con:
                for name, version in pending:
                    _, stats, status = verify_skill(con, library, name, settings, version)
                    outcome[status] += 1
                    rows.append((name, version, status, stats["tried"], stats["passed"], stats["pass_wilson"][0],
                                 stats["fitness_p50"], "; ".join(stats["failures"])[:100]))
        finally:
            shutdown_capture()
    context.log.info(f"{len(pending)} skill versions replayed: {outcome['active']} promoted, "
                     f"{outcome['candidate']} left candidate")
    table = markdown_table(["skill", "version", "status", "tried", "passed", "pass rate lower bound", "fitness p50",
                            "failures"], rows)
    return dg.MaterializeResult(metadata={
        "replayed": len(pending), "promoted": outcome["active"], "left_candidate": outcome["candidate"],
        "threshold": settings.threshold, "tasks_per_skill": settings.tasks,
        "replay_store": settings.store_url, "replays": dg.MetadataValue.md(table)})


verify_skills_job = dg.define_asset_job(
    name="verify_skills_job", selection=dg.AssetSelection.assets(skill_replays), tags=WAREHOUSE_TAG,
    description="Replay every skill version not replayed yet and promote those that pass (run after mining: "
                "replays take seconds per task, so mine_skills_job leaves them out).")
