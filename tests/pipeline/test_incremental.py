"""Incremental mining keeps only what changed and still gives what recomputing everything gives.

A mining run after a few new runs (and a changed open run) re-reads and rewrites only the changed runs' rows
(``test_extraction`` shows that unchanged open runs are not re-read).
Recomputing every derived table from scratch on the same warehouse, with the same skill groups, must give the
same tables: so the skills published incrementally are the skills a full computation publishes.
"""

import shutil
from pathlib import Path

import dagster as dg
import duckdb

from capture.store.capture_store import CaptureStore
from skill_pipeline.lib import mining_steps, warehouse
from skill_pipeline.mine import materialisations
from skill_pipeline.resources import MiningSettings
from workloads.simulate import simulate

from .conftest import open_store
from .helpers import run_job

TABLES = {
    "run_sequences": "SELECT * FROM run_sequences ORDER BY run_id",
    "node_sequences": "SELECT * FROM node_sequences ORDER BY run_id, node_id NULLS FIRST",
    "run_clusters": "SELECT run_id, cluster_id, last_seq FROM run_clusters ORDER BY run_id",
    "patterns": "SELECT * FROM patterns ORDER BY cluster_id",
    "skill_templates": "SELECT cluster_id, name, support, publishable, candidate, slot_values FROM skill_templates "
                       "ORDER BY cluster_id",
    "run_outcomes": "SELECT * FROM run_outcomes ORDER BY run_id",
    "outcome_analysis": "SELECT * FROM outcome_analysis",
}


def _tables(path: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {name: con.execute(sql).fetchall() for name, sql in TABLES.items()}


def _recompute_from_groups(path: Path, scratch: Path) -> None:
    """Every derived table rebuilt from scratch, keeping only the stored skill groups: all runs re-tokenised, every
    run's group row rewritten, templates without the slot-inference cache."""
    params = MiningSettings().params()
    with warehouse.connect(path) as con:
        for table in ("run_sequences", "node_sequences", "skill_templates", "run_outcomes"):
            con.execute(f"DROP TABLE {table}")
        mining_steps.tokenise(con, scratch, params.granularity)
        groups = mining_steps.load_groups(con)
        con.execute("DELETE FROM run_clusters")
        mining_steps._write_groups(con, scratch, groups, {}, None)
        mining_steps.patterns(con, scratch)
        mining_steps.templates(con, scratch, params)
        mining_steps.outcomes(con, scratch)


def test_incremental_run_equals_a_full_recomputation_on_the_same_groups(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    simulate(runs=60, seed=31, url=url, ground_truth=tmp_path / "truth.jsonl")
    store: CaptureStore = open_store(url)
    try:
        with dg.instance_for_test() as instance:
            assert run_job(store, tmp_path, instance).success
            simulate(runs=2, seed=32, url=url, ground_truth=tmp_path / "more.jsonl")
            reopened = store.upsert_run(session_id="tests", status="waiting_approval", mode="one_shot",
                                        task_description="Plot sin(x) over [0, 3]")
            store.create_event(run_id=reopened, session_id="tests", event_type="agent_call", agent_name="engineer")
            second = run_job(store, tmp_path, instance)
            assert second.success
            store.upsert_run(id=reopened, session_id="tests", status="failed")  # changed, no new event
            third = run_job(store, tmp_path, instance)
    finally:
        store.close()
    meta, last = materialisations(second), materialisations(third)
    assert meta["sequence_clusters"]["clustering"] == "incremental"
    assert meta["event_sequences"]["rows_inserted"] == 3  # the new runs only
    assert last["raw_agent_events"]["rows_inserted"] == 0
    warehouse_path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        assert con.execute(f"SELECT status FROM runs WHERE id = '{reopened}'").fetchone() == ("failed",)
        assert con.execute(f"SELECT status FROM run_outcomes WHERE run_id = '{reopened}'").fetchone() == ("failed",)
    copy = tmp_path / "recomputed.duckdb"
    shutil.copy(warehouse_path, copy)
    _recompute_from_groups(copy, tmp_path)
    assert _tables(copy) == _tables(warehouse_path)
