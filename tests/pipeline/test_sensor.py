"""new_events_sensor: requests a run when events arrive (cursor = capture store MAX(seq)), skips otherwise."""

from pathlib import Path

import dagster as dg
import pytest

from capture.store.capture_store import CaptureStore
from skill_pipeline.defs.automation import new_events_sensor
from skill_pipeline.resources import EventStoreResource

from .workload import write_runs


def _tick(store: CaptureStore, instance: dg.DagsterInstance, cursor: str | None):
    resource = EventStoreResource(database_url=store.engine.url.render_as_string(False))
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"event_store": resource}) as context:
        return new_events_sensor(context)


def test_sensor_requests_a_run_only_when_events_arrived(sqlite_store: CaptureStore, tmp_path: Path):
    with dg.instance_for_test() as instance:
        empty = _tick(sqlite_store, instance, None)
        assert isinstance(empty, dg.SkipReason)
        assert "0 new events since seq 0" in empty.skip_message
        write_runs(sqlite_store, 2, seed=1)
        top = sqlite_store.max_seq()
        fired = _tick(sqlite_store, instance, None)
        assert isinstance(fired, dg.SensorResult)
        assert fired.cursor == str(top)
        assert [r.run_key for r in fired.run_requests] == [f"events-upto-{top}"]
        assert fired.run_requests[0].tags["skills/warehouse"] == "duckdb-writer"
        idle = _tick(sqlite_store, instance, str(top))
        assert isinstance(idle, dg.SkipReason) and f"max seq {top}" in idle.skip_message


def test_sensor_threshold_from_the_environment(sqlite_store: CaptureStore, monkeypatch: pytest.MonkeyPatch):
    write_runs(sqlite_store, 1, seed=2)
    top = sqlite_store.max_seq()
    monkeypatch.setenv("SKILLMINE_SENSOR_MIN_NEW_EVENTS", str(top + 1))
    with dg.instance_for_test() as instance:
        assert isinstance(_tick(sqlite_store, instance, "0"), dg.SkipReason)
        monkeypatch.setenv("SKILLMINE_SENSOR_MIN_NEW_EVENTS", str(top))
        result = _tick(sqlite_store, instance, "0")
        assert [r.run_key for r in result.run_requests] == [f"events-upto-{top}"]
        monkeypatch.setenv("SKILLMINE_SENSOR_MIN_NEW_EVENTS", "many")
        with pytest.raises(ValueError, match="SKILLMINE_SENSOR_MIN_NEW_EVENTS='many'"):
            _tick(sqlite_store, instance, "0")
