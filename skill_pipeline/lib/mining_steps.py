"""The mining steps on the DuckDB warehouse: read what a step needs, call ``mining.compose``, write its table.

Each Dagster mining asset is one of these functions plus its metadata; :func:`mine_store` runs the same steps on a
capture store without Dagster (benchmarks, tests), so production, tests and benchmarks mine with one code path.
Every query of the derived tables lives here; their layouts live in ``warehouse``.
"""

import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist
from sklearn.metrics import silhouette_score

from capture.core.vocabulary import EVENT_TYPES
from capture.store.db import make_engine
from skill_library.publish import PublishResult, publish
from skill_pipeline.lib import candidates, extraction, loaders, pattern_json, step_lists, warehouse
from skill_pipeline.lib.warehouse import (
    CLUSTER_COLUMNS,
    NODE_SEQUENCE_COLUMNS,
    OUTCOME_COLUMNS,
    PATTERN_COLUMNS,
    QUALITY_COLUMNS,
    RUN_CLUSTER_COLUMNS,
    RUN_SEQUENCE_COLUMNS,
    TEMPLATE_COLUMNS,
    has_layout,
    sql_list,
)
from skill_pipeline.mining import compose
from skill_pipeline.mining.clustering import encode, normalized_distance, reduce_sequence
from skill_pipeline.mining.outcomes import analyse_outcomes
from skill_pipeline.mining.patterns import describe_pattern
from skill_pipeline.mining.skill_groups import SkillGroup, assign_to_groups
from skill_pipeline.mining.tokens import token_events
from skill_pipeline.mining.vocabulary import OPEN_RUN_STATUSES

Connection = duckdb.DuckDBPyConnection


# --- token sequences -----------------------------------------------------------------------------------------

def dirty_counts(con: Connection) -> dict[str, int]:
    """Dirty-data totals, summed from the per-run counts kept in ``run_sequences`` (each run's events are
    counted once, when they are tokenised), plus the runs still open."""
    return dict(zip(
        ("unknown_event_types", "events_without_node", "unknown_or_system_agents", "runs_with_order_gaps",
         "runs_stuck_open"),
        (int(v or 0) for v in con.execute(f"""
            SELECT sum(unknown_types), sum(events_without_node), sum(unknown_agents), count(*) FILTER (order_gaps),
                   (SELECT count(*) FROM runs WHERE status IN {sql_list(OPEN_RUN_STATUSES)})
            FROM run_sequences""").fetchone()), strict=True))


def _tokenised_rows(con: Connection, granularity: str) -> tuple[list[tuple], list[tuple]]:
    """run_sequences and node_sequences rows of the runs in ``wanted_runs`` (``step_lists.stage_steps`` ran):
    each distinct step list is tokenised once; run rows carry the run's dirty-data counts."""
    tokens_of: dict[bool, dict[tuple[str, str | None], list[str]]] = {False: {}, True: {}}
    for per_node, found in tokens_of.items():
        for events, owners in step_lists.distinct_step_lists(con, per_node=per_node):
            tokens = [t for t, _ in token_events(events, granularity)]
            found.update((owner, tokens) for owner in owners)
    run_rows = [(run_id, last_seq, first_seq, n_events, len(tokens), json.dumps(tokens), *dirty)
                for run_id, last_seq, first_seq, n_events, *dirty in con.execute(f"""
                    SELECT e.run_id, max(e.seq), min(e.seq), count(*),
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


def _new_events_floor(con: Connection) -> int:
    """A seq below every event extracted since the runs were last tokenised. ``W``, the highest seq tokenised, was
    the warehouse's HWM then; every later extraction started from a HWM >= ``W`` and inserted only events above
    its range start, so the lowest range start of those extractions bounds them (``W`` when there was none)."""
    tokenised = int(con.execute("SELECT coalesce(max(last_seq), 0) FROM run_sequences").fetchone()[0])
    since = con.execute("SELECT min(start_after) FROM extractions WHERE previous_hwm >= ?", [tokenised]).fetchone()[0]
    return min(tokenised, int(since)) if since is not None else tokenised


def _stale_runs(con: Connection, has_previous: bool) -> list[str]:
    """Runs whose events changed since they were tokenised: runs with an event above :func:`_new_events_floor`
    (only those can have changed) whose last seq is not the one tokenised. Every run when nothing was."""
    if not has_previous:
        return [r[0] for r in con.execute("SELECT DISTINCT run_id FROM events").fetchall()]
    return [r[0] for r in con.execute(
        "SELECT e.run_id FROM events e LEFT JOIN run_sequences s ON s.run_id = e.run_id WHERE e.seq > ? "
        "GROUP BY e.run_id, s.last_seq HAVING s.last_seq IS NULL OR max(e.seq) <> s.last_seq",
        [_new_events_floor(con)]).fetchall()]


def tokenise(con: Connection, scratch: Path, granularity: str) -> dict[str, Any]:
    """Rebuild ``run_sequences`` / ``node_sequences`` rows of the runs with new events; returns counts."""
    has_previous = has_layout(con, "run_sequences", RUN_SEQUENCE_COLUMNS)
    stale = _stale_runs(con, has_previous)
    step_lists.stage_steps(con, stale, granularity)  # also stages the stale ids as wanted_runs
    run_rows, node_rows = _tokenised_rows(con, granularity)
    if has_previous:  # only the stale runs' rows change
        for table in ("run_sequences", "node_sequences"):
            con.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT id FROM wanted_runs)")
        warehouse.insert_rows(con, "run_sequences", RUN_SEQUENCE_COLUMNS, run_rows, scratch)
        warehouse.insert_rows(con, "node_sequences", NODE_SEQUENCE_COLUMNS, node_rows, scratch)
    else:
        warehouse.replace_table(con, "run_sequences", RUN_SEQUENCE_COLUMNS, run_rows, scratch)
        warehouse.replace_table(con, "node_sequences", NODE_SEQUENCE_COLUMNS, node_rows, scratch)
    top = con.execute("SELECT tokens, count(*) AS runs FROM run_sequences GROUP BY 1 ORDER BY 2 DESC, 1 "
                      "LIMIT 5").fetchall()
    total, empty, nodes, vocabulary = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE n_tokens = 0), (SELECT count(*) FROM node_sequences), "
        "(SELECT count(DISTINCT t) FROM (SELECT unnest(json_extract_string(tokens, '$[*]')) AS t "
        "FROM (SELECT DISTINCT tokens FROM run_sequences))) FROM run_sequences").fetchone()
    return {"runs": int(total), "retokenised": len(stale), "empty": int(empty), "node_sequences": int(nodes),
            "vocabulary": int(vocabulary), "dirty": dirty_counts(con),
            "top": [(json.loads(t), int(n)) for t, n in top]}


# --- inputs of the pure steps --------------------------------------------------------------------------------

def sequences(con: Connection, run_ids: Iterable[str] | None = None) -> tuple[list[str], list[list[str]], list[int]]:
    """Run ids (sorted), their token lists and last seqs, from ``run_sequences`` (every run, or ``run_ids``).
    Each distinct token text leaves DuckDB and is parsed once, runs refer to it by number (runs of a skill share a
    sequence: 100,000 runs hold a few hundred, against hundreds of megabytes of text row by row); runs with the
    same text share one list, which the mining functions only read."""
    source = "run_sequences"
    if run_ids is not None:
        loaders.stage_run_ids(con, run_ids)
        source = "(SELECT s.* FROM run_sequences s JOIN wanted_runs w ON s.run_id = w.id)"
    con.execute("CREATE OR REPLACE TEMP TABLE distinct_tokens AS SELECT tokens, row_number() OVER () - 1 AS k "
                f"FROM (SELECT DISTINCT tokens FROM {source})")
    parsed = [json.loads(t) for (t,) in con.execute("SELECT tokens FROM distinct_tokens ORDER BY k").fetchall()]
    rows = con.execute(f"SELECT s.run_id, d.k, s.last_seq FROM {source} s JOIN distinct_tokens d "
                       "ON d.tokens = s.tokens ORDER BY s.run_id").fetchall()
    return [r[0] for r in rows], [parsed[r[1]] for r in rows], [r[2] for r in rows]


def first_seqs(con: Connection) -> dict[str, int]:
    """Each run's first event seq (the slot-inference sample takes the oldest members), kept by :func:`tokenise`."""
    return dict(con.execute("SELECT run_id, first_seq FROM run_sequences").fetchall())


def sample_loader(con: Connection, granularity: str) -> compose.SampleLoader:
    """Reads the slot-inference sample's events (with tool-call payloads) and files from the warehouse."""
    def load(run_ids: list[str]) -> tuple[compose.Events, list[dict[str, Any]]]:
        events = dict(loaders.events_by_run(con, run_ids, payloads=True,
                                            skip_types=step_lists.dropped_types(granularity)))
        return events, loaders.files(con, run_ids)
    return load


def load_groups(con: Connection) -> list[SkillGroup]:
    """The skill groups stored by :func:`group` (largest first)."""
    return [SkillGroup(**json.loads(g)) for (g,) in con.execute(
        "SELECT group_json FROM clusters ORDER BY size DESC, cluster_id").fetchall()]


# --- skill groups --------------------------------------------------------------------------------------------

def _assign_new_runs(groups: list[SkillGroup], changed: list[str], sequences_of: Mapping[str, list[str]],
                     runs: Mapping[str, dict]) -> tuple[list[SkillGroup], dict[str, float], int]:
    """Existing groups with changed runs moved to the group ``assign_to_groups`` picks (runs of an unseen mode
    stay ungrouped until the next full grouping)."""
    moved = set(changed)
    members = {g.group_id: [r for r in g.run_ids if r not in moved] for g in groups}
    distances, unassigned = {}, 0
    for run_id in changed:
        run = runs.get(run_id, {})
        found = assign_to_groups(groups, sequences_of[run_id], run.get("task_description", ""), run.get("mode"))
        if found is None:
            unassigned += 1
            continue
        members[found[0]].append(run_id)
        distances[run_id] = found[1]
    updated = [dataclasses.replace(g, run_ids=sorted(members[g.group_id])) for g in groups]
    return [g for g in updated if g.run_ids], distances, unassigned


def silhouette(con: Connection, sample: int = 400) -> float | None:
    """Silhouette of the stored grouping on the behaviour edit distance, over a deterministic sample of the
    grouped runs that have tokens (every ``step``-th by run id)."""
    rows = con.execute("""
        WITH labelled AS (
            SELECT c.run_id, c.cluster_id, s.tokens, row_number() OVER (ORDER BY c.run_id, c.cluster_id) - 1 AS i,
                   count(*) OVER () AS n
            FROM run_clusters c JOIN run_sequences s ON s.run_id = c.run_id WHERE s.n_tokens > 0)
        SELECT cluster_id, tokens, (SELECT count(DISTINCT cluster_id) FROM labelled) FROM labelled
        WHERE i % greatest(1, n // ?) = 0 AND i // greatest(1, n // ?) < ? ORDER BY i""",
                       [sample, sample, sample]).fetchall()
    if not rows or rows[0][2] < 2 or len({r[0] for r in rows}) < 2:
        return None
    reduced = [reduce_sequence(json.loads(tokens)) for _, tokens, _ in rows]
    encoded, _ = encode(reduced)
    matrix = cdist(encoded, encoded, scorer=Levenshtein.normalized_distance, dtype=np.float64, workers=1)
    return float(silhouette_score(matrix, [r[0] for r in rows], metric="precomputed"))


def _changed_since_grouped(con: Connection) -> tuple[list[str], int]:
    """Runs whose sequence is not the one last grouped (new, re-tokenised, or left ungrouped), and how many runs
    were grouped (0 when there is no grouping of the current layout)."""
    if not (has_layout(con, "run_clusters", RUN_CLUSTER_COLUMNS) and has_layout(con, "clusters", CLUSTER_COLUMNS)):
        return [r[0] for r in con.execute("SELECT run_id FROM run_sequences ORDER BY run_id").fetchall()], 0
    changed = [r[0] for r in con.execute(
        "SELECT s.run_id FROM run_sequences s LEFT JOIN run_clusters c ON c.run_id = s.run_id "
        "WHERE c.last_seq IS DISTINCT FROM s.last_seq ORDER BY s.run_id").fetchall()]
    return changed, int(con.execute("SELECT count(*) FROM run_clusters").fetchone()[0])


def _write_groups(con: Connection, scratch: Path, groups: Sequence[SkillGroup], distances: Mapping[str, float],
                  rewritten: Sequence[str] | None) -> None:
    """Store the groups, and the ``run_clusters`` rows of the ``rewritten`` runs (all rows when None): a changed
    run's row is deleted, then inserted again if it is grouped."""
    group_of = {r: g.group_id for g in groups for r in g.run_ids}
    wanted = sorted(group_of) if rewritten is None else [r for r in rewritten if r in group_of]
    loaders.stage_run_ids(con, wanted)
    rows = [(r, group_of[r], float(distances.get(r, 0.0)), q) for r, q in con.execute(
        "SELECT s.run_id, s.last_seq FROM run_sequences s JOIN wanted_runs w ON s.run_id = w.id ORDER BY s.run_id"
    ).fetchall()]
    if rewritten is None:
        warehouse.replace_table(con, "run_clusters", RUN_CLUSTER_COLUMNS, rows, scratch)
    else:
        loaders.stage_run_ids(con, rewritten)
        con.execute("DELETE FROM run_clusters WHERE run_id IN (SELECT id FROM wanted_runs)")
        warehouse.insert_rows(con, "run_clusters", RUN_CLUSTER_COLUMNS, rows, scratch)
    warehouse.replace_table(con, "clusters", CLUSTER_COLUMNS,
                            [(g.group_id, g.size, json.dumps(g.medoid), json.dumps(dataclasses.asdict(g)))
                             for g in groups], scratch)


def group(con: Connection, scratch: Path, params: compose.MiningParams, *, full_recluster: bool = False,
          recluster_share: float = 0.05) -> dict[str, Any]:
    """Rebuild ``clusters``, ``run_clusters`` and ``clustering_quality``: a full grouping
    (``compose.build_groups``), or, when changed runs are at most ``recluster_share`` of those grouped before,
    the changed runs assigned to the existing groups; then only the changed runs are read and their rows
    rewritten."""
    changed, previous = _changed_since_grouped(con)
    incremental = bool(previous) and not full_recluster and len(changed) <= recluster_share * previous
    unassigned = 0
    if incremental:
        run_ids, token_lists, _ = sequences(con, changed)
        groups, distances, unassigned = _assign_new_runs(load_groups(con), changed,
                                                         dict(zip(run_ids, token_lists, strict=True)),
                                                         loaders.runs(con, changed))
        _write_groups(con, scratch, groups, distances, changed)
    else:
        run_ids, token_lists, _ = sequences(con)
        sequences_of = dict(zip(run_ids, token_lists, strict=True))
        groups = compose.build_groups(sequences_of, loaders.runs(con), params, loaders.outputs(con))
        distances = {r: normalized_distance(reduce_sequence(sequences_of[r]), g.medoid)
                     for g in groups for r in g.run_ids}
        _write_groups(con, scratch, groups, distances, None)
    total, empty, grouped, cohesion = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE n_tokens = 0), (SELECT count(*) FROM run_clusters), "
        "(SELECT coalesce(avg(distance), 0.0) FROM run_clusters) FROM run_sequences").fetchone()
    sil = silhouette(con)
    coverage = grouped / total if total else 0.0
    warehouse.replace_table(con, "clustering_quality", QUALITY_COLUMNS,
                            [(sil, len(groups), grouped, coverage, cohesion)], scratch)
    return {"groups": groups, "runs": int(total), "grouped": int(grouped), "incremental": incremental,
            "changed": len(changed), "unassigned": unassigned, "silhouette": sil, "coverage": coverage,
            "cohesion": float(cohesion), "empty": int(empty)}


def clustering_quality(con: Connection) -> dict[str, Any]:
    """The figures :func:`group` stored for the clustering check."""
    row = con.execute("SELECT silhouette, n_clusters, runs, coverage, mean_distance_to_medoid "
                      "FROM clustering_quality").fetchone()
    return dict(zip(QUALITY_COLUMNS, row, strict=True))


# --- patterns and templates ----------------------------------------------------------------------------------

def patterns(con: Connection, scratch: Path) -> dict[str, Any]:
    """Rebuild ``patterns`` from the stored groups (``compose.build_patterns``)."""
    run_ids, token_lists, _ = sequences(con)
    built = compose.build_patterns(load_groups(con), dict(zip(run_ids, token_lists, strict=True)),
                                   loaders.runs(con))
    rows = [(gid, p.support, len(p.steps), describe_pattern(p), pattern_json.dumps(p)) for gid, p in built.items()]
    warehouse.replace_table(con, "patterns", PATTERN_COLUMNS, rows, scratch)
    return {"patterns": built, "rows": rows}


def _slot_cache(con: Connection) -> dict[str, tuple[dict[str, Any], dict[str, dict[str, str]]]]:
    if not has_layout(con, "skill_templates", TEMPLATE_COLUMNS):
        return {}
    return {key: (json.loads(doc), json.loads(sampled)) for key, doc, sampled in con.execute(
        "SELECT cache_key, inferred_candidate, sampled_slot_values FROM skill_templates").fetchall()}


def templates(con: Connection, scratch: Path, params: compose.MiningParams) -> list[compose.SkillTemplate]:
    """Rebuild ``skill_templates`` from the stored groups and patterns (``compose.build_templates``), reusing the
    slot inference of templates whose inputs did not change."""
    run_ids, token_lists, last_seqs = sequences(con)
    built = {gid: pattern_json.loads(text)
             for gid, text in con.execute("SELECT cluster_id, pattern FROM patterns").fetchall()}
    result = compose.build_templates(load_groups(con), built, loaders.runs(con),
                                     dict(zip(run_ids, token_lists, strict=True)), first_seqs(con),
                                     dict(zip(run_ids, last_seqs, strict=True)),
                                     sample_loader(con, params.granularity), params, _slot_cache(con))
    warehouse.replace_table(con, "skill_templates", TEMPLATE_COLUMNS, (
        (t.group_id, t.name, t.support, t.success_rate, t.publishable, "; ".join(t.errors),
         json.dumps(t.candidate, sort_keys=True), json.dumps(t.slot_values, sort_keys=True), t.cache_key,
         json.dumps(t.inferred[0], sort_keys=True), json.dumps(t.inferred[1], sort_keys=True)) for t in result),
        scratch)
    return result


def publishable_candidates(con: Connection) -> list[dict[str, Any]]:
    """The stored templates a release publishes (support, then name)."""
    return [json.loads(r[0]) for r in con.execute(
        "SELECT candidate FROM skill_templates WHERE publishable ORDER BY support DESC, name").fetchall()]


def invalid_templates(con: Connection) -> dict[str, list[str]]:
    """Schema errors of the publishable templates, by name (empty when every one validates)."""
    rows = con.execute("SELECT name, candidate FROM skill_templates WHERE publishable").fetchall()
    return {name: errs for name, doc in rows if (errs := candidates.library_errors(json.loads(doc)))}


def watermark(con: Connection) -> int:
    """The highest extracted seq: the library release's source watermark."""
    return int(con.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0])


def skill_membership(warehouse_path: str | Path) -> dict[str, str]:
    """run id -> name of the skill its group became (every grouped run; groups without a template are left out):
    what benchmarks score against their ground truth."""
    with warehouse.connect(warehouse_path, read_only=True) as con:
        return dict(con.execute("SELECT c.run_id, t.name FROM run_clusters c JOIN skill_templates t "
                                "ON t.cluster_id = c.cluster_id ORDER BY c.run_id").fetchall())


# --- outcomes ------------------------------------------------------------------------------------------------

def outcomes(con: Connection, scratch: Path) -> dict[str, Any]:
    """Rebuild ``run_outcomes`` and ``outcome_analysis`` (``outcomes.analyse_outcomes``); returns the analysis."""
    runs = list(loaders.runs(con).values())
    run_ids, token_lists, _ = sequences(con)
    sequences_of = dict(zip(run_ids, token_lists, strict=True))
    cluster_of = dict(con.execute("SELECT run_id, cluster_id FROM run_clusters").fetchall())
    analysis = analyse_outcomes(runs, sequences_of, cluster_of)
    con.execute(f"CREATE OR REPLACE TABLE run_outcomes ({warehouse.column_definitions(OUTCOME_COLUMNS)})")
    con.execute("INSERT INTO run_outcomes SELECT r.id, r.mode, r.status, c.cluster_id FROM runs r "
                "LEFT JOIN run_clusters c ON c.run_id = r.id")
    warehouse.replace_table(con, "outcome_analysis", {"analysis": "VARCHAR"}, [(json.dumps(analysis),)], scratch)
    return {"analysis": analysis, "runs": len(runs)}


# --- the whole path without Dagster --------------------------------------------------------------------------

def mine_warehouse(con: Connection, scratch: Path, params: compose.MiningParams) -> compose.MiningResult:
    """Every mining step in the order the job runs them (a full grouping): tokens, groups, patterns, templates,
    outcomes."""
    tokenise(con, scratch, params.granularity)
    groups = group(con, scratch, params, full_recluster=True)["groups"]
    built = patterns(con, scratch)["patterns"]
    result = compose.MiningResult(groups, built, templates(con, scratch, params))
    outcomes(con, scratch)
    return result


def mine_store(url: str, warehouse_path: str | Path, params: compose.MiningParams | None = None, *,
               library: str | Path | None = None, pipeline_run_id: str | None = None
               ) -> tuple[compose.MiningResult, PublishResult | None]:
    """Extract the capture store at ``url`` into the warehouse, run :func:`mine_warehouse` and, with ``library``,
    publish the publishable templates as the job's library asset does."""
    params = params or compose.MiningParams()
    engine = make_engine(url)
    try:
        extraction.extract(engine, warehouse_path)
    finally:
        engine.dispose()
    with warehouse.connect(warehouse_path) as con, warehouse.scratch_directory(warehouse_path) as scratch:
        built = mine_warehouse(con, scratch, params)
        release = (publish(library, publishable_candidates(con), pipeline_run_id=pipeline_run_id,
                           source_watermark=watermark(con)) if library is not None else None)
    return built, release
