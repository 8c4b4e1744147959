"""Checks on the extraction hand-off: the warehouse reconciles with the source and has no orphan events."""

import dagster as dg

from skill_pipeline.lib import extraction
from skill_pipeline.resources import EventStoreResource, WarehouseResource


@dg.asset_check(asset="raw_agent_events", blocking=True,
                description="The latest hand-off reconciles: the source's events in the range the latest extraction "
                            "read (start < seq <= HWM) equal the warehouse's in that range (nothing skipped, nothing "
                            "duplicated; earlier hand-offs were reconciled when they were extracted).")
def events_reconcile_with_source(event_store: EventStoreResource,
                                 warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        start = extraction.last_range_start(con)
        hwm = extraction.warehouse_hwm(con)
        loaded = int(con.execute("SELECT count(*) FROM events WHERE seq > ? AND seq <= ?", [start, hwm]).fetchone()[0])
    with event_store.engine() as engine:
        expected = extraction.source_count(engine, hwm, after=start)
    return dg.AssetCheckResult(
        passed=loaded == expected,
        metadata={"hwm": hwm, "checked_after_seq": start, "warehouse_events": loaded,
                  "source_events": expected, "difference": expected - loaded})


@dg.asset_check(asset="raw_agent_events", blocking=False,
                description="Every parent_event_id of an event the latest extraction read is itself in the warehouse "
                            "(earlier hand-offs were checked when they were extracted).")
def events_have_no_orphans(warehouse_db: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse_db.connection() as con:
        start = extraction.last_range_start(con)
        orphans, sample = extraction.orphan_events(con, start)
    return dg.AssetCheckResult(passed=orphans == 0, severity=dg.AssetCheckSeverity.WARN,
                               metadata={"orphan_events": orphans, "checked_after_seq": start,
                                         "sample": ", ".join(sample)})
