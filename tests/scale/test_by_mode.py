"""Mining by mode past one machine: the new-modes sensor adds one partition per mode, four partition runs mine at
the same time in separate step processes (multiprocess executor) on a DuckLake warehouse with a PostgreSQL-backed
Dagster instance, and the one release they feed equals the embedded single-file run's on the same store."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import pytest

from skill_pipeline import partition_runs
from skill_pipeline.definitions import defs
from skill_pipeline.defs import by_mode
from skill_pipeline.instance import instance_environment, instance_settings
from skill_pipeline.resources import EventStoreResource
from skillmine.cli import main
from workloads.families import MODES
from workloads.simulate import simulate

from .helpers import released_skills


def _most_at_once(windows: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) windows open at one moment."""
    edges = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    open_now = most = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def _step_window(instance: dg.DagsterInstance, run_id: str) -> tuple[float, float]:
    records = instance.get_records_for_run(run_id).records
    times = {r.event_log_entry.dagster_event.event_type: r.event_log_entry.timestamp for r in records
             if r.event_log_entry.dagster_event is not None}
    return times[dg.DagsterEventType.STEP_START], times[dg.DagsterEventType.STEP_SUCCESS]


@pytest.mark.postgres
def test_four_mode_partitions_in_parallel_publish_the_embedded_release(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    simulate(runs=80, seed=5, url=url, ground_truth=tmp_path / "truth.jsonl")
    monkeypatch.setenv("SKILLMINE_HOME", str(tmp_path / "embedded"))
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "embedded" / "dagster"))
    assert main(["mine", "--quiet", "--url", url]) == 0
    embedded = released_skills(tmp_path / "embedded" / "library")
    assert len(embedded) >= 4

    home = tmp_path / "scaled" / "dagster"
    home.mkdir(parents=True)
    for name, value in {"SKILLMINE_HOME": str(tmp_path / "scaled"), "SKILLMINE_DATABASE_URL": url,
                        "SKILLMINE_WAREHOUSE": "ducklake", "SKILLMINE_DUCKLAKE_CATALOG": pg_url,
                        "SKILLMINE_DUCKLAKE_DATA": str(tmp_path / "lake"), "SKILLMINE_DAGSTER_PG_URL": pg_url}.items():
        monkeypatch.setenv(name, value)
    (home / "dagster.yaml").write_text(instance_settings(), encoding="utf-8")
    for name, value in instance_environment(home).items():
        monkeypatch.setenv(name, value)  # step processes read the instance and resources from the environment
    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        extracted = defs.resolve_job_def("mine_skills_job").execute_in_process(
            instance=instance, op_selection=["extracted_tables"])
        assert extracted.success

        sensed = by_mode.new_modes_sensor(dg.build_sensor_context(
            instance=instance, resources={"event_store": EventStoreResource(database_url=url)}))
        keys = sorted(MODES)
        assert [r.partition_key for r in sensed.run_requests] == keys
        assert sensed.dynamic_partitions_requests[0].partition_keys == keys
        instance.add_dynamic_partitions(by_mode.mode_partitions.name, keys)

        with ProcessPoolExecutor(len(keys), mp_context=multiprocessing.get_context("spawn")) as pool:
            run_ids = list(pool.map(partition_runs.run_partition, keys))
        runs = [instance.get_run_by_id(run_id) for run_id in run_ids]
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS] * len(keys)
        assert [r.tags["dagster/partition"] for r in runs] == keys
        assert _most_at_once([_step_window(instance, run_id) for run_id in run_ids]) >= 2
        assert set(instance.get_materialized_partitions(by_mode.mode_skill_templates.key)) == set(keys)

        released = defs.resolve_job_def("publish_by_mode_job").execute_in_process(instance=instance)
        assert released.success
    assert released_skills(tmp_path / "scaled" / "library") == embedded
