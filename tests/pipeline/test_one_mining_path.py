"""Production, tests and benchmarks mine with one code path: the Dagster job and a direct call publish the same
bytes for the same store."""

from pathlib import Path

from skill_pipeline.lib.mining_steps import mine_store, skill_membership
from skill_pipeline.mine import materialisations
from skill_pipeline.resources import MiningSettings
from workloads.simulate import simulate

from .helpers import run_job_on


def _skill_files(library: Path) -> dict[str, bytes]:
    """Every published skill document, by path inside the library."""
    return {str(p.relative_to(library)): p.read_bytes() for p in sorted(library.rglob("*.json"))
            if "skills" in p.relative_to(library).parts}


def test_dagster_materialisation_and_direct_call_publish_identical_skills(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    simulate(runs=80, seed=5, url=url, ground_truth=tmp_path / "truth.jsonl")
    result = run_job_on(url, tmp_path / "job")
    assert result.success
    published = materialisations(result)["skill_library_release"]["skills_new"]
    assert published >= 4

    direct = tmp_path / "direct"
    mined, release = mine_store(url, direct / "warehouse.duckdb", MiningSettings().params(),
                                library=direct / "library", pipeline_run_id=result.run_id)
    assert release is not None and release.release == 1
    assert sum(t.publishable for t in mined.templates) == published

    job_files, direct_files = _skill_files(tmp_path / "job" / "library"), _skill_files(direct / "library")
    assert len(job_files) == published
    assert job_files == direct_files
    assert skill_membership(tmp_path / "job" / "warehouse.duckdb") == skill_membership(direct / "warehouse.duckdb")
