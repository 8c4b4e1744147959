"""The code location loads with every asset, check, job, schedule, sensor and resource, configured as intended."""

from pathlib import Path

import dagster as dg

from skill_pipeline.definitions import defs

ASSETS = {"raw_agent_events", "raw_workflow_runs", "raw_dag_nodes", "raw_files", "event_sequences",
          "sequence_clusters", "skill_patterns", "skill_templates", "run_outcomes", "skill_library_release",
          "run_conformance", "skill_replays", "mode_skill_templates", "mode_skill_library_release"}
CHECKS = {"events_reconcile_with_source", "events_have_no_orphans", "every_run_has_a_sequence",
          "clustering_quality", "templates_match_library_schema", "release_verifies", "conformance_drift"}


def test_every_definition_is_present():
    repo = defs.get_repository_def()
    assert {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()} == ASSETS
    assert {c.name for c in repo.asset_graph.asset_check_keys} == CHECKS
    assert {j.name for j in repo.get_all_jobs() if not j.name.startswith("__")} == {
        "mine_skills_job", "verify_skills_job", "mine_mode_job", "publish_by_mode_job"}
    assert [s.name for s in repo.schedule_defs] == ["mine_skills_schedule"]
    assert [s.name for s in repo.sensor_defs] == ["new_events_sensor", "new_modes_sensor"]
    assert set(defs.resources) == {"event_store", "warehouse_db", "skill_library", "mining_settings",
                                   "conformance_settings", "replays"}


def test_groups_kinds_owners_and_job_settings():
    repo = defs.get_repository_def()
    groups = {k.to_user_string(): repo.asset_graph.get(k).group_name for k in repo.asset_graph.get_all_asset_keys()}
    assert {a for a, g in groups.items() if g == "extract"} == {"raw_agent_events", "raw_workflow_runs",
                                                                "raw_dag_nodes", "raw_files"}
    assert groups["skill_library_release"] == "library"
    for key in repo.asset_graph.get_all_asset_keys():
        node = repo.asset_graph.get(key)
        assert node.kinds and node.owners == ["team:skillmine"] and node.description, key
    job = defs.resolve_job_def("mine_skills_job")
    assert job.tags["skills/warehouse"] == "duckdb-writer"
    assert job.executor_def is dg.in_process_executor
    blocking = {c.name for c in repo.asset_graph.asset_check_keys
                if repo.asset_graph.get_check_spec(c).blocking}
    assert blocking == {"events_reconcile_with_source", "templates_match_library_schema"}


def test_dagster_modules_do_not_postpone_annotations():
    """``from __future__ import annotations`` breaks Dagster config resolution (dagster.md §10)."""
    root = Path(__file__).resolve().parents[2] / "skill_pipeline"
    offenders = [p for p in root.rglob("*.py") if "mining" not in p.parts
                 and "from __future__ import annotations" in p.read_text()]
    assert offenders == []
