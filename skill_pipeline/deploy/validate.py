"""Validate the production deployment files with Dagster's own config schemas, without a cluster or database.

``dagster_instance_config`` checks the instance file's layout; each configurable class it names (storage, run
coordinator, run launcher) is then resolved and its ``config`` checked against the class's ``config_type``
without constructing it (``K8sRunLauncher`` would read a kubeconfig). The workspace file is checked with the
workspace schema and the k8s executor's run config with ``k8s_job_executor``'s schema.

Run ``python -m skill_pipeline.deploy.validate [DIRECTORY]``; it prints one line per file and exits 1 on errors.
"""

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dagster._check import CheckError
from dagster._config import validate_config
from dagster._core.errors import DagsterInvalidConfigError
from dagster._core.instance.config import dagster_instance_config
from dagster._core.workspace.config_schema import process_workspace_config
from dagster._serdes.config_class import class_from_code_pointer

PRODUCTION = Path(__file__).resolve().parent / "production"
STORAGE_CLASSES = {"postgres": ("dagster_postgres", "DagsterPostgresStorage")}


def _errors(result: Any) -> list[str]:
    return [] if result.success else [error.message for error in result.errors]


def _class_errors(section: str, module: str, name: str, config: Mapping[str, Any]) -> list[str]:
    """Errors of ``config`` against the ``config_type`` of class ``module.name``, prefixed by ``section``."""
    try:
        cls = class_from_code_pointer(module, name)
    except CheckError as exc:
        return [f"{section}: {exc}"]
    return [f"{section}: {message}" for message in _errors(validate_config(cls.config_type(), config))]


def validate_instance(directory: Path) -> list[str]:
    """Errors of ``directory/dagster.yaml`` (empty when valid)."""
    try:
        config, _ = dagster_instance_config(str(directory))
    except DagsterInvalidConfigError as exc:
        return [str(exc)]
    errors = []
    for kind, value in (config.get("storage") or {}).items():
        if kind in STORAGE_CLASSES:
            errors += _class_errors(f"storage.{kind}", *STORAGE_CLASSES[kind], value)
    for section in ("run_coordinator", "run_launcher"):
        if config.get(section):
            pointer = config[section]
            errors += _class_errors(section, pointer["module"], pointer["class"], pointer.get("config") or {})
    return errors


def validate_workspace(path: Path) -> list[str]:
    """Errors of a workspace file (empty when valid)."""
    return _errors(process_workspace_config(yaml.safe_load(path.read_text(encoding="utf-8"))))


def validate_k8s_executor(path: Path) -> list[str]:
    """Errors of the run config's ``execution.config`` against ``k8s_job_executor`` (empty when valid)."""
    from dagster_k8s import k8s_job_executor

    run_config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config = (run_config.get("execution") or {}).get("config") or {}
    return _errors(validate_config(k8s_job_executor.config_schema.config_type, config))


def validate_directory(directory: Path = PRODUCTION) -> dict[str, list[str]]:
    """File name -> errors for the instance, workspace and k8s executor files in ``directory``."""
    return {"dagster.yaml": validate_instance(directory),
            "workspace.yaml": validate_workspace(directory / "workspace.yaml"),
            "k8s_executor.yaml": validate_k8s_executor(directory / "k8s_executor.yaml")}


def main(argv: list[str] | None = None) -> int:
    """Print each file's verdict; 0 when all are valid."""
    args = sys.argv[1:] if argv is None else argv
    results = validate_directory(Path(args[0]) if args else PRODUCTION)
    for name, errors in results.items():
        print(f"{name}: {'valid' if not errors else 'INVALID'}")
        for message in errors:
            print(f"  {message}")
    return 0 if not any(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
