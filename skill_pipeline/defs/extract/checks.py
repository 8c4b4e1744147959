"""Checks on the extraction hand-off: the warehouse reconciles with the source and has no orphan events."""

import dagster as dg

from skill_pipeline.lib import extraction
from skill_pipeline.resources import EventStoreResource, WarehouseResource


@dg.asset_check(asset="raw_agent_events", blocking=True,
                description="Source events with seq <= HWM equal the warehouse's event count (nothing skipped, "
                            "nothing duplicated).")
def events_reconcile_with_source(event_store: EventStoreResource,
                                 warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        hwm, loaded = con.execute("SELECT coalesce(max(seq), 0), count(*) FROM events").fetchone()
    with event_store.engine() as engine:
        expected = extraction.source_count_upto(engine, int(hwm))
    return dg.AssetCheckResult(
        passed=int(loaded) == expected,
        metadata={"hwm": int(hwm), "warehouse_events": int(loaded), "source_events_upto_hwm": expected,
                  "difference": expected - int(loaded)})


@dg.asset_check(asset="raw_agent_events", blocking=False,
                description="Every parent_event_id of an event the latest extraction read is itself in the warehouse "
                            "(earlier hand-offs were checked when they were extracted).")
def events_have_no_orphans(warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        start = extraction.last_range_start(con)
        orphans, sample = con.execute(
            "WITH fresh AS (SELECT seq, id, parent_event_id FROM events "
            "               WHERE seq > ? AND parent_event_id IS NOT NULL), "
            "     found AS (SELECT DISTINCT p.id FROM events p SEMI JOIN fresh f ON p.id = f.parent_event_id) "
            "SELECT count(*), list(f.id ORDER BY f.seq)[1:5] FROM fresh f ANTI JOIN found ON f.parent_event_id = found.id",
            [start]).fetchone()
    return dg.AssetCheckResult(passed=int(orphans) == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"orphan_events": int(orphans), "checked_after_seq": start,
                                         "sample": ", ".join(sample or [])})
