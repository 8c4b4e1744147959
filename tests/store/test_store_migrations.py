"""Alembic on SQLite and PostgreSQL: the migrated schema is the models, down/up is clean, installs ship it."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from capture.store.db import current_revision, make_engine
from capture.store.migrate import downgrade, head_revision, upgrade
from capture.store.models import Base

REPO = Path(__file__).resolve().parents[2]


def _diff(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
            return compare_metadata(ctx, Base.metadata)
    finally:
        engine.dispose()


def test_migrated_schema_equals_models(store_url):
    upgrade(store_url)
    assert _diff(store_url) == []
    engine = make_engine(store_url)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_downgrade_to_base_then_upgrade_is_clean(store_url):
    upgrade(store_url)
    downgrade("base", store_url)
    engine = make_engine(store_url)
    tables = set(inspect(engine).get_table_names()) - {"alembic_version"}
    engine.dispose()
    assert tables == set()
    upgrade(store_url)
    assert _diff(store_url) == []


@pytest.mark.slow
def test_db_upgrade_from_a_non_editable_install(tmp_path):
    wheels = tmp_path / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(wheels), str(REPO)], capture_output=True, text=True, timeout=280, check=False)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("skillmine-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "migrations/env.py" in names and "migrations/script.py.mako" in names
    assert any(n.startswith("migrations/versions/0001_") for n in names)
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                              "--target", str(target), str(wheel)], capture_output=True, text=True, timeout=120,
                             check=False)
    assert install.returncode == 0, install.stderr[-2000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    db = tmp_path / "fresh.db"
    code = ("import capture.store.migrate as m, migrations, sys; "
            "assert 'site' in migrations.__file__, migrations.__file__; "
            "from skillmine.cli import main; "
            f"sys.exit(main(['db', '--url', 'sqlite:///{db.as_posix()}', 'upgrade']))")
    env = {**os.environ, "PYTHONPATH": str(target)}
    env.pop("SKILLMINE_DATABASE_URL", None)
    run = subprocess.run([sys.executable, "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"is at revision {head_revision()}" in run.stdout
    assert _diff(f"sqlite:///{db}") == []
    assert not (elsewhere / ".skillmine").exists()
