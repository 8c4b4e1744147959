"""``skillmine import ...`` through the real argparse wiring: summaries, exit codes, quiet pipes."""

import argparse
import io
import sqlite3
from pathlib import Path

import pytest

from capture.importers.cli import register
from capture.importers.common import ImportReport, Progress
from capture.store.migrate import upgrade


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="skillmine")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


@pytest.fixture
def url(tmp_path: Path) -> str:
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(store_url)
    return store_url


def test_import_prints_a_summary_and_second_run_writes_nothing(url: str, data: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = data / "external" / "pm4py_logs" / "running-example.xes"
    assert run_cli(["import", "xes", str(path), "--url", url, "--session", "s1"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"imported xes {path}: 6 runs written, 0 already imported (6 new, 0 merged into a run "
                          "from another source, 0 updated: content changed); 0 nodes, 0 edges, 42 events")
    assert err == ""  # not a terminal: no progress line
    assert run_cli(["import", "xes", str(path), "--url", url, "--session", "s1", "--quiet"]) == 0
    assert "0 runs written, 6 already imported" in capsys.readouterr().out


def test_unmapped_kinds_appear_in_the_summary(url: str, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = data / "cmbagent" / "upstream_cmbagent_history"
    assert run_cli(["import", "cmbagent-history", str(path), "--url", url]) == 0
    assert capsys.readouterr().out.rstrip().endswith(
        "not mapped: assistant turn without agent calls ×1, history without a recorded answer ×2")


def test_bad_input_exits_1_naming_the_file_and_bad_store_exits_2(url: str, tmp_path: Path, data: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bogus = tmp_path / "bogus.db"
    bogus.write_text("no database here\n" * 40)
    assert run_cli(["import", "cmbagent-db", str(bogus), "--url", url]) == 1
    assert f"skillmine import: {bogus}: not a readable SQLite database" in capsys.readouterr().err
    foreign = tmp_path / "foreign.db"  # holds tables but no skillmine schema: never migrated behind one's back
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.close()
    path = data / "external" / "pm4py_logs" / "running-example.xes"
    assert run_cli(["import", "xes", str(path), "--url", f"sqlite:///{foreign}"]) == 2
    assert capsys.readouterr().err.startswith("skillmine import: ")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_only() -> None:
    tty, pipe = _Terminal(), io.StringIO()
    for stream in (tty, pipe):
        progress = Progress(None, stream=stream)
        progress.total_runs = 4  # importers learn the total after opening the source
        for _ in range(2):
            progress.step(1500)
        progress.done()
    assert pipe.getvalue() == ""
    shown = tty.getvalue()
    assert shown.removesuffix("\x1b[?25h").endswith("\n")  # the last state stays on its own line (cursor shown)
    assert "2/4" in shown and "3,000 events (" in shown and "/s)" in shown
    quiet = _Terminal()
    Progress(4, stream=quiet, quiet=True).step(1)
    assert quiet.getvalue() == ""
    assert ImportReport("x", "xes").summary().startswith("imported xes x: 0 runs written")


def test_cmbagent_trials_command(url: str, data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = data / "cmbagent" / "benchmarks_cmbagent_trials.jsonl"
    assert run_cli(["import", "cmbagent-trials", str(path), "--url", url]) == 0
    assert capsys.readouterr().out.startswith(f"imported cmbagent-trials {path}: 7 runs written, 0 already imported "
                                              "(7 new,")
    assert run_cli(["import", "cmbagent-trials", str(path), "--url", url]) == 0
    assert "0 runs written, 7 already imported" in capsys.readouterr().out
