"""Running the real mining job in-process and reading what it reported."""

from pathlib import Path

import dagster as dg

from capture.store.capture_store import CaptureStore
from skill_pipeline.definitions import defs

from .conftest import open_store, pipeline_resources


def run_job(store: CaptureStore, tmp_path: Path, instance: dg.DagsterInstance,
            **settings: object) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("mine_skills_job")
    return job.execute_in_process(resources=pipeline_resources(store, tmp_path, **settings), instance=instance)


def run_job_on(url: str, tmp_path: Path, **settings: object) -> dg.ExecuteInProcessResult:
    """Run the job once on the store at ``url`` in a throw-away Dagster instance."""
    store = open_store(url)
    try:
        with dg.instance_for_test() as instance:
            return run_job(store, tmp_path, instance, **settings)
    finally:
        store.close()


def checks(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    """Check name -> passed."""
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
