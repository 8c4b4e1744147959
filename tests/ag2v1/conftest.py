"""AG2 v1 capture tests: scenarios run by the AG2 v1 interpreter named by ``SKILLMINE_AG2V1_PYTHON`` (v1 and AG2
Classic share the distribution name ``ag2``, so v1 lives in its own environment: ``scripts/ag2v1_env.sh`` creates it
and prints the interpreter); the store is migrated and read here, in the main environment. Without the variable the
tests skip locally and fail under ``CI=true``.
"""

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from v1_store import Captured

from capture.store.migrate import upgrade

SCENARIOS = Path(__file__).with_name("v1_scenarios.py")


@pytest.fixture
def run_v1(ag2v1_python: str, tmp_path: Path) -> Callable[..., Captured]:
    """``run_v1(scenario, runs=1, url=None)``: run a scenario of ``v1_scenarios.py`` under capture into a fresh
    migrated SQLite store (or ``url``), working in ``tmp_path``."""

    def run(scenario: str, runs: int = 1, url: str | None = None) -> Captured:
        if url is None:
            url = f"sqlite:///{tmp_path / 'capture.db'}"
            upgrade(url)
        work = tmp_path / scenario
        work.mkdir()
        result = subprocess.run([ag2v1_python, str(SCENARIOS), scenario, url, str(work), str(runs)],
                                capture_output=True, text=True, cwd=work, timeout=240, check=False)
        assert result.returncode == 0, result.stderr[-4000:]
        record = json.loads(result.stdout)
        stats = record["capture_stats"]
        assert (stats["errors"], stats["dropped"], stats["enqueued"]) == (0, 0, stats["written"]), stats
        return Captured(url, record)

    return run
