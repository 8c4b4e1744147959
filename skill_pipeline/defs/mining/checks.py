"""Checks on the mining hand-offs.

Blocking checks stop the job only for a real defect (a template the library schema rejects would make the release
fail). Quality signals that depend on the data (cohesion of groups over few, varied runs) warn: each result's
metadata carries the measured value, the threshold and the setting that changes it.
"""

import dagster as dg

from skill_pipeline.lib import mining_steps
from skill_pipeline.resources import MiningSettings, WarehouseResource


@dg.asset_check(asset="event_sequences", blocking=False,
                description="Every extracted run has a token sequence row (warns: a missing row means a run the "
                            "miner ignores).")
def every_run_has_a_sequence(warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        missing = con.execute("SELECT count(*) FROM runs r ANTI JOIN run_sequences s ON s.run_id = r.id"
                              ).fetchone()[0]  # the extracted runs are exactly the runs of the extracted events
    return dg.AssetCheckResult(passed=missing == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"runs_without_sequence": int(missing), "threshold": 0})


@dg.asset_check(asset="sequence_clusters", blocking=False,
                description="Quality signal (warns, never blocks): the mean normalised edit distance of runs to "
                            "their group's behaviour medoid is at most max_medoid_distance "
                            "(SKILLMINE_MAX_MEDOID_DISTANCE). Few, varied runs (real records) can exceed it without "
                            "any defect; silhouette is reported too.")
def clustering_quality(warehouse_db: WarehouseResource, mining_settings: MiningSettings) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        quality = mining_steps.clustering_quality(con)
    maximum = mining_settings.medoid_distance()
    distance = float(quality["mean_distance_to_medoid"])
    return dg.AssetCheckResult(
        passed=distance <= maximum, severity=dg.AssetCheckSeverity.WARN,
        description=(f"mean distance to medoid {distance:.3f} (threshold {maximum}, setting "
                     "SKILLMINE_MAX_MEDOID_DISTANCE)"),
        metadata={"mean_distance_to_medoid": distance, "threshold": maximum,
                  "setting": "SKILLMINE_MAX_MEDOID_DISTANCE (MiningSettings.max_medoid_distance)",
                  "silhouette": float(quality["silhouette"] or 0.0),
                  "silhouette_defined": quality["silhouette"] is not None, "n_clusters": quality["n_clusters"],
                  "runs": quality["runs"], "coverage": float(quality["coverage"])})


@dg.asset_check(asset="skill_templates", blocking=True,
                description="Defect check (blocks the release): every publishable template validates against the "
                            "skill library's JSON schema; the library would refuse an invalid one.")
def templates_match_library_schema(warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        checked = len(mining_steps.publishable_candidates(con))
        bad = mining_steps.invalid_templates(con)
    return dg.AssetCheckResult(
        passed=not bad, description=f"{len(bad)} of {checked} publishable templates fail the library schema",
        metadata={"templates_checked": checked, "invalid": len(bad), "threshold": 0,
                  "errors": "\n".join(f"{n}: {'; '.join(e[:3])}" for n, e in sorted(bad.items())[:10])})
