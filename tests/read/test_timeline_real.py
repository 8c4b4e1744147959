"""The timeline page on real imported runs, in headless Chromium: a MARS planning_and_control run shows its step's
tokens and cost (from the step's cost report), the run's totals, its files and the source's wall time; a benchmark
trial recorded without source times says so instead of showing an invented duration."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "trace_api"))  # the DevTools client of the UI tests
from chromium_devtools import Browser, browser_for_test

from capture.read.trace_api.reader import TraceReader, open_read_only
from capture.read.trace_api.server import TraceServer

STEP_PLOT = "control/data/mobius_strip_1_20260218_094920.png"


@pytest.fixture
def browser(tmp_path):
    yield from browser_for_test(str(tmp_path / "chromium-profile"))


@pytest.fixture
def server(real_url):
    srv = TraceServer(open_read_only(real_url), "127.0.0.1", 0).start()
    yield srv
    srv.stop()
    srv.engine.dispose()


def text(browser: Browser, selector: str) -> str:
    return browser.evaluate(f"document.querySelector({selector!r}).textContent")


def test_real_runs_show_usage_files_and_source_times(server, browser):
    reader = TraceReader(server.engine)
    run_id = reader.provenance(STEP_PLOT)["files"][0]["run"]["id"]
    detail = reader.run(run_id)
    step = next(n for n in detail["nodes"] if (n["meta"] or {}).get("id") == "step_1")

    browser.call("Page.enable")
    browser.call("Page.navigate", url=f"{server.url}/runs/{run_id}")
    browser.wait_for("document.querySelectorAll('.row').length > 0")
    assert text(browser, f"#node-{step['id']} .usage") == "18,267 tok · $0.4859"  # the step's cost report
    assert text(browser, "#run-tokens") == f"{detail['usage']['total_tokens']:,}"
    assert detail["usage"]["total_tokens"] > 18267  # the planning step's costs count too
    assert STEP_PLOT in browser.evaluate("[...document.querySelectorAll('#run-files tr[data-file]')]"
                                         ".map(r => r.dataset.file)")
    assert "50.1 s" in text(browser, "#summary")  # 09:48:34.6 -> 09:49:24.7, the MARS record's own times

    trial = reader.search(outcome="failed", mode="one_shot")["runs"][0]["id"]
    browser.call("Page.navigate", url=f"{server.url}/runs/{trial}")
    browser.wait_for("document.querySelectorAll('.row').length === 5")
    assert "not recorded by the source" in text(browser, "#summary")


def test_runs_page_searches_like_the_cli(server, browser):
    expected = TraceReader(server.engine).search("plotting", limit=200)
    browser.call("Page.enable")
    browser.call("Page.navigate", url=server.url + "/")
    browser.wait_for("!!document.getElementById('search-form')")
    browser.evaluate("document.getElementById('search').value = 'plotting'; "
                     "document.getElementById('search-form').requestSubmit()")
    assert browser.wait_for("document.getElementById('search-count')?.textContent") == (
        f"{expected['total_runs']} runs match “plotting”")
    assert browser.evaluate("[...document.querySelectorAll('#runs tr[data-run]')].map(r => r.dataset.run)") == [
        r["id"] for r in expected["runs"]]
    assert browser.evaluate("location.search") == "?q=plotting"
