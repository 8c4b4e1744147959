"""Shared fixtures: a capture store on real SQLite and real PostgreSQL.

- ``store_url`` is parametrised over ``sqlite`` (a file in ``tmp_path``) and ``postgresql`` (a fresh database
  ``skillmine_t_<random>`` created on the server named by ``SKILLMINE_TEST_PG_URL`` and dropped afterwards).
  Without that variable PostgreSQL cases are skipped locally, but fail when ``CI=true``; an unreachable server
  likewise skips locally and fails in CI.
- ``store`` is a migrated :class:`capture.store.capture_store.CaptureStore` on each of those URLs.
- ``pg_url`` is a fresh PostgreSQL database URL alone (for PostgreSQL-only tests).
- ``fixture_path(*parts)`` locates a real-record fixture under ``tests/fixtures/`` (see its README for origins).

Use ``store_url`` / ``store`` in a test and it runs once per backend; the PostgreSQL case carries the
``postgres`` marker (``pytest -m "not postgres"`` runs only SQLite).
"""

import os
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.ci_mode import in_ci

PG_ENV = "SKILLMINE_TEST_PG_URL"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _fixture_path(*parts: str) -> Path:
    path = FIXTURES.joinpath(*parts)
    if not path.exists():
        pytest.fail(f"test fixture {path} is missing (tests/fixtures/README.md lists them)")
    return path


@pytest.fixture
def fixture_path() -> Callable[..., Path]:
    """Path of a real-record fixture shipped with the tests: ``fixture_path("cmbagent", "mars_sqlite")``; no
    argument gives the fixture root. Fails the test when the file is missing, so a clone anywhere is self-sufficient."""
    return _fixture_path


def _side_python(env: str, what: str, how: str) -> str:
    """The interpreter of a side environment named by ``env`` (AG2 lines that cannot share the main .venv); skipped
    locally when unset, failed under ``CI=true``, where ``.ci/run`` always builds it."""
    python = os.environ.get(env)
    if not python:
        if in_ci():
            pytest.fail(f"{env} is not set: CI must run {what} in its own environment ({how})")
        pytest.skip(f"{env} is not set ({how} creates the environment and prints its interpreter)")
    return python


@pytest.fixture
def ag2v1_python() -> str:
    """The AG2 v1 interpreter (``SKILLMINE_AG2V1_PYTHON``; ``scripts/ag2v1_env.sh`` builds it)."""
    return _side_python("SKILLMINE_AG2V1_PYTHON", "the AG2 v1 tests", "scripts/ag2v1_env.sh")


@pytest.fixture
def ag2_classic_old_python() -> str:
    """An older AG2 Classic interpreter (``SKILLMINE_AG2_CLASSIC_OLD_PYTHON``; ``scripts/ag2_classic_old_env.sh``)."""
    return _side_python("SKILLMINE_AG2_CLASSIC_OLD_PYTHON", "the AG2 Classic tests on an older minor",
                        "scripts/ag2_classic_old_env.sh")


def pytest_configure(config: pytest.Config) -> None:
    """Un-ignore SIGINT and SIGTERM. Several tests signal child processes and expect the default behaviour, but a
    test run started in the background of a shell without job control inherits SIGINT ignored (and Dagster maps
    SIGTERM to SIGINT's handler, so SIGTERM ends up ignored too); ignored signals pass on to every child."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _unavailable(reason: str) -> None:
    if in_ci():
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL to a fresh, empty PostgreSQL database, dropped (WITH FORCE) after the test."""
    base = os.environ.get(PG_ENV)
    if not base:
        _unavailable(f"{PG_ENV} is not set")
    url = make_url(base)
    name = f"skillmine_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any connection failure means "unavailable"
        admin.dispose()
        _unavailable(f"PostgreSQL at {url.render_as_string(hide_password=True)} unreachable: "
                     f"{str(exc).splitlines()[0]}")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """An empty database URL on each backend (not migrated)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'capture.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str):
    """A migrated capture store on each backend."""
    from capture.store.capture_store import CaptureStore
    from capture.store.migrate import upgrade

    upgrade(store_url)
    opened = CaptureStore.open(store_url)
    try:
        yield opened
    finally:
        opened.close()
