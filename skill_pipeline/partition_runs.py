"""Launching one mode partition of ``mine_mode_job`` from Python (tests, benchmarks, scripts), outside the code
location: it needs the assembled ``Definitions``, which import ``defs.by_mode``, so it lives apart from both."""

import dagster as dg

from skill_pipeline.defs.by_mode import mine_mode_job


def resolved_mine_mode_job() -> dg.JobDefinition:
    """``mine_mode_job`` with the code location's resources: what ``dg.reconstructable`` re-creates in each step
    process when a partition is launched from Python (``dg.execute_job``) rather than by the daemon."""
    from skill_pipeline.definitions import defs

    return defs.resolve_job_def(mine_mode_job.name)


def run_partition(key: str) -> str:
    """Mine partition ``key`` now against the instance of ``DAGSTER_HOME``; returns the run id. Parallel partitions
    need one process each (concurrent runs in threads of one process deadlock in Dagster's logging)."""
    with dg.DagsterInstance.get() as instance:
        result = dg.execute_job(dg.reconstructable(resolved_mine_mode_job), instance,
                                tags={"dagster/partition": key})
        if not result.success:
            raise RuntimeError(f"mining mode partition {key!r} failed (run {result.run_id})")
        return result.run_id
