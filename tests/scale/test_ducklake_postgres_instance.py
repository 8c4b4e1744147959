"""``skillmine mine`` past one machine: a DuckLake warehouse (catalog in PostgreSQL, Parquet data in a directory)
and a Dagster instance on PostgreSQL publish the same release as the embedded single-file run on the same store.

One fresh PostgreSQL database holds both the DuckLake catalog (``ducklake_*`` tables) and the Dagster instance's
tables; they share no table name."""

from pathlib import Path

import dagster as dg
import pytest

from skill_pipeline.lib import warehouse, warehouse_backends
from skillmine.cli import main
from workloads.simulate import simulate

from .helpers import released_skills


def _mine(home: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLMINE_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))  # restored afterwards (mine sets it)
    assert main(["mine", "--quiet", "--url", url]) == 0


@pytest.mark.postgres
def test_ducklake_warehouse_and_postgres_instance_publish_the_embedded_release(
        tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    simulate(runs=80, seed=5, url=url, ground_truth=tmp_path / "truth.jsonl")
    _mine(tmp_path / "embedded", url, monkeypatch)
    embedded = released_skills(tmp_path / "embedded" / "library")
    assert len(embedded) >= 4

    lake_data = tmp_path / "lake"
    monkeypatch.setenv("SKILLMINE_WAREHOUSE", "ducklake")
    monkeypatch.setenv("SKILLMINE_DUCKLAKE_CATALOG", pg_url)
    monkeypatch.setenv("SKILLMINE_DUCKLAKE_DATA", str(lake_data))
    monkeypatch.setenv("SKILLMINE_DAGSTER_PG_URL", pg_url)
    _mine(tmp_path / "scaled", url, monkeypatch)

    assert released_skills(tmp_path / "scaled" / "library") == embedded
    assert not (tmp_path / "scaled" / "warehouse.duckdb").exists()
    assert list((lake_data / "data").rglob("*.parquet"))
    with warehouse.connect(lake_data / warehouse_backends.DESCRIPTOR_NAME) as con:
        assert warehouse_backends.is_lake(con)
        assert con.execute("SELECT count(DISTINCT run_id) FROM run_sequences").fetchone()[0] == 80
    with dg.DagsterInstance.from_config(str(tmp_path / "scaled" / "dagster")) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        runs = instance.get_runs()
        assert [r.status for r in runs] == [dg.DagsterRunStatus.SUCCESS]
        assert instance.get_records_for_run(runs[0].run_id).records
