"""The spool under faults: a full filesystem (the run goes on, the loss is counted and reported, every spooled line
stays whole and replays) and a file truncated mid-record (every whole record replays, the torn one is reported)."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import capture
from capture.core.settings import CaptureSettings
from capture.recorder.processor import Recorder

FILLER = Path(__file__).with_name("spool_filler.py")
REPO = Path(__file__).resolve().parents[2]


def _blocked_sqlite(tmp_path: Path) -> tuple[Path, str]:
    """A SQLite URL nobody can write to (its folder is a plain file) until ``blocker`` is removed."""
    blocker = tmp_path / "db"
    blocker.write_text("not a directory")
    return blocker, f"sqlite:///{blocker / 'capture.db'}"


def _spool_lines(spool_dir: Path) -> list[bytes]:
    [path] = spool_dir.glob("spool-*.jsonl")
    return path.read_bytes().splitlines(keepends=True)


def _event_ids(lines: list[bytes]) -> list[str]:
    return [row["id"] for line in lines[1:] for row in json.loads(line).get("events", [])]


def _replay(settings: CaptureSettings) -> dict[str, Any]:
    """Start a recorder on ``settings`` (as the next process would), let it replay the spool, and return its sink's
    figures plus the recorder's error count."""
    recorder = Recorder(settings, install_exit_handlers=False)
    try:
        recorder.sink().idle()
        assert recorder.flush(10)
        return {**recorder.sink().stats(), "errors": recorder.stats()["errors"]}
    finally:
        recorder.close()


def _mount_tmpfs(path: Path, size: str) -> bool:
    """A real small filesystem when we may mount one (root); else the caller limits file sizes instead."""
    if os.geteuid() != 0:
        return False
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=False,
                            capture_output=True)
    return result.returncode == 0


def test_spool_on_a_full_filesystem_run_continues_loss_counted_and_reported(tmp_path, fetch, settings_for):
    blocker, url = _blocked_sqlite(tmp_path)
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    mounted = _mount_tmpfs(spool_dir, "96k")
    try:
        limit = 0 if mounted else 96 * 1024
        child = subprocess.run([sys.executable, str(FILLER), url, str(spool_dir), "400", "1000", str(limit)],
                               capture_output=True, text=True, timeout=120, cwd=REPO, check=False,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
        assert child.returncode == 0, child.stderr[-3000:]
        figures = json.loads(child.stdout.strip().splitlines()[-1])
        # The workflow recorded every event; what the spool could not keep is counted, the rest is kept.
        assert figures["recorded"] == 400
        assert figures["dropped"] > 0 and figures["spooled"] > 0 and figures["errors"] > 0
        assert figures["spooled"] + figures["dropped"] == figures["enqueued"]
        assert "recorder items were lost" in child.stderr and "disk full" in child.stderr
        lines = _spool_lines(spool_dir)
        assert all(line.endswith(b"\n") for line in lines)  # no failed append left half a line behind
        assert sum(json.loads(line).get("_items", 0) for line in lines[1:]) == figures["spooled"]
        kept = _event_ids(lines)
        assert 0 < len(kept) < 400

        # With the database back, every kept line replays.
        blocker.unlink()
        assert _replay(settings_for(url))["spool_torn_lines"] == 0
        stored = [r["id"] for r in fetch(url, "SELECT id FROM execution_events WHERE event_type = 'info'")]
        assert sorted(stored) == sorted(kept)
    finally:
        if mounted:
            subprocess.run(["umount", str(spool_dir)], check=True)


def test_spool_truncated_mid_record_keeps_every_whole_record_and_reports_the_torn_one(tmp_path, fetch,
                                                                                      settings_for, caplog):
    blocker, url = _blocked_sqlite(tmp_path)
    capture.configure(settings_for(url))
    try:
        with capture.run("torn"):
            for part in range(4):
                for i in range(50):
                    capture.record_event("info", "trace", meta={"part": part, "i": i})
                assert capture.flush(5)
    finally:
        capture.shutdown()
    [path] = (tmp_path / "spool").glob("spool-*.jsonl")
    lines = _spool_lines(tmp_path / "spool")
    assert len(lines) >= 5  # the header and at least four batches
    cut = len(b"".join(lines[:-2])) + len(lines[-2]) // 2  # half-way into the last batch but one
    with open(path, "r+b") as handle:
        handle.truncate(cut)
    whole = _event_ids(lines[:-2])
    assert whole

    blocker.unlink()
    with caplog.at_level(logging.WARNING):
        sink_stats = _replay(settings_for(url))
    stored = [r["id"] for r in fetch(url, "SELECT id FROM execution_events WHERE event_type = 'info'")]
    assert sorted(stored) == sorted(whole)
    assert sink_stats["spool_torn_lines"] == 1 and sink_stats["errors"] >= 1
    reports = [r.getMessage() for r in caplog.records if "torn" in r.getMessage()]
    assert reports and f"{path} line {len(lines) - 1}" in reports[0]
    assert not list((tmp_path / "spool").glob("spool-*.jsonl"))


def test_a_middle_line_that_is_not_a_batch_costs_only_itself(tmp_path, fetch, settings_for):
    blocker, url = _blocked_sqlite(tmp_path)
    capture.configure(settings_for(url))
    try:
        for part in range(3):
            capture.record_event("info", "trace", meta={"part": part})
            assert capture.flush(5)
    finally:
        capture.shutdown()
    [path] = (tmp_path / "spool").glob("spool-*.jsonl")
    lines = _spool_lines(tmp_path / "spool")
    lines.insert(2, b'{"events": "not rows"}\n')
    path.write_bytes(b"".join(lines))
    blocker.unlink()
    torn = _replay(settings_for(url))["spool_torn_lines"]
    stored = [r["id"] for r in fetch(url, "SELECT id FROM execution_events WHERE event_type = 'info'")]
    assert sorted(stored) == sorted(_event_ids([lines[0], *lines[1:2], *lines[3:]]))
    assert len(stored) == 3 and torn == 1
