"""Mining assets: token sequences, skill groups, patterns, skill templates and outcome analysis, kept in DuckDB.

Each asset body runs one step of ``skill_pipeline.lib.mining_steps`` (which reads the warehouse, calls
``skill_pipeline.mining.compose`` and writes the step's table) and turns what it returns into metadata: counts,
previews and plots, so the UI never needs the warehouse.
"""


import dagster as dg
from pydantic import Field

from skill_pipeline.defs.common import DUCKDB_POOL, OWNERS, table_metadata
from skill_pipeline.lib import mining_steps
from skill_pipeline.lib.charts import bar_chart_markdown, markdown_table
from skill_pipeline.lib.warehouse import (
    OUTCOME_COLUMNS,
    PATTERN_COLUMNS,
    RUN_CLUSTER_COLUMNS,
    RUN_SEQUENCE_COLUMNS,
    TEMPLATE_COLUMNS,
)
from skill_pipeline.resources import MiningSettings, WarehouseResource

GROUP = "mining"


def _spec_kwargs(description: str, *deps: str) -> dict:
    return {"group_name": GROUP, "kinds": {"duckdb", "python"}, "owners": OWNERS, "description": description,
            "deps": list(deps), "pool": DUCKDB_POOL}


@dg.asset(**_spec_kwargs("Token sequence per run (and per DAG node): one token per step, e.g. "
                         "'tool_call:control:record_status'. Rebuilt only for runs with new events.",
                         "raw_agent_events", "raw_workflow_runs", "raw_dag_nodes"))
def event_sequences(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                    mining_settings: MiningSettings) -> dg.MaterializeResult:
    granularity = mining_settings.token_granularity()
    with warehouse_db.connection() as con:
        done = mining_steps.tokenise(con, warehouse_db.resolved_path().parent, granularity)
    context.log.info(f"{done['retokenised']} runs re-tokenised, {done['runs'] - done['retokenised']} kept")
    preview = markdown_table(["runs", "tokens (most common run sequences)"],
                             [(n, " → ".join(t)[:400]) for t, n in done["top"]])
    return dg.MaterializeResult(metadata={
        **table_metadata(done["runs"], RUN_SEQUENCE_COLUMNS),
        "rows_inserted": done["retokenised"], "runs_kept": done["runs"] - done["retokenised"],
        "node_sequences": done["node_sequences"], "runs_without_tokens": done["empty"],
        "vocabulary_size": done["vocabulary"], "granularity": granularity, **done["dirty"],
        "preview": dg.MetadataValue.md(preview)})


class ClusterConfig(dg.Config):
    """When to re-group from scratch instead of assigning new runs to the existing skill groups."""

    full_recluster: bool = Field(default=False, description="always group every run from scratch")
    recluster_share: float = Field(default=0.05, description="re-group when new or changed runs exceed this "
                                                             "share of the grouped runs")


@dg.asset(**_spec_kwargs("Skill groups: runs split by mode, then by behaviour (token-sequence clustering) and task "
                         "family (task description words); group ids are content hashes. When few runs are new, "
                         "they are assigned to the existing groups instead.", "event_sequences"))
def sequence_clusters(context: dg.AssetExecutionContext, config: ClusterConfig, warehouse_db: WarehouseResource,
                      mining_settings: MiningSettings) -> dg.MaterializeResult:
    with warehouse_db.connection() as con:
        done = mining_steps.group(con, warehouse_db.resolved_path().parent, mining_settings.params(),
                                  full_recluster=config.full_recluster, recluster_share=config.recluster_share)
    groups = done["groups"]
    context.log.info(f"{len(groups)} skill groups over {done['grouped']} runs "
                     f"({'assigned ' + str(done['changed']) + ' new runs' if done['incremental'] else 'full grouping'})")
    return dg.MaterializeResult(metadata={
        **table_metadata(done["grouped"], RUN_CLUSTER_COLUMNS),
        "n_clusters": len(groups),
        "silhouette": dg.MetadataValue.float(float(done["silhouette"] or 0.0)),
        "silhouette_defined": done["silhouette"] is not None,
        "coverage": dg.MetadataValue.float(round(done["coverage"], 4)),
        "runs_skipped_empty": done["empty"], "runs_ungrouped": done["runs"] - done["grouped"],
        "clustering": "incremental" if done["incremental"] else "full",
        "runs_assigned": done["changed"] - done["unassigned"],
        "modes": len({g.mode for g in groups}), "task_families": len({(g.mode, g.family_id) for g in groups}),
        "mean_distance_to_medoid": dg.MetadataValue.float(round(done["cohesion"], 4)),
        "cluster_sizes": dg.MetadataValue.md(bar_chart_markdown(
            "Skill group sizes (runs)", [f"{g.mode}: {' '.join(g.family_words[:4])}" for g in groups][:20],
            [g.size for g in groups][:20], fmt="{:.0f}"))})


@dg.asset(**_spec_kwargs("Consensus step sequence per skill group, with optional steps and repeat blocks "
                         "(e.g. the engineer → executor retry loop).", "sequence_clusters"))
def skill_patterns(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource) -> dg.MaterializeResult:
    with warehouse_db.connection() as con:
        done = mining_steps.patterns(con, warehouse_db.resolved_path().parent)
    rows, built = done["rows"], done["patterns"]
    context.log.info(f"{len(rows)} patterns")
    return dg.MaterializeResult(metadata={
        **table_metadata(len(rows), PATTERN_COLUMNS),
        "mean_steps": dg.MetadataValue.float(round(sum(r[2] for r in rows) / len(rows), 2) if rows else 0.0),
        "patterns_with_repeats": sum(1 for p in built.values() if p.blocks),
        "preview": dg.MetadataValue.md("**Top patterns**\n\n" + markdown_table(
            ["group", "runs", "steps", "pattern"], [r[:4] for r in rows[:10]]))})


@dg.asset(**_spec_kwargs("Parameterised skill templates (task template with typed slots, steps, expected "
                         "outputs) with statistics: support, success rate and Wilson interval, repeatability, "
                         "duration and cost percentiles, retries, failure hot-spots.",
                         "skill_patterns", "raw_files", "raw_workflow_runs"))
def skill_templates(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                    mining_settings: MiningSettings) -> dg.MaterializeResult:
    params = mining_settings.params()
    with warehouse_db.connection() as con:
        built = mining_steps.templates(con, warehouse_db.resolved_path().parent, params)
    publishable = [t for t in built if t.publishable]
    reused = sum(1 for t in built if t.reused)
    rated = [t for t in built if t.success_rate is not None][:20]
    context.log.info(f"{len(built)} templates ({reused} reused), {len(publishable)} publishable "
                     f"(support >= {params.min_support})")
    return dg.MaterializeResult(metadata={
        **table_metadata(len(built), TEMPLATE_COLUMNS),
        "publishable": len(publishable), "below_support": sum(1 for t in built if t.support < params.min_support),
        "invalid": sum(1 for t in built if t.errors), "min_support": params.min_support,
        "slot_inference_reused": reused,
        "preview": dg.MetadataValue.md("**Templates**\n\n" + markdown_table(
            ["name", "runs", "success", "publishable", "task template"],
            [(t.name, t.support, t.success_rate, t.publishable, t.candidate["task_template"]) for t in built[:10]])),
        "success_rates": dg.MetadataValue.md(bar_chart_markdown(
            "Success rate per template", [t.name for t in rated], [t.success_rate for t in rated], max_value=1.0,
            fmt="{:.2f}"))})


@dg.asset(**_spec_kwargs("Success / failure analysis across all runs: rates with Wilson intervals by mode and "
                         "cluster, failure tokens, last step before failure, failure hot-spots.",
                         "sequence_clusters", "raw_workflow_runs"))
def run_outcomes(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource) -> dg.MaterializeResult:
    with warehouse_db.connection() as con:
        done = mining_steps.outcomes(con, warehouse_db.resolved_path().parent)
    analysis = done["analysis"]
    overall = analysis["overall"]
    by_cluster = sorted(analysis.get("by_cluster", {}).items(), key=lambda kv: -kv[1]["runs"])[:20]
    modes = markdown_table(["mode", "runs", "success rate", "95% CI"],
                           [(m, v["runs"], v["success_rate"], v["ci95"]) for m, v in analysis["by_mode"].items()])
    failures = markdown_table(["failure token", "count"],
                              [(f["token"], f["count"]) for f in analysis.get("failure_tokens", [])])
    rate = overall["success_rate"]
    return dg.MaterializeResult(metadata={
        **table_metadata(done["runs"], OUTCOME_COLUMNS),
        **({"success_rate": dg.MetadataValue.float(float(rate))} if rate is not None else {}),
        "successes": overall["successes"], "failures": overall["failures"], "unfinished": overall["unfinished"],
        "by_mode": dg.MetadataValue.md(modes), "failure_tokens": dg.MetadataValue.md(failures),
        "success_by_cluster": dg.MetadataValue.md(bar_chart_markdown(
            "Success rate by cluster", [c for c, _ in by_cluster],
            [v["success_rate"] or 0.0 for _, v in by_cluster], max_value=1.0, fmt="{:.2f}"))})
