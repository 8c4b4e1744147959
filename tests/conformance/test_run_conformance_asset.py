"""The run_conformance asset in the real mining job: incremental, stored per run, drift check fails on a jump."""
import json
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from capture.store.migrate import upgrade
from skill_library.promotion import replay_records
from skill_pipeline.definitions import defs
from skill_pipeline.defs.conformance.settings import ConformanceSettings, ReplayResource
from skill_pipeline.resources import (
    EventStoreResource,
    MiningSettings,
    SkillLibraryResource,
    WarehouseResource,
)
from workloads.simulate import simulate


def _run(url: str, tmp_path: Path, instance: dg.DagsterInstance, job: str = "mine_skills_job"
         ) -> dg.ExecuteInProcessResult:
    resources = {"event_store": EventStoreResource(database_url=url),
                 "warehouse_db": WarehouseResource(path=str(tmp_path / "warehouse.duckdb")),
                 "skill_library": SkillLibraryResource(path=str(tmp_path / "library")),
                 "mining_settings": MiningSettings(min_support=5), "conformance_settings": ConformanceSettings(),
                 "replays": ReplayResource(store_url=f"sqlite:///{tmp_path / 'replays.db'}",
                                           work_dir=str(tmp_path / "replay-work"), tasks=4)}
    return defs.resolve_job_def(job).execute_in_process(resources=resources, instance=instance)


def _conformance(result: dg.ExecuteInProcessResult) -> tuple[dict, bool]:
    mats = {e.event_specific_data.materialization.asset_key.to_user_string(): e.event_specific_data.materialization
            for e in result.get_asset_materialization_events()}
    metadata = {k: v.value for k, v in mats["run_conformance"].metadata.items()}
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    return metadata, checks["conformance_drift"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_new_runs_are_assessed_once_and_a_jump_of_unfit_runs_fails_the_drift_check(tmp_path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    simulate(runs=60, seed=1, engine="fast", url=url, modes=("one_shot",), families=("plot_function", "fit_model"),
             ground_truth=tmp_path / "a.jsonl")
    with dg.instance_for_test() as instance:
        first = _run(url, tmp_path, instance)
        assert first.success
        metadata, drift_ok = _conformance(first)
        assert metadata["runs_assessed"] == 60 and metadata["skills"] >= 1
        assert metadata["successful_runs"] > 40 and metadata["unfit_share"] <= 0.2
        assert "data:image/png;base64," in metadata["fitness_histogram"] and drift_ok

        # four runs of a new family and mode: fewer than min_support=5, so no skill for them and none fits one
        simulate(runs=4, seed=2, engine="fast", url=url, modes=("planning_and_control",),
                 families=("summarise_papers",), ground_truth=tmp_path / "b.jsonl")
        second = _run(url, tmp_path, instance)
        metadata, drift_ok = _conformance(second)
        assert metadata["runs_assessed"] == 4 and metadata["successful_runs"] >= 1
        assert metadata["unfit_share"] == 1.0 and not drift_ok

        verified = _run(url, tmp_path, instance, "verify_skills_job")
        replays = {k: v.value for k, v in
                   verified.get_asset_materialization_events()[0].event_specific_data.materialization.metadata.items()}
        assert verified.success and replays["replayed"] == 2 == replays["promoted"] + replays["left_candidate"]
        again = _run(url, tmp_path, instance, "verify_skills_job")  # nothing new to replay
        assert again.get_asset_materialization_events()[0].event_specific_data.materialization \
            .metadata["replayed"].value == 0

    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT run_id, skill, fitness, deviations FROM run_conformance").fetchall()
    assert len(rows) == 64 and len({r[0] for r in rows}) == 64
    unfit = [r for r in rows if r[2] < 0.8]
    assert all(json.loads(r[3]) for r in unfit)  # an unfit run names its deviations
    for name in {r[1] for r in rows if r[1]}:
        assert replay_records(tmp_path / "library", name)["1.0.0"]["statistics"]["tried"] == 4
