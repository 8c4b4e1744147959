"""Mining assets: token sequences, clusters, patterns, skill templates and outcome analysis, kept in DuckDB.

Each asset reads its inputs from the warehouse (inside the run only), calls the pure functions of
``skill_pipeline.mining`` and writes a derived table; metadata carries counts, previews, plots and quality
figures so the UI never needs the warehouse.
"""

import dataclasses
import hashlib
import json

import dagster as dg
import numpy as np
from pydantic import Field
from sklearn.metrics import silhouette_score

from capture.vocabulary import EVENT_TYPES
from skill_pipeline.defs.common import DUCKDB_POOL, OWNERS, table_metadata
from skill_pipeline.lib import candidates, loaders, pattern_json, step_lists, warehouse
from skill_pipeline.lib import slot_values as slot_values_of
from skill_pipeline.lib.charts import bar_chart_markdown, markdown_table
from skill_pipeline.lib.warehouse import sql_list
from skill_pipeline.mining.clustering import normalized_distance, reduce_sequence
from skill_pipeline.mining.outcomes import analyse_outcomes
from skill_pipeline.mining.patterns import describe_pattern
from skill_pipeline.mining.skill_groups import SkillGroup, assign_to_groups, group_runs
from skill_pipeline.mining.skills import group_pattern, group_skill, unique_names
from skill_pipeline.mining.stats import outcome
from skill_pipeline.mining.templates import template_statistics
from skill_pipeline.mining.tokens import token_events
from skill_pipeline.resources import MiningSettings, WarehouseResource

GROUP = "mining"
OPEN_STATUSES = ("executing", "pending", "running", "paused", "waiting_approval")
RUN_SEQUENCE_COLUMNS = {"run_id": "VARCHAR", "last_seq": "BIGINT", "n_events": "INTEGER",
                        "n_tokens": "INTEGER", "tokens": "VARCHAR", "unknown_types": "INTEGER",
                        "events_without_node": "INTEGER", "unknown_agents": "INTEGER", "order_gaps": "BOOLEAN"}
NODE_SEQUENCE_COLUMNS = {"run_id": "VARCHAR", "node_id": "VARCHAR", "n_tokens": "INTEGER", "tokens": "VARCHAR"}
RUN_CLUSTER_COLUMNS = {"run_id": "VARCHAR", "ordinal": "INTEGER", "cluster_id": "VARCHAR", "distance": "DOUBLE",
                       "last_seq": "BIGINT"}
CLUSTER_COLUMNS = {"cluster_id": "VARCHAR", "size": "INTEGER", "medoid": "VARCHAR", "group_json": "VARCHAR"}
PATTERN_COLUMNS = {"cluster_id": "VARCHAR", "support": "INTEGER", "n_steps": "INTEGER", "description": "VARCHAR",
                   "pattern": "VARCHAR"}
TEMPLATE_COLUMNS = {"cluster_id": "VARCHAR", "name": "VARCHAR", "support": "INTEGER", "success_rate": "DOUBLE",
                    "publishable": "BOOLEAN", "errors": "VARCHAR", "candidate": "VARCHAR", "slot_values": "VARCHAR",
                    "cache_key": "VARCHAR", "sampled_slot_values": "VARCHAR"}
QUALITY_COLUMNS = {"silhouette": "DOUBLE", "n_clusters": "INTEGER", "runs": "INTEGER", "coverage": "DOUBLE",
                   "mean_distance_to_medoid": "DOUBLE"}
OUTCOME_COLUMNS = {"run_id": "VARCHAR", "mode": "VARCHAR", "status": "VARCHAR", "cluster_id": "VARCHAR"}
# Member runs whose full events feed slot inference per template; statistics always use every member.
TEMPLATE_SAMPLE_RUNS = 100


def _spec_kwargs(description: str, *deps: str) -> dict:
    return {"group_name": GROUP, "kinds": {"duckdb", "python"}, "owners": OWNERS, "description": description,
            "deps": list(deps), "pool": DUCKDB_POOL}


def _scratch(warehouse_db: WarehouseResource):
    return warehouse_db.resolved_path().parent


def _dirty_counts(con) -> dict[str, int]:
    """Dirty-data totals, summed from the per-run counts kept in ``run_sequences`` (each run's events are
    counted once, when they are tokenised), plus the runs still open."""
    return dict(zip(
        ("unknown_event_types", "events_without_node", "unknown_or_system_agents", "runs_with_order_gaps",
         "runs_stuck_open"),
        (int(v or 0) for v in con.execute(f"""
            SELECT sum(unknown_types), sum(events_without_node), sum(unknown_agents), count(*) FILTER (order_gaps),
                   (SELECT count(*) FROM runs WHERE status IN {sql_list(OPEN_STATUSES)})
            FROM run_sequences""").fetchone()), strict=True))


@dg.asset(**_spec_kwargs("Token sequence per run (and per DAG node): one token per step, e.g. "
                         "'tool_call:control:record_status'. Rebuilt only for runs with new events.",
                         "raw_agent_events", "raw_workflow_runs", "raw_dag_nodes"))
def event_sequences(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                    mining_settings: MiningSettings) -> dg.MaterializeResult:
    granularity = mining_settings.token_granularity()
    with warehouse_db.connection() as con:
        has_previous = [r[0] for r in con.execute(  # a table of an older layout is rebuilt
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'run_sequences' "
            "ORDER BY ordinal_position").fetchall()] == list(RUN_SEQUENCE_COLUMNS)
        stale_sql = ("SELECT e.run_id FROM events e GROUP BY e.run_id" if not has_previous else
                     "SELECT e.run_id FROM events e LEFT JOIN run_sequences s ON s.run_id = e.run_id "
                     "GROUP BY e.run_id, s.last_seq HAVING s.last_seq IS NULL OR max(e.seq) <> s.last_seq")
        stale = [r[0] for r in con.execute(stale_sql).fetchall()]
        step_lists.stage_steps(con, stale, granularity)  # also stages the stale ids as wanted_runs
        run_rows, node_rows = _tokenised_rows(con, granularity)
        scratch = _scratch(warehouse_db)
        if has_previous:  # only the stale runs' rows change
            for table in ("run_sequences", "node_sequences"):
                con.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT id FROM wanted_runs)")
            warehouse.insert_rows(con, "run_sequences", RUN_SEQUENCE_COLUMNS, run_rows, scratch)
            warehouse.insert_rows(con, "node_sequences", NODE_SEQUENCE_COLUMNS, node_rows, scratch)
        else:
            warehouse.replace_table(con, "run_sequences", RUN_SEQUENCE_COLUMNS, run_rows, scratch)
            warehouse.replace_table(con, "node_sequences", NODE_SEQUENCE_COLUMNS, node_rows, scratch)
        dirty = _dirty_counts(con)
        top = con.execute("SELECT tokens, count(*) AS runs FROM run_sequences GROUP BY 1 ORDER BY 2 DESC, 1 "
                          "LIMIT 5").fetchall()
        total, empty, nodes, vocabulary = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE n_tokens = 0), (SELECT count(*) FROM node_sequences), "
            "(SELECT count(DISTINCT t) FROM (SELECT unnest(json_extract_string(tokens, '$[*]')) AS t "
            "FROM (SELECT DISTINCT tokens FROM run_sequences))) FROM run_sequences").fetchone()
    context.log.info(f"{len(stale)} runs re-tokenised, {total - len(stale)} kept")
    preview = markdown_table(["runs", "tokens (most common run sequences)"],
                             [(n, " → ".join(json.loads(t))[:400]) for t, n in top])
    return dg.MaterializeResult(metadata={
        **table_metadata(int(total), RUN_SEQUENCE_COLUMNS),
        "rows_inserted": len(stale), "runs_kept": int(total) - len(stale), "node_sequences": int(nodes),
        "runs_without_tokens": int(empty), "vocabulary_size": int(vocabulary), "granularity": granularity,
        **dirty, "preview": dg.MetadataValue.md(preview)})


def _tokenised_rows(con, granularity: str) -> tuple[list[tuple], list[tuple]]:
    """run_sequences and node_sequences rows of the runs in ``wanted_runs`` (``step_lists.stage_steps`` ran):
    each distinct step list is tokenised once; run rows carry the run's dirty-data counts."""
    tokens_of: dict[bool, dict[tuple[str, str | None], list[str]]] = {False: {}, True: {}}
    for per_node, found in tokens_of.items():
        for events, owners in step_lists.distinct_step_lists(con, per_node=per_node):
            tokens = [t for t, _ in token_events(events, granularity)]
            found.update((owner, tokens) for owner in owners)
    run_rows = [(run_id, last_seq, n_events, len(tokens), json.dumps(tokens), *dirty)
                for run_id, last_seq, n_events, *dirty in con.execute(f"""
                    SELECT e.run_id, max(e.seq), count(*),
                           count(*) FILTER (WHERE e.event_type IS NULL OR e.event_type NOT IN {sql_list(sorted(EVENT_TYPES))}),
                           count(*) FILTER (WHERE e.node_id IS NULL),
                           count(*) FILTER (WHERE e.agent_name IS NULL OR lower(e.agent_name) IN ('unknown', 'system')),
                           coalesce(max(e.execution_order) - min(e.execution_order) + 1
                                    > count(DISTINCT e.execution_order), false)
                    FROM events e JOIN wanted_runs w ON e.run_id = w.id GROUP BY e.run_id ORDER BY e.run_id""").fetchall()
                for tokens in [tokens_of[False].get((run_id, None), [])]]
    node_rows = [(run_id, node_id, len(tokens), json.dumps(tokens))
                 for run_id, node_id in con.execute(
                     "SELECT DISTINCT e.run_id, e.node_id FROM events e JOIN wanted_runs w ON e.run_id = w.id "
                     "ORDER BY e.run_id, e.node_id NULLS FIRST").fetchall()
                 for tokens in [tokens_of[True].get((run_id, node_id), [])]]
    return run_rows, node_rows


class ClusterConfig(dg.Config):
    """When to re-group from scratch instead of assigning new runs to the existing skill groups."""

    full_recluster: bool = Field(default=False, description="always group every run from scratch")
    recluster_share: float = Field(default=0.05, description="re-group when new or changed runs exceed this "
                                                             "share of the grouped runs")


def _load_sequences(con) -> tuple[list[str], list[list[str]], list[int]]:
    rows = con.execute("SELECT run_id, tokens, last_seq FROM run_sequences ORDER BY run_id").fetchall()
    parsed = loaders.token_lists((r[0], r[1]) for r in rows)
    return [r[0] for r in rows], [parsed[r[0]] for r in rows], [r[2] for r in rows]


def _has_table(con, name: str) -> bool:
    return con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchone()[0] > 0


def load_groups(con) -> list[SkillGroup]:
    """The skill groups stored by ``sequence_clusters`` (largest first)."""
    return [SkillGroup(**json.loads(g)) for (g,) in con.execute(
        "SELECT group_json FROM clusters ORDER BY size DESC, cluster_id").fetchall()]


def _assign_new_runs(groups: list[SkillGroup], changed: list[str], sequences: dict[str, list[str]],
                     runs: dict[str, dict]) -> tuple[list[SkillGroup], dict[str, float], int]:
    """Existing groups with changed runs moved to the group ``assign_to_groups`` picks (runs of an unseen mode
    stay ungrouped until the next full grouping)."""
    moved = set(changed)
    members = {g.group_id: [r for r in g.run_ids if r not in moved] for g in groups}
    distances, unassigned = {}, 0
    for run_id in changed:
        run = runs.get(run_id, {})
        found = assign_to_groups(groups, sequences[run_id], run.get("task_description", ""), run.get("mode"))
        if found is None:
            unassigned += 1
            continue
        members[found[0]].append(run_id)
        distances[run_id] = found[1]
    updated = [dataclasses.replace(g, run_ids=sorted(members[g.group_id])) for g in groups]
    return [g for g in updated if g.run_ids], distances, unassigned


def _silhouette(groups: list[SkillGroup], sequences: dict[str, list[str]], sample: int = 400) -> float | None:
    """Silhouette of the grouping on the behaviour edit distance, over a deterministic sample of runs."""
    labelled = sorted((r, g.group_id) for g in groups for r in g.run_ids if sequences.get(r))
    if len({g for _, g in labelled}) < 2:
        return None
    step = max(1, len(labelled) // sample)
    chosen = labelled[::step][:sample]
    if len({g for _, g in chosen}) < 2:
        return None
    reduced = [reduce_sequence(sequences[r]) for r, _ in chosen]
    matrix = np.array([[normalized_distance(a, b) for b in reduced] for a in reduced])
    return float(silhouette_score(matrix, [g for _, g in chosen], metric="precomputed"))


@dg.asset(**_spec_kwargs("Skill groups: runs split by mode, then by behaviour (token-sequence clustering) and task "
                         "family (task description words); group ids are content hashes. When few runs are new, "
                         "they are assigned to the existing groups instead.", "event_sequences"))
def sequence_clusters(context: dg.AssetExecutionContext, config: ClusterConfig, warehouse_db: WarehouseResource,
                      mining_settings: MiningSettings) -> dg.MaterializeResult:
    with warehouse_db.connection() as con:
        run_ids, token_lists, last_seqs = _load_sequences(con)
        sequences = dict(zip(run_ids, token_lists, strict=True))
        runs = loaders.runs(con)
        previous = ({r: q for r, q in con.execute("SELECT run_id, last_seq FROM run_clusters").fetchall()}
                    if _has_table(con, "run_clusters") and _has_table(con, "clusters") and "group_json" in {
                        r[0] for r in con.execute("DESCRIBE clusters").fetchall()} else {})
        changed = [r for r, q in zip(run_ids, last_seqs, strict=True) if previous.get(r, -1) != q]
        incremental = (bool(previous) and not config.full_recluster
                       and len(changed) <= config.recluster_share * len(previous))
        unassigned = 0
        if incremental:
            groups, distances, unassigned = _assign_new_runs(load_groups(con), changed, sequences, runs)
            old = dict(con.execute("SELECT run_id, distance FROM run_clusters").fetchall())
            distances = {**old, **distances}
        else:
            groups = group_runs(sequences, {r: runs.get(r, {}).get("task_description", "") for r in run_ids},
                                {r: runs.get(r, {}).get("mode") for r in run_ids},
                                {r: outcome(runs.get(r, {})) for r in run_ids},
                                sample_size=mining_settings.sample_size)
            medoid_of = {g.group_id: g.medoid for g in groups}
            distances = {r: normalized_distance(reduce_sequence(sequences[r]), medoid_of[g.group_id])
                         for g in groups for r in g.run_ids}
        group_of = {r: g.group_id for g in groups for r in g.run_ids}
        last_seq = dict(zip(run_ids, last_seqs, strict=True))
        grouped = [r for r in run_ids if r in group_of]
        warehouse.replace_table(con, "run_clusters", RUN_CLUSTER_COLUMNS,
                                ((r, i, group_of[r], float(distances.get(r, 0.0)), last_seq[r])
                                 for i, r in enumerate(grouped)), _scratch(warehouse_db))
        cluster_rows = [(g.group_id, g.size, json.dumps(g.medoid), json.dumps(dataclasses.asdict(g)))
                        for g in groups]
        warehouse.replace_table(con, "clusters", CLUSTER_COLUMNS, cluster_rows, _scratch(warehouse_db))
        silhouette = _silhouette(groups, sequences)
        coverage = len(grouped) / len(run_ids) if run_ids else 0.0
        cohesion = sum(distances.get(r, 0.0) for r in grouped) / len(grouped) if grouped else 0.0
        warehouse.replace_table(con, "clustering_quality", QUALITY_COLUMNS,
                                [(silhouette, len(groups), len(grouped), coverage, cohesion)], _scratch(warehouse_db))
    sizes = [g.size for g in groups]
    context.log.info(f"{len(groups)} skill groups over {len(grouped)} runs "
                     f"({'assigned ' + str(len(changed)) + ' new runs' if incremental else 'full grouping'})")
    return dg.MaterializeResult(metadata={
        **table_metadata(len(grouped), RUN_CLUSTER_COLUMNS),
        "n_clusters": len(groups),
        "silhouette": dg.MetadataValue.float(float(silhouette if silhouette is not None else 0.0)),
        "silhouette_defined": silhouette is not None,
        "coverage": dg.MetadataValue.float(round(coverage, 4)),
        "runs_skipped_empty": sum(1 for t in token_lists if not t), "runs_ungrouped": len(run_ids) - len(grouped),
        "clustering": "incremental" if incremental else "full", "runs_assigned": len(changed) - unassigned,
        "modes": len({g.mode for g in groups}), "task_families": len({(g.mode, g.family_id) for g in groups}),
        "mean_distance_to_medoid": dg.MetadataValue.float(round(cohesion, 4)),
        "cluster_sizes": dg.MetadataValue.md(bar_chart_markdown(
            "Skill group sizes (runs)", [f"{g.mode}: {' '.join(g.family_words[:4])}" for g in groups][:20],
            sizes[:20], fmt="{:.0f}"))})


@dg.asset(**_spec_kwargs("Consensus step sequence per cluster, with optional steps and repeat blocks "
                         "(e.g. the engineer → executor retry loop).", "sequence_clusters"))
def skill_patterns(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource) -> dg.MaterializeResult:
    with warehouse_db.connection() as con:
        run_ids, token_lists, _ = _load_sequences(con)
        sequences = dict(zip(run_ids, token_lists, strict=True))
        runs = loaders.runs(con)
        patterns = {g.group_id: group_pattern(g, sequences, runs) for g in load_groups(con)}
        rows = [(cid, p.support, len(p.steps), describe_pattern(p), pattern_json.dumps(p))
                for cid, p in patterns.items()]
        warehouse.replace_table(con, "patterns", PATTERN_COLUMNS, rows, _scratch(warehouse_db))
    preview = markdown_table(["group", "runs", "steps", "pattern"], [r[:4] for r in rows[:10]])
    context.log.info(f"{len(rows)} patterns")
    return dg.MaterializeResult(metadata={
        **table_metadata(len(rows), PATTERN_COLUMNS),
        "mean_steps": dg.MetadataValue.float(round(sum(r[2] for r in rows) / len(rows), 2) if rows else 0.0),
        "patterns_with_repeats": sum(1 for p in patterns.values() if p.blocks),
        "preview": dg.MetadataValue.md("**Top patterns**\n\n" + preview)})


def _cache_key(pattern, sample_runs: list[str], last_seq: dict[str, int]) -> str:
    """What slot inference depends on: the pattern's step structure and the sampled runs (with their last seq)."""
    shape = [[s.token, s.optional, s.block] for s in pattern.steps]
    blocks = [[b.start, b.end, b.min, b.max, b.until] for b in pattern.blocks]
    text = json.dumps([shape, blocks, [[r, last_seq.get(r)] for r in sample_runs]])
    return hashlib.sha256(text.encode()).hexdigest()


def _template_row(cluster_id: str, pattern_text: str, context: dict, cache: dict[str, tuple]) -> tuple:
    """One skill_templates row. Slot inference uses the ``TEMPLATE_SAMPLE_RUNS`` oldest members (so new runs
    rarely change it, and it is reused from the previous materialisation while its inputs are unchanged), and
    those runs are the skill's ``provenance.source_runs``: a published document stays small and stable however
    many runs a skill has. Statistics always cover every member (``statistics.support`` counts them)."""
    con, runs, first_seq = context["con"], context["runs"], context["first_seq"]
    pattern = pattern_json.loads(pattern_text)
    group = context["groups"][cluster_id]
    member_runs = group.run_ids  # the pattern's member order
    members = [runs[r] for r in member_runs]
    positions = sorted(sorted(range(len(members)), key=lambda i: (first_seq[member_runs[i]], member_runs[i]))
                       [:TEMPLATE_SAMPLE_RUNS])
    sample_ids = [member_runs[i] for i in positions]
    key = _cache_key(pattern, sample_ids, context["last_seq"])
    if key in cache:
        candidate, sampled_values = cache[key]
    else:
        events = dict(loaders.events_by_run(con, sample_ids, payloads=True,
                                            skip_types=step_lists.dropped_types(context["granularity"])))
        sample_group = dataclasses.replace(group, run_ids=sample_ids)
        mined = group_skill(sample_group, pattern_json.subset(pattern, positions), runs, events,
                            loaders.files(con, sample_ids), granularity=context["granularity"])
        candidate, sampled_values = candidates.to_library_candidate(mined), mined.get("slot_values") or {}
    stats = template_statistics(pattern, members, {}, context["full_sequences"])
    candidate = candidates.with_statistics(candidate, stats, sorted(sample_ids))
    slot_values = {r: sampled_values.get(r) or slot_values_of.values_from_task(candidate["task_template"],
                                                                                 runs[r]["task_description"])
                   for r in sorted(member_runs)}
    errors = candidates.library_errors(candidate)
    rate = stats["success_rate"]
    publishable = not errors and len(members) >= context["min_support"] and rate is not None
    return (cluster_id, candidate["name"], len(members), rate, publishable, "; ".join(errors),
            json.dumps(candidate, sort_keys=True), json.dumps(slot_values, sort_keys=True), key,
            json.dumps(sampled_values, sort_keys=True))


def _unique_names(rows: list[tuple]) -> list[tuple]:
    """Rows with candidate names made unique (``skills.unique_names``: a repeated name gets its group id)."""
    docs = [json.loads(r[6]) for r in rows]
    unique_names(docs)
    return [(r[0], d["name"], *r[2:6], json.dumps(d, sort_keys=True), *r[7:]) for r, d in zip(rows, docs, strict=True)]


@dg.asset(**_spec_kwargs("Parameterised skill templates (task template with typed slots, steps, expected "
                         "outputs) with statistics: support, success rate and Wilson interval, repeatability, "
                         "duration and cost percentiles, retries, failure hot-spots.",
                         "skill_patterns", "raw_files", "raw_workflow_runs"))
def skill_templates(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource,
                    mining_settings: MiningSettings) -> dg.MaterializeResult:
    min_support = mining_settings.support()
    with warehouse_db.connection() as con:
        cache = ({key: (json.loads(doc), json.loads(sampled)) for key, doc, sampled in con.execute(
            "SELECT cache_key, candidate, sampled_slot_values FROM skill_templates").fetchall()}
            if _has_table(con, "skill_templates") and "cache_key" in {
                r[0] for r in con.execute("DESCRIBE skill_templates").fetchall()} else {})
        shared = {"con": con, "runs": loaders.runs(con), "min_support": min_support,
                  "groups": {g.group_id: g for g in load_groups(con)},
                  "granularity": mining_settings.token_granularity(),
                  "first_seq": dict(con.execute("SELECT run_id, min(seq) FROM events GROUP BY run_id").fetchall()),
                  "last_seq": dict(con.execute("SELECT run_id, last_seq FROM run_sequences").fetchall()),
                  "full_sequences": loaders.token_lists(con.execute(
                      "SELECT run_id, tokens FROM run_sequences").fetchall())}
        patterns = con.execute("SELECT cluster_id, pattern FROM patterns ORDER BY support DESC, cluster_id").fetchall()
        rows = _unique_names([_template_row(cid, text, shared, cache) for cid, text in patterns])
        warehouse.replace_table(con, "skill_templates", TEMPLATE_COLUMNS, rows, _scratch(warehouse_db))
    publishable = [r for r in rows if r[4]]
    reused = sum(1 for r in rows if r[8] in cache)
    preview = markdown_table(["name", "runs", "success", "publishable", "task template"],
                             [(r[1], r[2], r[3], r[4], json.loads(r[6])["task_template"]) for r in rows[:10]])
    rated = [r for r in rows if r[3] is not None][:20]
    context.log.info(f"{len(rows)} templates ({reused} reused), {len(publishable)} publishable "
                     f"(support >= {min_support})")
    return dg.MaterializeResult(metadata={
        **table_metadata(len(rows), TEMPLATE_COLUMNS),
        "publishable": len(publishable), "below_support": sum(1 for r in rows if r[2] < min_support),
        "invalid": sum(1 for r in rows if r[5]), "min_support": min_support, "slot_inference_reused": reused,
        "preview": dg.MetadataValue.md("**Templates**\n\n" + preview),
        "success_rates": dg.MetadataValue.md(bar_chart_markdown(
            "Success rate per template", [r[1] for r in rated], [r[3] for r in rated], max_value=1.0,
            fmt="{:.2f}"))})


@dg.asset(**_spec_kwargs("Success / failure analysis across all runs: rates with Wilson intervals by mode and "
                         "cluster, failure tokens, last step before failure, failure hot-spots.",
                         "sequence_clusters", "raw_workflow_runs"))
def run_outcomes(context: dg.AssetExecutionContext, warehouse_db: WarehouseResource) -> dg.MaterializeResult:
    with warehouse_db.connection() as con:
        runs = list(loaders.runs(con).values())
        sequences = loaders.token_lists(con.execute("SELECT run_id, tokens FROM run_sequences").fetchall())
        cluster_of = dict(con.execute("SELECT run_id, cluster_id FROM run_clusters").fetchall())
        analysis = analyse_outcomes(runs, sequences, cluster_of)
        warehouse.replace_table(con, "run_outcomes", OUTCOME_COLUMNS,
                                ((r["run_id"], r["mode"], r["status"], cluster_of.get(r["run_id"])) for r in runs),
                                _scratch(warehouse_db))
        warehouse.replace_table(con, "outcome_analysis", {"analysis": "VARCHAR"}, [(json.dumps(analysis),)],
                                _scratch(warehouse_db))
    overall = analysis["overall"]
    by_cluster = sorted(analysis.get("by_cluster", {}).items(), key=lambda kv: -kv[1]["runs"])[:20]
    modes = markdown_table(["mode", "runs", "success rate", "95% CI"],
                           [(m, v["runs"], v["success_rate"], v["ci95"]) for m, v in analysis["by_mode"].items()])
    failures = markdown_table(["failure token", "count"],
                              [(f["token"], f["count"]) for f in analysis.get("failure_tokens", [])])
    return dg.MaterializeResult(metadata={
        **table_metadata(len(runs), OUTCOME_COLUMNS),
        "success_rate": dg.MetadataValue.float(float(overall["success_rate"] or 0.0)),
        "successes": overall["successes"], "failures": overall["failures"], "unfinished": overall["unfinished"],
        "by_mode": dg.MetadataValue.md(modes), "failure_tokens": dg.MetadataValue.md(failures),
        "success_by_cluster": dg.MetadataValue.md(bar_chart_markdown(
            "Success rate by cluster", [c for c, _ in by_cluster],
            [v["success_rate"] or 0.0 for _, v in by_cluster], max_value=1.0, fmt="{:.2f}"))})
