"""What a new user meets: ``--version``, a SQLite store made on first use (PostgreSQL still needs
``skillmine db upgrade``), failed commands that leave nothing half-made, and ``skillmine mine`` output: a short
summary, Dagster's log in a named file, failed checks with their metadata, one closing line on failure."""

import sqlite3
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest

from capture.store.capture_store import CaptureStore
from capture.store.db import SchemaOutOfDate
from capture.store.migrate import head_revision
from skillmine.cli import main
from workloads.simulate import simulate


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A SKILLMINE_HOME that does not exist yet, with no store URL configured."""
    monkeypatch.setenv("SKILLMINE_HOME", str(tmp_path / "home"))
    for name in ("SKILLMINE_DATABASE_URL", "SKILLMINE_DUCKDB_PATH", "SKILLMINE_LIBRARY", "SKILLMINE_SPOOL_DIR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def test_version_is_the_installed_distribution(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"skillmine {version('skillmine')}\n"


def test_mine_on_an_empty_home_names_the_fix_and_creates_nothing(home: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mine"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"skillmine mine: no capture store at {home / 'capture.db'} yet (fix: capture runs first: "
                   "`skillmine simulate`, `skillmine import ...` or capture.run() in your code)\n")
    assert not home.exists()


def test_first_import_creates_and_migrates_the_store(home: Path, fixture_path, capsys) -> None:
    log = fixture_path("external", "pm4py_logs", "running-example.xes")
    assert main(["import", "xes", str(log)]) == 0
    assert "6 runs written" in capsys.readouterr().out
    with sqlite3.connect(home / "capture.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (head_revision(),)
        assert conn.execute("SELECT count(*) FROM workflow_runs").fetchone() == (6,)


OPEN_AT = """
import sys, time
from capture.store.capture_store import CaptureStore
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
CaptureStore.open(sys.argv[1]).close()
"""


def test_processes_opening_a_new_store_at_once_all_get_it_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    start = time.time() + 3  # after every interpreter has imported the store
    workers = [subprocess.Popen([sys.executable, "-c", OPEN_AT, url, str(start)], stderr=subprocess.PIPE, text=True)
               for _ in range(6)]
    failures = [err for w in workers for _, err in [w.communicate(timeout=120)] if w.returncode]
    assert failures == []
    with sqlite3.connect(tmp_path / "capture.db") as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]


def test_a_failed_first_command_leaves_no_store_behind(home: Path, tmp_path: Path, capsys) -> None:
    broken = tmp_path / "broken.xes"
    broken.write_text("<log><trace><event>")
    assert main(["import", "xes", str(broken)]) == 1
    assert "broken.xes" in capsys.readouterr().err
    assert not home.exists()


def test_an_unexpected_error_ends_with_one_line_and_leaves_nothing(home: Path, tmp_path: Path, capsys) -> None:
    not_a_folder = tmp_path / "work-file"
    not_a_folder.write_text("x")
    assert main(["simulate", "--runs", "1", "--engine", "ag2", "--work-dir", str(not_a_folder / "sub")]) == 1
    last = capsys.readouterr().err.rstrip().splitlines()[-1]
    assert last.startswith("skillmine simulate: unexpected NotADirectoryError: ")
    assert last.endswith("(fix: this is a bug in skillmine; please report it with the traceback above)")
    assert not home.exists()


def test_a_failed_reader_leaves_no_empty_store_in_an_existing_home(home: Path, capsys) -> None:
    (home / "library").mkdir(parents=True)
    assert main(["trace", "show", "run-1"]) == 2
    assert capsys.readouterr().err.startswith("skillmine trace")
    assert sorted(p.name for p in home.iterdir()) == ["library"]


@pytest.mark.postgres
def test_a_new_postgresql_store_still_needs_db_upgrade(pg_url: str) -> None:
    with pytest.raises(SchemaOutOfDate, match="has no skillmine schema.*run `skillmine db upgrade`"):
        CaptureStore.open(pg_url)


def _dagster_log(out: str) -> Path:
    line = next(line for line in out.splitlines() if line.strip().startswith("Dagster log: "))
    return Path(line.split("Dagster log: ", 1)[1])


@pytest.mark.slow
def test_mine_prints_a_short_summary_and_logs_dagster_to_a_file(home: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    simulate(runs=30, seed=2, url=f"sqlite:///{home / 'capture.db'}", ground_truth=tmp_path / "truth.jsonl")
    monkeypatch.setenv("SKILLMINE_MAX_MEDOID_DISTANCE", "0")  # no grouping is that tight: the check warns
    assert main(["mine", "--min-support", "3"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and len(out.splitlines()) <= 12 and " - dagster - " not in out
    assert "mining run " in out and ": succeeded" in out
    warning = next(line for line in out.splitlines() if "warning: check sequence_clusters:clustering_quality" in line)
    assert "threshold=0.0" in warning and "setting=SKILLMINE_MAX_MEDOID_DISTANCE" in warning
    log = _dagster_log(out)
    assert log.parent == home / "dagster" / "logs"
    text = log.read_text()
    assert "STEP_SUCCESS" in text and "skill_library_release" in text

    assert main(["mine", "--min-support", "3", "--verbose"]) == 0
    assert " - dagster - " in capsys.readouterr().err  # Dagster's own console log, on request only

    not_a_folder = tmp_path / "library-file"
    not_a_folder.write_text("x")
    assert main(["mine", "--library", str(not_a_folder)]) == 1
    out, err = capsys.readouterr()
    assert ": FAILED" in out
    log = _dagster_log(out)
    assert err.count("\n") == 1 and err.startswith("skillmine mine: step skill_library_release failed: ")
    assert "FileExistsError" in err and err.rstrip().endswith(f"(fix: the traceback is in {log})")
    text = log.read_text()
    assert "STEP_FAILURE" in text and "FileExistsError" in text and ", line " in text  # with the stack
