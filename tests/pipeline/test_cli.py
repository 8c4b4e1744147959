"""``skillmine mine`` end to end through the CLI, bad input, and ``skillmine ui`` start/stop on a signal."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from skill_library import open_library
from skillmine.cli import main
from workloads.simulate import simulate

from .test_webserver import _free_port


@pytest.mark.slow
def test_mine_runs_the_job_and_prints_a_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture):
    monkeypatch.setenv("SKILLMINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SKILLMINE_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'home' / 'capture.db'}"
    simulate(runs=40, seed=5, url=url, ground_truth=tmp_path / "truth.jsonl")
    assert main(["mine", "--quiet", "--min-support", "3"]) == 0
    out = capsys.readouterr().out
    library = open_library(tmp_path / "home" / "library")
    assert f"library release 1 (new): new {len(library.skills())}" in out
    assert f"library: {tmp_path / 'home' / 'library'}" in out
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").exists()
    assert main(["mine", "--quiet", "--min-support", "3"]) == 0
    again = capsys.readouterr().out
    assert "events: 0 new" in again and "library release 1 (unchanged)" in again
    runs = list((tmp_path / "home" / "dagster" / "storage").iterdir())
    assert len(runs) >= 2  # both runs were recorded in the persistent instance the UI reads


def test_mine_names_a_bad_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    monkeypatch.setenv("SKILLMINE_HOME", str(tmp_path / "home"))
    assert main(["mine", "--url", "postgresql://nobody@127.0.0.1:1/none"]) == 2
    assert "names no driver" in capsys.readouterr().err


@pytest.mark.slow
def test_ui_starts_and_stops_on_sigterm(tmp_path: Path):
    port = _free_port()
    env = {**os.environ, "SKILLMINE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "skillmine.cli", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        else:
            pytest.fail("skillmine ui did not serve /server_info within 60 s")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2)
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").read_text().count("duckdb-writer") == 1
