"""``GET /api/runs/{id}/conformance``: mounted by ``skillmine trace serve`` (capture itself imports no pipeline),
it answers exactly what ``skillmine conform RUN_ID --json`` prints, and the timeline page marks the deviating
events. The store is simulated and the library mined from it by skillmine, as a user's would be."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from chromium_devtools import browser_for_test

from capture.read.trace_api.server import check_run_answers
from skillmine.cli import main
from skillmine.trace import conformance_answer
from tests.conformance.plot_runs import mine_plot_runs


@pytest.fixture(scope="module")
def mined(tmp_path_factory):
    """(store URL, library, {run id: status}) for 40 simulated plotting runs, some failed, mined by skillmine."""
    mined = mine_plot_runs(tmp_path_factory.mktemp("conformance-route"))
    assert {"completed", "failed"} <= set(mined[2].values())
    return mined


def conform_json(capsys, url: str, library: Path, run_id: str) -> dict:
    assert main(["conform", run_id, "--url", url, "--library", str(library), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_the_api_answer_equals_skillmine_conform_json(mined, serve, get, capsys):
    url, library, runs = mined
    server = serve(url, run_answers={"conformance": conformance_answer(library)})
    assert get(server.url + "/api/answers") == (200, {"answers": ["conformance"]})
    failed = next(r for r, s in runs.items() if s == "failed")
    completed = [r for r, s in runs.items() if s == "completed"][:3]
    deviating = 0
    for run_id in [failed, *completed]:
        status, answer = get(f"{server.url}/api/runs/{run_id[:10]}/conformance")
        assert status == 200
        assert answer == conform_json(capsys, url, library, run_id)
        assert answer["run_id"] == run_id and answer["best"]["skill"].startswith("one_shot")
        deviating += bool(answer["best"]["deviations"])
    assert deviating >= 1
    assert get(server.url + "/api/runs/no-such-run/conformance")[0] == 404
    assert get(f"{server.url}/api/runs/{failed}/conformance?session_id=another")[0] == 404
    assert get(f"{server.url}/api/runs/{failed}/conformance?min=1")[0] == 400


def test_without_mounted_answers_there_is_no_conformance_route(mined, serve, get):
    url, _, runs = mined
    server = serve(url)
    assert get(server.url + "/api/answers") == (200, {"answers": []})
    status, body = get(f"{server.url}/api/runs/{next(iter(runs))}/conformance")
    assert status == 404 and body["error"].startswith("no such endpoint")


@pytest.mark.parametrize("name", ["events", "stream", "Conformance", "../x", "a/b", ""])
def test_answers_cannot_shadow_routes_or_leave_the_run_path(name):
    with pytest.raises(ValueError, match="cannot mount a run answer"):
        check_run_answers({name: conformance_answer(Path("."))})


@pytest.fixture
def cli_server(mined, tmp_path):
    """``skillmine trace serve`` as a user starts it (a real process), on a free port; yields its URL."""
    url, library, _ = mined
    env = {**os.environ, "SKILLMINE_HOME": str(tmp_path / "home")}
    env.pop("SKILLMINE_TRACE_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "skillmine.cli", "trace", "serve", "--port", "0", "--url", url,
                                "--library", str(library)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("trace API and timeline at "), line + process.stderr.read()
        yield line.split(" at ", 1)[1].split("/ ", 1)[0]
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def browser(tmp_path):
    yield from browser_for_test(str(tmp_path / "chromium-profile"))


def test_the_timeline_marks_the_events_a_deviation_names(mined, cli_server, browser, get, capsys):
    url, library, runs = mined
    failed = next(r for r, s in runs.items() if s == "failed")
    expected = conform_json(capsys, url, library, failed)
    assert get(f"{cli_server}/api/runs/{failed}/conformance") == (200, expected)
    named = {i for d in expected["best"]["deviations"] for i in d["event_ids"]}
    kinds = {i: {d["kind"] for d in expected["best"]["deviations"] if i in d["event_ids"]} for i in named}
    assert named

    browser.call("Page.enable")
    browser.call("Page.navigate", url=f"{cli_server}/runs/{failed}")
    browser.wait_for("!!document.getElementById('run-conformance')", timeout=15)
    marked = browser.evaluate("[...document.querySelectorAll('.row.deviates')].map(r => r.dataset.id)")
    assert set(marked) == named
    for event_id in named:
        badge = browser.evaluate(f"document.querySelector('#row-{event_id} .dev').textContent")
        assert set(badge.split(" · ")) == kinds[event_id]
    unmarked = browser.evaluate("document.querySelectorAll('.row:not(.deviates) .dev').length")
    assert unmarked == 0
    summary = browser.evaluate("document.getElementById('run-conformance').textContent")
    best = expected["best"]
    assert summary.startswith(f"{best['skill']} {best['version']} · fitness {best['fitness']:.3f}")
    assert f"{len(best['deviations'])} deviations" in summary
