"""AG2 Classic capture on an older minor too (0.10.x, CMBAgent's line; the main environment has the newest Classic):
this folder's tests run again under the interpreter named by ``SKILLMINE_AG2_CLASSIC_OLD_PYTHON``, an environment
``scripts/ag2_classic_old_env.sh`` creates. Without the variable the test skips locally and fails under
``CI=true``."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ENV = "SKILLMINE_AG2_CLASSIC_OLD_PYTHON"
HERE = Path(__file__).resolve().parent


def _version(python: str) -> tuple[int, ...]:
    out = subprocess.run([python, "-c", "import autogen; print(autogen.__version__)"], capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return tuple(int(part) for part in re.findall(r"\d+", out)[:3])


@pytest.mark.ag2classic_old
def test_classic_capture_tests_pass_on_an_older_minor(ag2_classic_old_python: str) -> None:
    python = ag2_classic_old_python
    older = _version(python)
    assert older[:2] < _version(sys.executable)[:2], f"{python} has AG2 {older}, not an older minor"
    child_env = {k: v for k, v in os.environ.items() if k != ENV}
    result = subprocess.run([python, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
                             "-m", "not ag2classic_old", "-W", "ignore::DeprecationWarning"],
                            capture_output=True, text=True, env=child_env, timeout=600, check=False)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-2000:]
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|errors?)", summary)}
    assert counts.get("passed", 0) >= 40 and set(counts) == {"passed"}, summary  # every test ran and passed
