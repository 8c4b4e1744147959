"""The production deployment files (PostgreSQL instance, queued run coordinator, k8s run launcher and executor,
gRPC code location) pass Dagster's own config schemas without a cluster, and a wrong key in any of them fails."""

import shutil
from pathlib import Path

import pytest

from skill_pipeline.deploy import validate


def test_production_files_are_valid(capsys: pytest.CaptureFixture):
    assert validate.main([]) == 0
    assert capsys.readouterr().out.splitlines() == ["dagster.yaml: valid", "workspace.yaml: valid",
                                                    "k8s_executor.yaml: valid"]


@pytest.mark.parametrize(("name", "old", "new", "message"), [
    ("dagster.yaml", "service_account_name: skillmine", "service_acount_name: skillmine", "service_acount_name"),
    ("dagster.yaml", "class: K8sRunLauncher", "class: K8sLauncher", "K8sLauncher"),
    ("dagster.yaml", "max_concurrent_runs: 8", "max_concurrent_runs: eight", "max_concurrent_runs"),
    ("workspace.yaml", "port: 4000", "prot: 4000", "prot"),
    ("k8s_executor.yaml", "max_concurrent: 4", "max_concurrent: four", "max_concurrent"),
])
def test_a_wrong_key_or_value_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture, name: str, old: str,
                                          new: str, message: str):
    shutil.copytree(validate.PRODUCTION, tmp_path, dirs_exist_ok=True)
    path = tmp_path / name
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1
    path.write_text(text.replace(old, new), encoding="utf-8")
    assert validate.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"{name}: INVALID" in out and message in out
