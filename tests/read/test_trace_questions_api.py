"""The trace API gives the same answers as the CLI's ``--json`` for every trace question, on the real records."""

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from capture.read.trace_api.reader import open_read_only
from capture.read.trace_api.server import TraceServer
from skillmine.cli import main


@pytest.fixture
def api(real_url: str) -> Iterator[Any]:
    server = TraceServer(open_read_only(real_url), "127.0.0.1", 0).start()

    def get(route: str, **query: str) -> Any:
        url = server.url + route + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.loads(response.read())
    yield get
    server.stop()
    server.engine.dispose()


def cli_json(real_url: str, capsys: pytest.CaptureFixture, *argv: str) -> Any:
    assert main([*argv, "--json", "--url", real_url]) == 0
    return json.loads(capsys.readouterr().out)


def test_api_and_cli_answer_the_same(api, real_url, capsys):
    ask = lambda *argv: cli_json(real_url, capsys, *argv)
    plotting = ask("runs", "search", "plotting")
    assert plotting == api("/api/search", q="plotting") and plotting["total_runs"] > 0
    failed = ask("runs", "search", "--outcome", "failed", "--mode", "one_shot")
    assert failed == api("/api/search", outcome="failed", mode="one_shot")
    run_id = failed["runs"][0]["id"]
    assert ask("trace", "failure", run_id[:8]) == api(f"/api/runs/{run_id[:8]}/failure")
    assert ask("trace", "failure", run_id)["failure"]["kind"] == "judged"
    made = ask("trace", "file", "control/codebase/mobius_strip.py")
    assert made == api("/api/files/provenance", path="control/codebase/mobius_strip.py")
    pc_run = made["files"][0]["run"]["id"]
    assert ask("trace", "agents", pc_run) == api(f"/api/runs/{pc_run}/agents")
    assert ask("trace", "node", pc_run, "step_1") == api(f"/api/runs/{pc_run}/steps/step_1")
