"""Nothing is lost on SIGTERM or a database outage; after SIGKILL the spool replays at the next start."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import capture
from capture.recorder.processor import Recorder
from capture.store.migrate import upgrade

CHILD = Path(__file__).with_name("child_writer.py")
REPO = Path(__file__).resolve().parents[2]


class Child:
    """The child workflow process, with its reported event ids and durable counts collected by a reader thread."""

    def __init__(self, url: str, spool_dir: Path, interval: float, rate: float = 0.0, stop_after: int = 0) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen([sys.executable, str(CHILD), url, str(spool_dir), str(interval), str(rate),
                                      str(stop_after)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
        self.ids: list[str] = []
        self.times: list[float] = []
        self.durable = 0  # recorder items the child's writer had made durable at its last report
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode().strip()
            if line.startswith("durable "):
                self.durable = int(line.split()[1])
                continue
            self.ids.append(line)
            self.times.append(time.monotonic())

    def wait_for(self, count: int, timeout: float = 30, durable: int = 0) -> None:
        """Until the child has reported ``count`` events and ``durable`` durable items (a loaded machine only makes
        this slower, never wrong)."""
        deadline = time.monotonic() + timeout
        while len(self.ids) < count or self.durable < durable:
            assert self.proc.poll() is None, self.proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, f"child reported {len(self.ids)} events, {self.durable} durable"
            time.sleep(0.01)

    def stop(self, sig: int) -> int:
        self.proc.send_signal(sig)
        code = self.proc.wait(30)
        self._reader.join(10)
        return code

    def rate(self) -> float:
        """Events per second over the last half of the run."""
        half = len(self.times) // 2
        return (len(self.times) - half) / max(1e-6, self.times[-1] - self.times[half])


def _stored_ids(fetch, url: str) -> list[str]:
    return [r["id"] for r in fetch(url, "SELECT id FROM execution_events WHERE event_type = 'info'")]


def test_normal_exit_without_flush_loses_nothing(store_url, tmp_path, fetch):
    upgrade(store_url)
    child = Child(store_url, tmp_path / "spool", 5.0, stop_after=5_000)  # exits long before a timed flush
    assert child.proc.wait(60) == 0
    child._reader.join(10)
    assert len(child.ids) == 5_000
    assert sorted(_stored_ids(fetch, store_url)) == sorted(child.ids)
    assert fetch(store_url, "SELECT status FROM workflow_runs") == [{"status": "completed"}]


def test_sigterm_mid_run_loses_nothing(store_url, tmp_path, fetch):
    upgrade(store_url)
    child = Child(store_url, tmp_path / "spool", 0.2)
    child.wait_for(3000)
    code = child.stop(signal.SIGTERM)
    assert code == -signal.SIGTERM  # the default behaviour was re-delivered after the flush
    stored = _stored_ids(fetch, store_url)
    assert set(child.ids) <= set(stored)
    assert len(stored) == len(set(stored))
    assert len(stored) - len(child.ids) in (0, 1)  # the one enqueued but killed before its line was flushed
    assert not list((tmp_path / "spool").glob("*.jsonl"))


@pytest.mark.parametrize("rate", [0, 5000], ids=["unpaced", "5000_per_s"])
def test_sigkill_loses_only_what_was_not_yet_durable_and_spool_replays_at_next_start(rate, tmp_path, fetch,
                                                                                     settings_for):
    # The database is unavailable to the child (its directory is blocked by a plain file), so every batch goes
    # to the spool; after kill -9 the next process, with the database back, replays the spool. The bound is the
    # child's own count of durable items at its last report before the kill, not a time: a loaded machine makes
    # the writer lag further behind (more is lost), but never loses an item the child saw made durable.
    blocker = tmp_path / "db"
    blocker.write_text("not a directory")
    url = f"sqlite:///{blocker / 'capture.db'}"
    interval = 0.2
    child = Child(url, tmp_path / "spool", interval, rate)
    child.wait_for(5000, timeout=60, durable=5000)
    code = child.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    spool_files = list((tmp_path / "spool").glob("spool-*.jsonl"))
    assert len(spool_files) == 1
    blocker.unlink()

    recorder = Recorder(settings_for(url), install_exit_handlers=False)
    try:
        recorder.sink().idle()
        assert recorder.flush(10)
    finally:
        recorder.close()
    stored = _stored_ids(fetch, url)
    assert len(stored) == len(set(stored))
    assert len(set(stored) - set(child.ids)) <= 1  # one event may be enqueued (and durable) before its line
    # Every durable item survived: the child's items are its run's start, then its events.
    assert len(stored) >= child.durable - 1
    assert not list((tmp_path / "spool").glob("spool-*.jsonl"))
    lost = len(child.ids) - len(stored)
    measured = child.rate()
    print(f"\nSIGKILL: child reported {len(child.ids)} events at {measured:.0f}/s, {child.durable} items durable at "
          f"its last report; {len(stored)} replayed from the spool; lost {lost} ({lost / measured * 1000:.0f} ms "
          f"of events; flush interval {interval * 1000:.0f} ms)")


def blocked_sqlite(tmp_path: Path) -> tuple[Path, str]:
    """A SQLite URL the recorder cannot write to (its directory is a file) until ``blocker`` is removed."""
    blocker = tmp_path / "db"
    blocker.write_text("not a directory")
    return blocker, f"sqlite:///{blocker / 'capture.db'}"


def replay_spool(seconds: float = 15) -> None:
    """Flush until the recorder has replayed its spool (or ``seconds`` passed)."""
    deadline = time.monotonic() + seconds
    while capture.stats()["spool_pending"] and time.monotonic() < deadline:
        capture.flush(5)
        time.sleep(0.05)


def test_sqlite_database_blocked_then_back_within_a_run(tmp_path, fetch, settings_for):
    blocker, url = blocked_sqlite(tmp_path)
    capture.configure(settings_for(url))
    try:
        with capture.run("outage") as run, capture.span("agent_call", agent_name="a") as top:
            ids = [capture.record_event("info", "trace", meta={"i": i}) for i in range(400)]
            assert capture.flush(5)
            assert capture.stats()["spooled"] > 0 and capture.stats()["written"] == 0
            blocker.unlink()
            ids += [capture.record_event("info", "trace", meta={"i": i}) for i in range(400, 800)]
        replay_spool()
        assert capture.flush(5)
        stats = capture.stats()
    finally:
        capture.shutdown()
    rows = fetch(url, "SELECT id, parent_event_id FROM execution_events WHERE event_type = 'info'")
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert {r["parent_event_id"] for r in rows} == {top.id}
    assert fetch(url, "SELECT status FROM execution_events WHERE id = :i", i=top.id) == [{"status": "completed"}]
    assert fetch(url, "SELECT status FROM workflow_runs WHERE id = :i", i=run.id) == [{"status": "completed"}]
    assert stats["replayed"] > 0 and stats["dropped"] == 0 and stats["spool_pending"] == 0


def test_a_broadcast_spooled_while_the_database_is_down_replays_with_its_recipients(tmp_path, fetch, settings_for):
    blocker, url = blocked_sqlite(tmp_path)
    capture.configure(settings_for(url))
    try:
        with capture.run("outage"):
            eid = capture.record_broadcast("chat_manager", ["planner", "engineer"], "round 1", meta={"role": "user"})
            assert capture.flush(5) and capture.stats()["spool_pending"] > 0
            spooled = "".join(path.read_text() for path in (tmp_path / "spool").glob("spool-*.jsonl"))
            assert spooled.count('"recipients":["planner","engineer"]') == 2  # the event's inputs, the row's meta
            blocker.unlink()
        replay_spool()
        assert capture.stats()["replayed"] > 0 and capture.stats()["spool_pending"] == 0
    finally:
        capture.shutdown()
    [event] = fetch(url, "SELECT event_subtype, inputs FROM execution_events WHERE id = :i", i=eid)
    assert event["event_subtype"] == "broadcast"
    assert json.loads(event["inputs"]) == {"sender": "chat_manager", "recipients": ["planner", "engineer"]}
    [message] = fetch(url, "SELECT recipient, meta FROM messages WHERE event_id = :i", i=eid)
    assert message["recipient"] == "planner, engineer"
    assert json.loads(message["meta"]) == {"role": "user", "recipients": ["planner", "engineer"]}


@pytest.mark.postgres
def test_postgres_outage_mid_run_nothing_lost_nothing_duplicated(pg_url, tmp_path, fetch, settings_for):
    upgrade(pg_url)
    name = make_url(pg_url).database
    admin = create_engine(make_url(pg_url).set(database="test"), isolation_level="AUTOCOMMIT")

    def allow(flag: bool) -> None:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(flag).lower()}'))
            if not flag:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                             {"n": name})

    capture.configure(settings_for(pg_url))
    try:
        with capture.run("pg-outage") as run:
            before = [capture.record_event("info", "trace", meta={"i": i}) for i in range(300)]
            assert capture.flush(5)
            allow(False)
            with capture.span("agent_call", agent_name="a") as top:
                during = [capture.record_event("info", "trace", meta={"i": i}) for i in range(300)]
                assert capture.flush(15)
                assert capture.stats()["spooled"] >= 300
                allow(True)
                after = [capture.record_event("info", "trace", meta={"i": i}) for i in range(300)]
        replay_spool(20)
        assert capture.flush(5)
    finally:
        capture.shutdown()
        allow(True)
        admin.dispose()
    rows = fetch(pg_url, "SELECT id, parent_event_id FROM execution_events WHERE event_type = 'info'")
    assert sorted(r["id"] for r in rows) == sorted(before + during + after)
    parents = {r["id"]: r["parent_event_id"] for r in rows}
    assert {parents[i] for i in before} == {None}
    assert {parents[i] for i in during + after} == {top.id}
    assert fetch(pg_url, "SELECT status FROM execution_events WHERE id = :i", i=top.id) == [{"status": "completed"}]
    assert fetch(pg_url, "SELECT status FROM workflow_runs WHERE id = :i", i=run.id) == [{"status": "completed"}]


def test_sigterm_chains_a_previous_python_handler_and_keeps_capturing(tmp_path, settings_for, fetch):
    url = f"sqlite:///{tmp_path / 'capture.db'}"
    upgrade(url)
    seen = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        capture.configure(settings_for(url, flush_interval_s=5.0))  # only a flush can write within this test
        first = capture.record_event("info", "trace")
        os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
        assert [r["id"] for r in fetch(url, "SELECT id FROM execution_events")] == [first]
        second = capture.record_event("info", "trace")
        assert capture.flush(5)
        assert sorted(r["id"] for r in fetch(url, "SELECT id FROM execution_events")) == sorted([first, second])
    finally:
        capture.shutdown()
        signal.signal(signal.SIGTERM, original)
