"""Bad input and bad stores: one clear message naming the store or the input, and nothing left behind."""

import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from capture.importers import (
    SourceError,
    import_cmbagent_db,
    import_cmbagent_history,
    import_cmbagent_trials,
    import_xes,
)
from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from tests.importers.test_cli import run_cli

XES = ("external", "pm4py_logs", "running-example.xes")


def test_read_only_sqlite_store_is_named_without_a_traceback(tmp_path: Path, data: Path, row_counts,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "store.db"
    upgrade(f"sqlite:///{path}")
    read_only = f"sqlite:///file:{path}?mode=ro&uri=true"
    assert run_cli(["import", "xes", str(data.joinpath(*XES)), "--url", read_only]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skillmine import: cannot write to the store sqlite:///file")
    assert "store.db" in err and "readonly database" in err
    assert "Traceback" not in err and "sqlalchemy" not in err.lower() and len(err.splitlines()) == 1
    store = CaptureStore.open(f"sqlite:///{path}")
    assert set(row_counts(store).values()) == {0}
    store.close()


@pytest.mark.postgres
def test_read_only_postgresql_store_is_named_without_a_traceback(pg_url: str, data: Path, row_counts,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    upgrade(pg_url)
    name = make_url(pg_url).database
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    admin.dispose()
    assert run_cli(["import", "xes", str(data.joinpath(*XES)), "--url", pg_url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skillmine import: cannot write to the store postgresql+psycopg://") and name in err
    assert "read-only transaction" in err and "Traceback" not in err and len(err.splitlines()) == 1
    store = CaptureStore.open(pg_url)
    assert set(row_counts(store).values()) == {0}
    store.close()


def test_a_failed_xes_import_leaves_no_session_behind(sqlite_store: CaptureStore, tmp_path: Path,
                                                      row_counts) -> None:
    broken = tmp_path / "broken.xes"
    broken.write_text('<?xml version="1.0"?><log><trace><string key="concept:name" value="1"/><event>')
    with pytest.raises(SourceError, match=r"broken\.xes: malformed XML at line 1"):
        import_xes(broken, sqlite_store)
    assert set(row_counts(sqlite_store).values()) == {0}


def test_a_failed_trials_import_keeps_the_complete_trials_and_names_the_line(
        sqlite_store: CaptureStore, data: Path, tmp_path: Path, row_counts) -> None:
    lines = data.joinpath("cmbagent", "benchmarks_cmbagent_trials.jsonl").read_text().splitlines()
    path = tmp_path / "trials.jsonl"
    path.write_text("\n".join(lines[:2] + [lines[2][:300]]) + "\n")
    with pytest.raises(SourceError, match=r"trials\.jsonl: line 3, column \d+: invalid JSON") as caught:
        import_cmbagent_trials(path, sqlite_store)
    assert "(2 runs before it were imported)" in str(caught.value)
    assert row_counts(sqlite_store)["workflow_runs"] == 2 and row_counts(sqlite_store)["sessions"] == 1


def test_an_empty_directory_is_bad_input(tmp_path: Path, sqlite_store: CaptureStore, row_counts,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(SourceError, match=r"nothing-here: no CMBAgent chat history"):
        import_cmbagent_history(empty, sqlite_store)
    assert set(row_counts(sqlite_store).values()) == {0}
    url = str(sqlite_store.engine.url)
    assert run_cli(["import", "cmbagent-history", str(empty), "--url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"skillmine import: {empty}: no CMBAgent chat history") and err.count("\n") == 1


def test_a_value_the_store_refuses_is_named_with_its_source_record(sqlite_store: CaptureStore, data: Path,
                                                                   tmp_path: Path, row_counts) -> None:
    copy = tmp_path / "odd_status.db"
    shutil.copy(data / "cmbagent" / "mars_sqlite" / "cmbagent_mars_474d7ff_2026-03-01.db", copy)
    with sqlite3.connect(copy) as conn:
        run_id = conn.execute("SELECT run_id FROM execution_events LIMIT 1").fetchone()[0]
        conn.execute("UPDATE execution_events SET status = 'exploded'")
    with pytest.raises(SourceError, match=rf"odd_status\.db: cmbagent-db:odd_status\.db#{run_id}: event .*"
                                          r"status 'exploded' is not one of"):
        import_cmbagent_db(copy, sqlite_store)
    assert row_counts(sqlite_store)["execution_events"] == 0

