"""The whole mining job, in-process, on a simulated CMBAgent workload: store -> DuckDB -> templates -> release."""

from pathlib import Path

import dagster as dg
import duckdb

from capture.store.capture_store import CaptureStore
from skill_library import open_library
from skill_library.verify import verify
from skill_pipeline.mine import materialisations
from workloads.simulate import simulate

from .conftest import open_store
from .helpers import checks, run_job, run_job_on

RUNS = 60


def test_job_mines_a_simulated_workload_and_a_rerun_changes_nothing(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    summary = simulate(runs=RUNS, seed=11, url=url, ground_truth=tmp_path / "truth.jsonl")
    store: CaptureStore = open_store(url)
    try:
        with dg.instance_for_test() as instance:
            first = run_job(store, tmp_path, instance)
            assert first.success
            meta = materialisations(first)
            assert set(checks(first).values()) == {True}
            assert len(meta) == 11  # 4 extracted tables, 5 mining assets, the release, run conformance
            for key, values in meta.items():
                assert "dagster/row_count" in values, key
                assert "dagster/column_schema" in values, key
            events = meta["raw_agent_events"]
            assert events["dagster/row_count"] == summary.events == store.max_seq()
            assert (events["hwm"], events["rows_inserted"]) == (store.max_seq(), summary.events)
            assert meta["raw_workflow_runs"]["dagster/row_count"] == RUNS
            assert meta["event_sequences"]["dagster/row_count"] == RUNS
            assert "data:image/png;base64," in meta["sequence_clusters"]["cluster_sizes"]
            assert "data:image/png;base64," in meta["skill_templates"]["success_rates"]
            assert meta["sequence_clusters"]["coverage"] == 1.0
            release = meta["skill_library_release"]
            assert release["release"] == 1 and release["created"] is True
            published = release["skills_new"]
            assert published == meta["skill_templates"]["publishable"] >= 2

            second = run_job(store, tmp_path, instance)
            again = materialisations(second)
            assert again["raw_agent_events"]["rows_inserted"] == 0
            assert again["raw_agent_events"]["dagster/row_count"] == summary.events
            assert again["event_sequences"]["rows_inserted"] == 0
            assert (again["sequence_clusters"]["clustering"], again["sequence_clusters"]["runs_assigned"]) == (
                "incremental", 0)
            assert again["skill_templates"]["slot_inference_reused"] == again["skill_templates"]["dagster/row_count"]
            assert again["skill_library_release"]["release"] == 1
            assert again["skill_library_release"]["created"] is False
            assert again["skill_library_release"]["skills_unchanged"] == published
    finally:
        store.close()
    library = open_library(tmp_path / "library")
    assert library.release == 1 and len(library.skills()) == published
    assert verify(tmp_path / "library").ok
    skill = library.get(max(library.skills(), key=lambda s: s["support"])["name"])
    assert skill["statistics"]["support"] >= 5 and skill["provenance"]["source_watermark"] == summary.events
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT count(*), count(DISTINCT seq) FROM events").fetchone() == (summary.events,
                                                                                              summary.events)
    finally:
        con.close()


def test_min_support_threshold_keeps_rare_templates_out(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    simulate(runs=40, seed=3, url=url, ground_truth=tmp_path / "truth.jsonl")
    result = run_job_on(url, tmp_path, min_support=1000)
    meta = materialisations(result)
    assert result.success
    assert meta["skill_templates"]["publishable"] == 0
    assert meta["skill_templates"]["below_support"] == meta["skill_templates"]["dagster/row_count"]
    assert meta["skill_library_release"]["release"] == 0
    assert checks(result)["release_verifies"] is True


def test_few_new_runs_are_assigned_to_existing_clusters(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    simulate(runs=40, seed=21, url=url, ground_truth=tmp_path / "truth.jsonl")
    store = open_store(url)
    try:
        with dg.instance_for_test() as instance:
            first = materialisations(run_job(store, tmp_path, instance))
            simulate(runs=1, seed=22, url=url, ground_truth=tmp_path / "more.jsonl")
            second = materialisations(run_job(store, tmp_path, instance))
    finally:
        store.close()
    assert first["sequence_clusters"]["clustering"] == "full"
    assert (second["sequence_clusters"]["clustering"], second["sequence_clusters"]["runs_assigned"]) == (
        "incremental", 1)
    assert second["sequence_clusters"]["dagster/row_count"] == 41
    assert second["sequence_clusters"]["n_clusters"] == first["sequence_clusters"]["n_clusters"]
    assert second["event_sequences"]["rows_inserted"] == 1
    assert (second["event_sequences"]["dagster/row_count"], second["event_sequences"]["runs_kept"]) == (41, 40)
    assert second["event_sequences"]["node_sequences"] > first["event_sequences"]["node_sequences"]
    assert second["event_sequences"]["vocabulary_size"] >= first["event_sequences"]["vocabulary_size"] > 0
