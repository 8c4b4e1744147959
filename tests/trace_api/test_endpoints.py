"""Every trace API endpoint over HTTP against a real server and a real SQLite store: shapes, values, errors."""

import urllib.request

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

FIG_HASH = "ab" * 32
LIGHT_KEYS = {"id", "seq", "parent_event_id", "node_id", "event_type", "event_subtype", "agent_name", "status",
              "execution_order", "depth", "timestamp", "started_at", "completed_at", "duration_ms", "error_message",
              "tokens", "cost_usd"}
EVENT_KEYS = {"seq", "id", "run_id", "node_id", "step_id", "session_id", "parent_event_id", "event_type",
              "event_subtype", "agent_name", "agent_role", "timestamp", "started_at", "completed_at", "duration_ms",
              "inputs", "outputs", "error_message", "meta", "execution_order", "depth", "status", "tokens", "cost_usd"}


def test_runs_lists_recent_runs_with_counts_and_cost(server, get):
    status, body = get(server.url + "/api/runs")
    assert status == 200
    assert body["total_runs"] == 2 and body["session_id"] is None
    first, second = body["runs"]
    assert (first["id"], second["id"]) == ("run-1", "run-2")  # newest first
    assert {k: first[k] for k in ("session_id", "mode", "status", "total_events", "failed_events", "max_seq",
                                  "total_tokens", "total_cost_usd", "task_description")} == {
        "session_id": "sess-a", "mode": "one_shot", "status": "failed", "total_events": 6, "failed_events": 1,
        "max_seq": 6, "total_tokens": 150, "total_cost_usd": 0.0042, "task_description": "plot a power spectrum"}
    assert (second["total_events"], second["total_cost_usd"], second["mode"]) == (1, 0.0, "planning_and_control")
    assert get(server.url + "/api/runs?session_id=sess-b")[1]["runs"][0]["id"] == "run-2"
    assert get(server.url + "/api/runs?limit=1")[1]["total_runs"] == 1


def test_run_detail_has_nodes_files_statistics_and_max_seq(server, get):
    status, body = get(server.url + "/api/runs/run-1")
    assert status == 200
    assert body["run"]["status"] == "failed" and body["max_seq"] == 6
    assert [n["id"] for n in body["nodes"]] == ["n-eng", "n-exe"]
    assert [f["file_path"] for f in body["files"]] == ["plots/fig.png", "codebase/analysis.py"]
    assert body["statistics"] == {
        "total_events": 6, "event_types": {"agent_call": 2, "code_exec": 1, "file_gen": 1, "llm_call": 1,
                                           "tool_call": 1},
        "agents_involved": ["engineer", "executor"], "agent_call_counts": {"engineer": 1, "executor": 1},
        "events_by_agent": {"engineer": 4, "executor": 2}, "total_duration_ms": 12000,
        "avg_duration_ms": 2400.0, "timed_events": 5}


def test_run_events_are_ordered_and_filterable(server, get):
    status, body = get(server.url + "/api/runs/run-1/events")
    assert status == 200 and body["run_id"] == "run-1" and body["total_events"] == 6
    assert [e["id"] for e in body["events"]] == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert set(body["events"][0]) == EVENT_KEYS
    assert body["events"][5]["error_message"] == "ZeroDivisionError: division by zero"
    ids = lambda query: [e["id"] for e in get(server.url + "/api/runs/run-1/events?" + query)[1]["events"]]
    assert ids("event_type=agent_call") == ["e1", "e5"]
    assert ids("agent_name=executor") == ["e5", "e6"]
    assert ids("event_type=code_exec&agent_name=executor") == ["e6"]
    assert ids("limit=2") == ["e1", "e2"]
    light = get(server.url + "/api/runs/run-1/events?payloads=false")[1]["events"]
    assert set(light[0]) == LIGHT_KEYS and [e["id"] for e in light] == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert light[5]["error_message"] == "ZeroDivisionError: division by zero"
    assert [(e["tokens"], e["cost_usd"]) for e in light[:3]] == [(0, 0.0), (150, 0.0042), (0, 0.0)]


def test_node_events_files_and_summary_have_the_reference_shapes(server, get):
    status, body = get(server.url + "/api/nodes/n-eng/events")
    assert status == 200 and set(body) == {"node_id", "total_events", "events"}
    assert (body["node_id"], body["total_events"]) == ("n-eng", 4)
    assert [e["id"] for e in body["events"]] == ["e1", "e2", "e3", "e4"]
    assert [e["id"] for e in get(server.url + "/api/nodes/n-eng/events?event_type=llm_call")[1]["events"]] == ["e2"]

    status, files = get(server.url + "/api/nodes/n-exe/files")
    assert status == 200 and (files["node_id"], files["total_files"]) == ("n-exe", 1)
    assert {k: files["files"][0][k] for k in ("id", "file_path", "file_type", "size_bytes", "event_id")} == {
        "id": "f-code", "file_path": "codebase/analysis.py", "file_type": "code", "size_bytes": 42, "event_id": "e6"}

    status, summary = get(server.url + "/api/nodes/n-exe/execution-summary")
    assert status == 200
    assert summary["total_events"] == 2 and summary["agent_call_counts"] == {"executor": 1}
    assert summary["success_metrics"] == {"completion_rate": 0.5, "error_count": 1, "failed_count": 1,
                                          "completed_count": 1, "retry_count": 0}
    assert summary["timing"]["duration_seconds"] == 3.0 and summary["files_by_type"] == {"code": 1}
    eng = get(server.url + "/api/nodes/n-eng/execution-summary")[1]
    assert eng["cost_summary"] == {"total_tokens": 150, "total_cost_usd": 0.0042,
                                   "by_agent": {"engineer": {"tokens": 150, "cost": 0.0042}}}
    assert eng["messages_count"] == 1


def test_event_tree_and_event_details(server, get):
    status, body = get(server.url + "/api/events/e1/tree")
    assert status == 200 and (body["root_event_id"], body["total_events"]) == ("e1", 4)
    assert [(e["id"], e["level"], e["depth"], e["parent_event_id"]) for e in body["tree"]] == [
        ("e1", 0, 0, None), ("e2", 1, 1, "e1"), ("e3", 1, 1, "e1"), ("e4", 2, 2, "e3")]
    assert set(body["tree"][0]) == LIGHT_KEYS | {"level"}
    assert (body["tree"][1]["event_type"], body["tree"][1]["duration_ms"]) == ("llm_call", 1000)

    status, detail = get(server.url + "/api/events/e1")
    assert status == 200 and detail["event"]["inputs"] == {"task": "plot a power spectrum"}
    assert [(m["sender"], m["recipient"], m["content"]) for m in detail["messages"]] == [
        ("engineer", "executor", "please run analysis.py")]
    assert [f["id"] for f in get(server.url + "/api/events/e4")[1]["files"]] == ["f-fig"]


def test_file_provenance_by_path_and_hash(server, get):
    status, body = get(server.url + "/api/files/provenance?path=fig.png")
    assert status == 200 and body["total_files"] == 1
    match = body["files"][0]
    assert (match["agent"], match["agent_source"], match["path"]) == ("engineer", "file record", "plots/fig.png")
    assert (match["event"]["id"], match["event"]["event_type"]) == ("e4", "file_gen")
    assert (match["node"]["id"], match["node"]["name"]) == ("n-eng", "step_1")
    assert (match["run"]["id"], match["content_hash"]) == ("run-1", FIG_HASH)
    by_hash = get(server.url + f"/api/files/provenance?sha256={FIG_HASH}")[1]
    assert [m["path"] for m in by_hash["files"]] == ["plots/fig.png"]


def test_failure_chain_names_the_failed_code_run_and_its_ancestors(server, get):
    status, body = get(server.url + "/api/runs/run-1/failure")
    assert status == 200
    chain = body["failure"]
    assert (body["run_status"], chain["kind"], chain["failed_event"]["id"]) == ("failed", "event", "e6")
    assert [a["id"] for a in chain["ancestors"]] == ["e5"]
    assert chain["node"]["id"] == "n-exe"
    assert chain["sequence"] == ["agent_call:executor", "code_exec:executor"]
    assert get(server.url + "/api/runs/run-2/failure")[1] == {"run_id": "run-2", "run_status": "completed",
                                                              "failure": None}


@pytest.mark.parametrize("path, kind, ident", [
    ("/api/runs/nope", "run", "nope"),
    ("/api/runs/nope/events", "run", "nope"),
    ("/api/runs/nope/stream", "run", "nope"),
    ("/api/nodes/n-x/events", "node", "n-x"),
    ("/api/nodes/n-x/execution-summary", "node", "n-x"),
    ("/api/events/e-x/tree", "event", "e-x"),
    ("/api/files/provenance?path=missing.csv", "file", "missing.csv"),
    ("/api/runs/run-1?session_id=sess-b", "run", "run-1"),
])
def test_missing_ids_are_404_naming_the_id(server, get, path, kind, ident):
    status, body = get(server.url + path)
    assert status == 404
    assert (body["kind"], body["id"]) == (kind, ident)
    assert repr(ident) in body["error"]


def test_unknown_route_is_404(server, get):
    assert get(server.url + "/api/nothing") == (404, {"error": "no such endpoint: /api/nothing"})


@pytest.mark.parametrize("path, parameter", [
    ("/api/runs?limit=abc", "limit"),
    ("/api/runs?limit=0", "limit"),
    ("/api/runs/run-1/events?event_type=bogus", "event_type"),
    ("/api/runs/run-1/events?colour=red", "colour"),
    ("/api/runs/run-1/events?payloads=maybe", "payloads"),
    ("/api/files/provenance", "path"),
    ("/api/runs/run-1/stream?after_seq=-1", "after_seq"),
])
def test_bad_parameters_are_400_naming_the_parameter(server, get, path, parameter):
    status, body = get(server.url + path)
    assert status == 400
    assert body["parameter"] == parameter and repr(parameter) in body["error"]


def test_store_failure_is_503_without_a_traceback(server, get, writer):
    with writer.engine.begin() as conn:
        conn.execute(text("DROP TABLE messages"))
    status, body = get(server.url + "/api/events/e1")
    assert (status, body) == (503, {"error": "the capture store cannot be read now"})
    assert get(server.url + "/api/runs/run-1/events")[0] == 200  # the rest still answers


def test_server_connections_cannot_write(server, get):
    with server.engine.connect() as conn, pytest.raises(OperationalError, match="readonly|read-only"):
        conn.execute(text("DELETE FROM execution_events"))
    assert get(server.url + "/api/runs/run-1")[1]["statistics"]["total_events"] == 6


@pytest.mark.parametrize("path", ["/", "/runs/run-1"])
def test_timeline_page_is_served(server, path):
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        page = response.read().decode()
    assert "<title>skillmine trace</title>" in page and "EventSource" in page
