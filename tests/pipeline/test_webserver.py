"""A real dagster-webserver serving workspace.yaml answers GraphQL with every asset, check, job, schedule, sensor."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_definitions import ASSETS, CHECKS

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {**os.environ, "DAGSTER_HOME": str(home), "SKILLMINE_HOME": str(tmp_path / "data")}
    exe = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen([str(exe), "-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"dagster-webserver exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/server_info", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not answer /server_info within {DEADLINE_S} s")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _graphql(base: str, query: str) -> dict:
    request = urllib.request.Request(f"{base}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert "errors" not in body, body
        if body["data"] and (body["data"].get("assetNodes") or "repositoriesOrError" in body["data"]):
            return body["data"]
        if time.monotonic() > deadline:
            return body["data"]
        time.sleep(0.2)


def test_graphql_lists_every_asset_check_job_schedule_and_sensor(webserver: str):
    data = _graphql(webserver, "{ assetNodes { assetKey { path } groupName kinds hasAssetChecks "
                               "assetChecksOrError { ... on AssetChecks { checks { name } } } } }")
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == ASSETS
    assert nodes["raw_agent_events"]["groupName"] == "extract"
    assert "duckdb" in nodes["sequence_clusters"]["kinds"]
    checks = {c["name"] for n in nodes.values() for c in n["assetChecksOrError"].get("checks", [])}
    assert checks == CHECKS
    repos = _graphql(webserver, "{ repositoriesOrError { ... on RepositoryConnection { nodes { name "
                                "location { name } jobs { name } schedules { name cronSchedule } "
                                "sensors { name minIntervalSeconds } } } } }")
    (repo,) = repos["repositoriesOrError"]["nodes"]
    assert repo["location"]["name"] == "skill_pipeline"
    assert "mine_skills_job" in {j["name"] for j in repo["jobs"]}
    assert repo["schedules"] == [{"name": "mine_skills_schedule", "cronSchedule": "0 * * * *"}]
    assert sorted(repo["sensors"], key=lambda s: s["name"]) == [
        {"name": "new_events_sensor", "minIntervalSeconds": 60},
        {"name": "new_modes_sensor", "minIntervalSeconds": 300}]
