"""Jobs, schedules and sensors: how mining runs get started.

``new_events_sensor`` reads only the capture store's ``MAX(seq)`` (never DuckDB: only runs open the warehouse)
and requests ``mine_skills_job`` once at least ``SKILLMINE_SENSOR_MIN_NEW_EVENTS`` (default 1) events arrived
since its cursor; the run recomputes its own range from the warehouse HWM, so a dropped request is healed by the
next run. The hourly schedule is the backstop. Both start STOPPED, like every Dagster sensor; turn them on in
the UI (Automation) or with ``dagster sensor start``.
"""

import dagster as dg

from capture.core import config
from skill_pipeline.defs.common import WAREHOUSE_TAG
from skill_pipeline.resources import EventStoreResource

mine_skills_job = dg.define_asset_job(
    name="mine_skills_job",
    # replays: verify_skills_job; mining by mode: its own jobs (defs/by_mode.py)
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("skill_replays") - dg.AssetSelection.groups("by_mode"),
    tags=WAREHOUSE_TAG,
    description="Extract new events into DuckDB, mine sequences, clusters, patterns and templates, and publish a "
                "library release.",
)

mine_skills_schedule = dg.ScheduleDefinition(
    name="mine_skills_schedule",
    job=mine_skills_job,
    cron_schedule=config.env("MINING_CRON", "0 * * * *"),
    description="Backstop: mine every hour even if the sensor is off (cron from SKILLMINE_MINING_CRON).",
)


def min_new_events() -> int:
    """The sensor's threshold: new events needed before a run is requested."""
    raw = config.env("SENSOR_MIN_NEW_EVENTS", "1")
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"SKILLMINE_SENSOR_MIN_NEW_EVENTS={raw!r} is not an integer") from None
    return max(value, 1)


@dg.sensor(job=mine_skills_job, minimum_interval_seconds=60,
           description="Requests mine_skills_job when the capture store's MAX(seq) grew by at least "
                       "SKILLMINE_SENSOR_MIN_NEW_EVENTS since the cursor.")
def new_events_sensor(context: dg.SensorEvaluationContext, event_store: EventStoreResource):
    seen = int(context.cursor or 0)
    top = event_store.max_seq()
    needed = min_new_events()
    if top - seen < needed:
        return dg.SkipReason(f"{max(top - seen, 0)} new events since seq {seen} (max seq {top}); "
                             f"waiting for {needed}")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"events-upto-{top}", tags=WAREHOUSE_TAG)],
                           cursor=str(top))
