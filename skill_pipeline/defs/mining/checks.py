"""Checks on the mining hand-offs: clustering quality, and templates that the library schema accepts."""

import json

import dagster as dg

from skill_pipeline.lib import candidates
from skill_pipeline.resources import MiningSettings, WarehouseResource


@dg.asset_check(asset="event_sequences", blocking=False,
                description="Every extracted run has a token sequence row.")
def every_run_has_a_sequence(warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        missing = con.execute("SELECT count(DISTINCT e.run_id) FROM events e ANTI JOIN run_sequences s "
                              "ON s.run_id = e.run_id").fetchone()[0]
    return dg.AssetCheckResult(passed=missing == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"runs_without_sequence": int(missing)})


@dg.asset_check(asset="sequence_clusters", blocking=True,
                description="Skill groups are cohesive: the mean normalised edit distance of runs to their group's "
                            "behaviour medoid is at most the configured maximum. Silhouette is reported too; groups "
                            "that share a behaviour but differ in task family make it low by design.")
def clustering_quality(warehouse_db: WarehouseResource, mining_settings: MiningSettings) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        silhouette, n_clusters, runs, coverage, distance = con.execute(
            "SELECT silhouette, n_clusters, runs, coverage, mean_distance_to_medoid FROM clustering_quality"
        ).fetchone()
    maximum = mining_settings.medoid_distance()
    return dg.AssetCheckResult(passed=distance <= maximum, metadata={
        "mean_distance_to_medoid": float(distance), "max_medoid_distance": maximum,
        "silhouette": float(silhouette if silhouette is not None else 0.0), "n_clusters": n_clusters,
        "runs": runs, "coverage": float(coverage)})


@dg.asset_check(asset="skill_templates", blocking=True,
                description="Every publishable template validates against the skill library's JSON schema.")
def templates_match_library_schema(warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        rows = con.execute("SELECT name, candidate FROM skill_templates WHERE publishable").fetchall()
    problems = {name: candidates.library_errors(json.loads(doc)) for name, doc in rows}
    bad = {name: errs for name, errs in problems.items() if errs}
    return dg.AssetCheckResult(passed=not bad, metadata={
        "templates_checked": len(rows), "invalid": len(bad),
        "errors": "\n".join(f"{n}: {'; '.join(e[:3])}" for n, e in sorted(bad.items())[:10])})
