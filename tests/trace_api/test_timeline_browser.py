"""The timeline page in real headless Chromium: it renders the run's events as a waterfall, shows details on
click, and an event written after the page loaded appears without a reload (EventSource)."""

import os
import time
from datetime import UTC, datetime

import pytest
from chromium_devtools import Browser, chromium_path

from capture.store.capture_store import Batch

ROW_IDS = "[...document.querySelectorAll('.row')].map(r => r.dataset.id)"


@pytest.fixture
def browser(tmp_path):
    binary = chromium_path()
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is not installed (apt-get install -y chromium)")
        pytest.skip("Chromium is not installed")
    opened = Browser(binary, str(tmp_path / "chromium-profile"))
    yield opened
    opened.close()


def test_timeline_renders_the_run_and_updates_live(server, writer, browser, tmp_path):
    browser.call("Page.enable")
    browser.call("Page.navigate", url=server.url + "/")
    assert browser.wait_for("[...document.querySelectorAll('#runs tr[data-run]')].map(r => r.dataset.run)"
                            ".join(',')") == "run-1,run-2"

    browser.call("Page.navigate", url=server.url + "/runs/run-1")
    browser.wait_for("document.querySelectorAll('.row').length === 6")
    assert browser.evaluate(ROW_IDS) == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert browser.evaluate("[...document.querySelectorAll('.node-row')].map(r => r.dataset.node)") == [
        "n-eng", "n-exe"]
    assert browser.evaluate("document.querySelector('#row-e4 .label').style.paddingLeft") == "40px"  # depth 2
    assert browser.evaluate("document.querySelector('#row-e6').classList.contains('failed')") is True
    assert browser.evaluate("document.querySelector('#row-e6 .bar').classList.contains('failed')") is True
    browser.wait_for("document.getElementById('live-text').textContent === 'live'")

    browser.evaluate("document.getElementById('row-e6').click()")
    details = browser.wait_for("document.getElementById('details').textContent.includes('ZeroDivisionError')"
                               " && document.getElementById('details').textContent")
    assert "codebase/analysis.py" in details and "1/0" in details

    written = time.monotonic()
    writer.write_batch(Batch(events=[{
        "id": "e7", "run_id": "run-1", "session_id": "sess-a", "event_type": "handoff", "agent_name": "executor",
        "node_id": "n-exe", "parent_event_id": "e5", "depth": 1, "execution_order": 7,
        "timestamp": datetime(2026, 3, 1, 9, 0, 8, 900000, tzinfo=UTC)}]))
    browser.wait_for("!!document.getElementById('row-e7')", timeout=5)
    lag = time.monotonic() - written
    assert browser.evaluate(ROW_IDS) == ["e1", "e2", "e3", "e4", "e5", "e6", "e7"]
    assert browser.evaluate("document.getElementById('event-count').textContent") == "7"
    assert lag < 3.0
    browser.screenshot(str(tmp_path / "timeline.png"))
    assert (tmp_path / "timeline.png").stat().st_size > 10_000
