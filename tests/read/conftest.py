"""A capture store holding every real CMBAgent/MARS record shipped under ``tests/fixtures/cmbagent``, imported once
per test session with the real importers (MARS databases, session folders, the idea-generation task folder, the
upstream chat histories and the benchmark trials; the importers merge one run per real run)."""

from collections.abc import Callable
from pathlib import Path

import pytest

from capture.importers import import_cmbagent_db, import_cmbagent_history, import_cmbagent_trials
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade

CMBAGENT = Path(__file__).resolve().parents[1] / "fixtures" / "cmbagent"


def _imports() -> list[tuple[Callable, Path]]:
    return [*((import_cmbagent_db, p) for p in sorted((CMBAGENT / "mars_sqlite").glob("*.db"))),
            (import_cmbagent_history, CMBAGENT / "mars_sessions_2026-02-18"),
            (import_cmbagent_history, CMBAGENT / "mars_idea_generation_task"),
            (import_cmbagent_history, CMBAGENT / "upstream_cmbagent_history"),
            (import_cmbagent_trials, CMBAGENT / "benchmarks_cmbagent_trials.jsonl")]


@pytest.fixture(scope="session")
def real_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """URL of a migrated SQLite store with every real record imported (read it, never write to it)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('real') / 'capture.db'}"
    upgrade(url)
    store = CaptureStore.open(url)
    try:
        for importer, path in _imports():
            if not path.exists():
                pytest.fail(f"test fixture {path} is missing (tests/fixtures/README.md lists them)")
            importer(path, store, quiet=True)
    finally:
        store.close()
    return url
