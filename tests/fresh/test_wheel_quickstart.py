"""A fresh machine: the built wheel, installed with its dependencies into a new virtual environment and nothing
else, runs ``skillmine quickstart`` from an empty folder against an empty home, and publishes skills.

It builds a wheel and installs every dependency into a new venv (from the pip cache or index: about a minute),
so it runs under CI (``CI=true``, as ``.ci/run`` sets) or with ``SKILLMINE_FRESH_TEST=1``, and skips otherwise.
"""

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.ci_mode import in_ci

ROOT = Path(__file__).resolve().parents[2]
RUNS = 24

pytestmark = [pytest.mark.fresh, pytest.mark.slow, pytest.mark.timeout(900)]


def _wanted() -> bool:
    return (in_ci()
            or os.environ.get("SKILLMINE_FRESH_TEST", "").strip() == "1")


def _clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without anything that points at this checkout or its stores."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SKILLMINE_", "PYTHON", "VIRTUAL_ENV", "DAGSTER_"))}
    return {**env, "SKILLMINE_HOME": str(home), "NO_COLOR": "1"}


def _run(cmd: list[str | Path], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, f"{cmd[0]} {cmd[1]} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def test_the_wheel_alone_runs_quickstart_and_publishes_skills(tmp_path: Path) -> None:
    if not _wanted():
        pytest.skip("builds a wheel and a new venv: set SKILLMINE_FRESH_TEST=1 (CI=true runs it)")
    empty = tmp_path / "somewhere"
    empty.mkdir()
    home = tmp_path / "home"
    env = _clean_env(home)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp_path / "dist", ROOT],
         cwd=empty, env=env)
    wheel = next((tmp_path / "dist").glob("skillmine-*.whl"))
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    bin_dir = tmp_path / "venv" / "bin"
    _run([bin_dir / "python", "-m", "pip", "install", "--quiet", f"skillmine[ag2] @ {wheel.as_uri()}"],
         cwd=empty, env=env)

    version = _run([bin_dir / "skillmine", "--version"], cwd=empty, env=env).stdout
    assert version.strip() == f"skillmine {wheel.name.split('-')[1]}"
    located = _run([bin_dir / "python", "-c", "import capture, skillmine; print(capture.__file__)"],
                   cwd=empty, env=env).stdout
    assert Path(located.strip()).is_relative_to(tmp_path / "venv")  # the installed wheel, not this checkout

    quick = _run([bin_dir / "skillmine", "quickstart", "--runs", str(RUNS)], cwd=empty, env=env)
    assert len(quick.stdout.splitlines()) <= 40, quick.stdout
    listed = _run([bin_dir / "skillmine", "skills", "list", "--json"], cwd=empty, env=env).stdout
    skills = json.loads(listed)
    assert skills, f"quickstart published no skill:\n{quick.stdout}"
    assert (home / "library").is_dir() and (home / "capture.db").is_file()
    assert sorted(p.name for p in empty.iterdir()) == []  # everything went under SKILLMINE_HOME
