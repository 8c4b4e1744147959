"""Fault tests: a PostgreSQL cluster each module owns, a spool folder on a small full filesystem, plain-SQL reads."""

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from tests.faults.pg_cluster import OwnedCluster
from tests.recorder.conftest import fetch, settings_for  # noqa: F401 - fixtures shared with the recorder tests


@pytest.fixture(scope="module")
def owned_pg() -> Iterator[OwnedCluster]:
    """A running private cluster (stopped and deleted after the module); tests may stop and start it."""
    cluster = OwnedCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def owned_pg_url(owned_pg: OwnedCluster, request: pytest.FixtureRequest) -> str:
    """A fresh database in the owned cluster, named after the test; the cluster is running when the test starts."""
    if not owned_pg.running:
        owned_pg.start()
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:50]
    admin = create_engine(owned_pg.url(), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return owned_pg.url(name)
