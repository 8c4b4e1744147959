"""The timeline page in real headless Chromium: it renders the run's events as a waterfall, shows details on
click, and an event written after the page loaded appears without a reload (EventSource)."""

import time
from datetime import UTC, datetime

import pytest
from chromium_devtools import browser_for_test

from capture.store.capture_store import Batch

ROW_IDS = "[...document.querySelectorAll('.row')].map(r => r.dataset.id)"


@pytest.fixture
def browser(tmp_path):
    yield from browser_for_test(str(tmp_path / "chromium-profile"))


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

    # tokens and cost per event, per node and for the run; the files of the run
    assert browser.evaluate("document.querySelector('#row-e2 .usage').textContent") == "150 tok · $0.0042"
    assert browser.evaluate("document.querySelector('#row-e1 .usage').textContent") == ""
    assert browser.evaluate("document.querySelector('#node-n-eng .usage').textContent") == "150 tok · $0.0042"
    assert browser.evaluate("document.querySelector('#node-n-exe .usage').textContent") == ""
    assert browser.evaluate("document.getElementById('run-tokens').textContent") == "150"
    assert browser.evaluate("document.getElementById('run-cost').textContent") == "$0.0042"
    assert browser.evaluate("[...document.querySelectorAll('#run-files tr[data-file]')].map(r => r.dataset.file)"
                            ) == ["plots/fig.png", "codebase/analysis.py"]
    assert "step_1" in browser.evaluate("document.querySelector('#run-files tr[data-file]').textContent")

    browser.evaluate("document.getElementById('row-e6').click()")
    details = browser.wait_for("document.getElementById('details').textContent.includes('ZeroDivisionError')"
                               " && document.getElementById('details').textContent")
    assert "codebase/analysis.py" in details and "1/0" in details

    written = time.monotonic()
    writer.write_batch(Batch(events=[{
        "id": "e7", "run_id": "run-1", "session_id": "sess-a", "event_type": "llm_call", "agent_name": "executor",
        "node_id": "n-exe", "parent_event_id": "e5", "depth": 1, "execution_order": 7,
        "timestamp": datetime(2026, 3, 1, 9, 0, 8, 900000, tzinfo=UTC),
        "meta": {"prompt_tokens": 40, "completion_tokens": 10, "cost_usd": 0.001}}]))
    browser.wait_for("!!document.getElementById('row-e7')", timeout=5)
    lag = time.monotonic() - written
    assert browser.evaluate(ROW_IDS) == ["e1", "e2", "e3", "e4", "e5", "e6", "e7"]
    assert browser.evaluate("document.getElementById('event-count').textContent") == "7"
    assert browser.evaluate("document.querySelector('#row-e7 .usage').textContent") == "50 tok · $0.0010"
    assert browser.evaluate("document.getElementById('run-tokens').textContent") == "200"
    assert lag < 3.0
    browser.screenshot(str(tmp_path / "timeline.png"))
    assert (tmp_path / "timeline.png").stat().st_size > 10_000


def test_timeline_asks_for_the_token_once_and_keeps_it_out_of_urls(sqlite_url, writer, serve, browser):
    token = "correct-horse-battery-staple-42"
    server = serve(sqlite_url, token=token)
    browser.call("Page.enable")
    browser.call("Page.navigate", url=server.url + "/runs/run-1")
    browser.wait_for("!!document.getElementById('token-form')")
    browser.evaluate("document.getElementById('token').value = 'wrong-token-wrong-token'; "
                     "document.getElementById('token-form').requestSubmit()")
    assert browser.wait_for("document.getElementById('token-error').textContent") == "wrong token"
    browser.evaluate(f"document.getElementById('token').value = '{token}'; "
                     "document.getElementById('token-form').requestSubmit()")
    browser.wait_for("document.querySelectorAll('.row').length === 6")
    browser.wait_for("document.getElementById('live-text').textContent === 'live'")  # EventSource via the cookie
    assert token not in browser.evaluate("location.href + document.cookie + document.documentElement.outerHTML"
                                         " + JSON.stringify(sessionStorage) + JSON.stringify(localStorage)")
    browser.call("Page.navigate", url=server.url + "/")  # the cookie holds: no second prompt
    assert browser.wait_for("document.querySelectorAll('#runs tr[data-run]').length") == 2
