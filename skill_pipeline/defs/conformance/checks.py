"""Drift: the share of successful runs that fit no skill must not jump between two materialisations."""

import dagster as dg

from skill_pipeline.defs.conformance.settings import ConformanceSettings
from skill_pipeline.resources import WarehouseResource
from skill_pipeline.verification.runs import drift


@dg.asset_check(asset="run_conformance", blocking=False,
                description="Fails when the share of successful runs fitting no skill (fitness below "
                            "SKILLMINE_CONFORMANCE_MIN_FITNESS) rose by more than SKILLMINE_CONFORMANCE_MAX_DRIFT "
                            "against the previous materialisation with successful runs: the agents changed "
                            "behaviour, or the library lost a skill they follow.")
def conformance_drift(warehouse_db: WarehouseResource,
                      conformance_settings: ConformanceSettings) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        latest, previous = drift(con)
    limit = conformance_settings.drift_threshold()
    now = float(latest["unfit_share"]) if latest else 0.0
    before = float(previous["unfit_share"]) if previous else now
    rise = now - before
    return dg.AssetCheckResult(
        passed=rise <= limit,
        description=(f"unfit share of successful runs {now:.3f} (previous {before:.3f}, rise {rise:+.3f}, "
                     f"allowed {limit}, setting SKILLMINE_CONFORMANCE_MAX_DRIFT)"),
        metadata={"unfit_share": now, "previous_unfit_share": before, "rise": rise, "threshold": limit,
                  "compared": previous is not None,
                  "setting": "SKILLMINE_CONFORMANCE_MAX_DRIFT (ConformanceSettings.max_drift)"})
