"""Fuzzing helpers shared by the importer fuzz tests: Hypothesis profiles, a populated template store copied per
example, and a fingerprint of every stored row.

Profiles: ``fuzz`` (default, a modest example count so the suite stays fast on two cores), ``fuzz-ci`` (chosen when
``CI=true``: derandomised, so a CI failure reproduces), ``fuzz-deep`` (``SKILLMINE_FUZZ=deep``: many examples, for a
long run by hand). Each test decorates itself with :data:`FUZZ`; the global Hypothesis profile is left alone.
"""

import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import select

from capture.importers import import_cmbagent_trials, import_xes
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from capture.store.models import Base
from tests.ci_mode import in_ci

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

_COMMON = {"deadline": None, "database": None,
           "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large]}
settings.register_profile("fuzz", max_examples=20, **_COMMON)
settings.register_profile("fuzz-ci", max_examples=20, derandomize=True, print_blob=True, **_COMMON)
settings.register_profile("fuzz-deep", max_examples=400, **_COMMON)


def _profile() -> str:
    if os.environ.get("SKILLMINE_FUZZ", "").strip().lower() == "deep":
        return "fuzz-deep"
    return "fuzz-ci" if in_ci() else "fuzz"


FUZZ = settings.get_profile(_profile())


def fingerprint(store: CaptureStore) -> dict[str, tuple[int, str]]:
    """Rows and a hash of their sorted contents per table: equal fingerprints mean the store holds the same rows."""
    out = {}
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = sorted(repr(tuple(row)) for row in conn.execute(select(table)))
            out[table.name] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
    return out


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite store already holding runs (an XES log and the benchmark trials), so that "unchanged" is
    checked against real rows, not an empty database."""
    path = tmp_path_factory.mktemp("fuzz-template") / "capture.db"
    upgrade(f"sqlite:///{path}")
    store = CaptureStore.open(f"sqlite:///{path}")
    try:
        import_xes(FIXTURES / "external" / "pm4py_logs" / "running-example.xes", store)
        import_cmbagent_trials(FIXTURES / "cmbagent" / "benchmarks_cmbagent_trials.jsonl", store)
    finally:
        store.close()
    return path


@pytest.fixture
def fresh_store(template_store: Path, tmp_path: Path) -> Callable[[], Iterator[CaptureStore]]:
    """``with fresh_store() as store``: a private copy of the template store for one example."""
    @contextmanager
    def make() -> Iterator[CaptureStore]:
        path = tmp_path / f"store-{uuid.uuid4().hex[:8]}.db"
        shutil.copyfile(template_store, path)
        store = CaptureStore.open(f"sqlite:///{path}")
        try:
            yield store
        finally:
            store.close()
            path.unlink(missing_ok=True)
    return make
