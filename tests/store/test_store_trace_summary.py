"""Trace questions, file registration/provenance and node execution summaries, on SQLite and PostgreSQL."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from capture.core.files import classify_file, sha256_file
from capture.read import queries
from capture.read.files import file_provenance
from capture.read.summary import compute_node_summary, summarise_node, summarise_run_nodes
from capture.read.trace import (
    agent_call_count,
    failure_chain,
    file_generated_by,
    flatten_flow,
    node_execution_flow,
)
from capture.store.capture_store import Batch
from capture.store.files import register_file
from capture.store.records import BadRecord

T0 = datetime(2026, 1, 19, 12, 0, tzinfo=UTC)
S, R = "sess", "run-1"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(id_, order, etype, agent=None, **kw):
    return {"id": id_, "run_id": R, "session_id": S, "event_type": etype, "agent_name": agent,
            "execution_order": order, "timestamp": at(order), **kw}


@pytest.fixture
def pc_run(store):
    """A P&C-like run: planning node, a step with a retry loop (code fails, then succeeds), a failing step."""
    store.write_batch(Batch(
        runs=[{"id": R, "session_id": S, "mode": "planning_and_control", "status": "failed"}],
        nodes=[{"id": "n-plan", "run_id": R, "session_id": S, "node_type": "planning", "agent": "planner",
                "order_index": 0, "meta": {"id": "planning", "label": "Planning"}},
               {"id": "n-step1", "run_id": R, "session_id": S, "node_type": "agent", "agent": "engineer",
                "order_index": 1, "meta": {"id": "step_1"}},
               {"id": "n-step2", "run_id": R, "session_id": S, "node_type": "agent", "agent": "researcher",
                "order_index": 2, "meta": {"id": "step_2"}}],
        events=[
            ev("p1", 1, "agent_call", "planner", node_id="n-plan", duration_ms=3000, started_at=at(1),
               completed_at=at(4), meta={"tokens": 100, "cost_usd": 0.01}),
            ev("h1", 2, "handoff", "planner", event_subtype="speaker_selection", node_id="n-plan"),
            ev("a1", 10, "agent_call", "engineer", node_id="n-step1", duration_ms=4000, started_at=at(10),
               completed_at=at(14), meta={"prompt_tokens": 200, "completion_tokens": 50, "cost_usd": 0.02}),
            ev("c1", 11, "code_exec", "executor", event_subtype="error", node_id="n-step1", parent_event_id="a1",
               depth=1, status="failed", duration_ms=500, error_message="NameError: x"),
            ev("x1", 12, "error", "executor", event_subtype="runtime_error", node_id="n-step1",
               parent_event_id="a1", depth=1, status="failed"),
            ev("c2", 13, "code_exec", "executor", event_subtype="complete", node_id="n-step1",
               parent_event_id="a1", depth=1, duration_ms=700),
            ev("f1", 14, "file_gen", "executor", event_subtype="create", node_id="n-step1", parent_event_id="c2",
               depth=2),
            ev("a2", 15, "agent_call", "engineer", node_id="n-step1", duration_ms=1000, started_at=at(15),
               completed_at=at(16), meta={"total_tokens": 30, "cost_usd": "0.005"}),
            ev("a3", 20, "agent_call", "researcher", node_id="n-step2", status="failed",
               event_subtype="error", error_message="429 rate limit"),
        ],
        messages=[{"run_id": R, "session_id": S, "event_id": "a1", "node_id": "n-step1", "sender": "engineer",
                   "recipient": "executor", "content": "run this"},
                  {"run_id": R, "session_id": S, "event_id": "a2", "node_id": "n-step1", "sender": "engineer",
                   "recipient": "control", "content": "done"}],
    ))
    return store


def test_node_execution_flow_nested(pc_run):
    flow = node_execution_flow(pc_run, S, "n-step1")
    assert [e["id"] for e in flow] == ["a1", "a2"]
    assert [c["id"] for c in flow[0]["children"]] == ["c1", "x1", "c2"]
    assert [c["id"] for c in flow[0]["children"][2]["children"]] == ["f1"]
    assert [(lvl, e["id"]) for lvl, e in flatten_flow(flow)] == [
        (0, "a1"), (1, "c1"), (1, "x1"), (1, "c2"), (2, "f1"), (0, "a2")]
    assert node_execution_flow(pc_run, "other", "n-step1") == []


def test_agent_call_count(pc_run):
    assert agent_call_count(pc_run, S, R, "engineer") == 2
    assert agent_call_count(pc_run, S, R, "planner") == 1
    assert agent_call_count(pc_run, S, R, "executor") == 0  # code_exec, not agent_call
    assert agent_call_count(pc_run, "other", R, "engineer") == 0


def test_failure_chain(pc_run):
    chain = failure_chain(pc_run, S, R)
    assert chain["failed_event"]["id"] == "c1"
    assert [a["id"] for a in chain["ancestors"]] == ["a1"]
    assert [e["id"] for e in chain["preceding"]] == ["a1"]  # same node, before it
    assert chain["node"]["id"] == "n-step1" and chain["node"]["meta"]["id"] == "step_1"
    assert chain["sequence"] == ["agent_call:engineer", "code_exec:executor"]


def test_failure_chain_without_node_and_without_failure(store):
    store.write_batch(Batch(events=[ev("e1", 1, "agent_call", "engineer"), ev("e2", 2, "tool_call", "engineer",
                                                                               parent_event_id="e1", depth=1),
                                     ev("e3", 3, "tool_call", "engineer", parent_event_id="e1", depth=1,
                                        status="failed")]))
    chain = failure_chain(store, S, R)
    assert chain["failed_event"]["id"] == "e3" and chain["node"] is None
    assert [e["id"] for e in chain["preceding"]] == ["e1", "e2"]
    assert [a["id"] for a in chain["ancestors"]] == ["e1"]
    assert failure_chain(store, S, "no-run") is None


def test_classify_file():
    cases = {
        "planning/final_plan.json": "plan", "plan.json": "plan", "cost_report_2026.json": "report",
        "timing_report.csv": "report", "control/codebase/util.json": "code", "chats/chat_history.json": "chat",
        "context/context_step_1.pkl": "context", "data/spectrum.csv": "data", "out/cl.npy": "data",
        "map.fits": "data", "x.parquet": "data", "results.h5": "data", "fig/plot_1.png": "plot",
        "fig/plot.PDF": "plot", "summary.md": "report", "notes.txt": "report", "run.py": "code",
        "install.sh": "code", "session.log": "log", "weird.xyz": "other", "Makefile": "other",
    }
    assert {p: classify_file(p) for p in cases} == cases


def test_register_file_and_provenance(pc_run, tmp_path):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    target = work / "data" / "result.csv"
    target.write_text("a,b\n1,2\n")
    row = register_file(pc_run, S, R, target, root=work, event_id="f1", node_id="n-step1", agent="executor")
    assert row["file_path"] == "data/result.csv" and row["file_type"] == "data"
    assert row["size_bytes"] == 8
    assert row["content_hash"] == sha256_file(target) == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    again = register_file(pc_run, S, R, "data/result.csv", root=work, event_id="f1", node_id="n-step1",
                          agent="executor")
    assert again["id"] == row["id"]
    assert len(queries.files_for_node(pc_run, S, "n-step1")) == 1

    (prov,) = file_provenance(pc_run, S, path="data/result.csv")
    assert prov["agent"] == "executor"
    assert prov["event"]["id"] == "f1" and prov["event"]["event_type"] == "file_gen"
    assert prov["node"] == {"id": "n-step1", "short_id": "step_1", "node_type": "agent", "agent": "engineer"}
    assert file_provenance(pc_run, S, path="result.csv")[0]["file"]["id"] == row["id"]  # path ending
    assert file_provenance(pc_run, S, content_hash=row["content_hash"])[0]["file"]["id"] == row["id"]
    assert file_provenance(pc_run, "other", path="data/result.csv") == []
    assert file_provenance(pc_run, S, path="%.csv") == []  # LIKE wildcards are escaped
    assert file_generated_by(pc_run, S, "data/result.csv") == "executor"
    assert file_generated_by(pc_run, S, row["content_hash"]) == "executor"
    assert file_generated_by(pc_run, S, "nope.csv") is None


def test_register_file_agent_from_event_and_missing_file(pc_run, tmp_path):
    f = tmp_path / "fig.png"
    f.write_bytes(b"\x89PNG")
    register_file(pc_run, S, R, f, event_id="f1")
    assert file_generated_by(pc_run, S, f.as_posix()) == "executor"  # from the event's agent
    with pytest.raises(BadRecord, match="missing.png"):
        register_file(pc_run, S, R, tmp_path / "missing.png")


def test_node_summary_exact(pc_run, tmp_path):
    (tmp_path / "a.py").write_text("print(1)")
    (tmp_path / "b.png").write_bytes(b"png")
    register_file(pc_run, S, R, tmp_path / "a.py", root=tmp_path, event_id="f1", node_id="n-step1")
    register_file(pc_run, S, R, tmp_path / "b.png", root=tmp_path, event_id="f1", node_id="n-step1")
    summary = compute_node_summary(pc_run, S, "n-step1")
    assert summary == {
        "total_events": 6,
        "event_types": {"agent_call": 2, "code_exec": 2, "error": 1, "file_gen": 1},
        "agents_involved": ["engineer", "executor"],
        "agent_call_counts": {"engineer": 2},
        "files_generated": 2,
        "files_by_type": {"code": 1, "plot": 1},
        "messages_count": 2,
        "timing": {"started_at": "2026-01-19T12:00:10+00:00", "completed_at": "2026-01-19T12:00:16+00:00",
                   "duration_seconds": 6.0, "agent_time_breakdown": {"engineer": 5.0}},
        "cost_summary": {"total_tokens": 280, "total_cost_usd": 0.025,
                         "by_agent": {"engineer": {"tokens": 280, "cost": 0.025}}},
        "success_metrics": {"completion_rate": round(4 / 6, 4), "error_count": 2, "failed_count": 2,
                            "completed_count": 4, "retry_count": 1},
    }


def test_summarise_run_nodes_writes_meta_and_keeps_other_keys(pc_run):
    out = summarise_run_nodes(pc_run, S, R)
    assert list(out) == ["n-plan", "n-step1", "n-step2"]
    plan = queries.get_node(pc_run, S, "n-plan")
    assert plan["meta"]["id"] == "planning" and plan["meta"]["label"] == "Planning"
    stored = plan["meta"]["execution_summary"]
    assert stored["total_events"] == 2 and stored["agent_call_counts"] == {"planner": 1}
    assert stored["cost_summary"] == {"total_tokens": 100, "total_cost_usd": 0.01,
                                      "by_agent": {"planner": {"tokens": 100, "cost": 0.01}}}
    assert stored["success_metrics"]["completion_rate"] == 1.0
    step2 = queries.get_node(pc_run, S, "n-step2")["meta"]["execution_summary"]
    assert step2["success_metrics"] == {"completion_rate": 0.0, "error_count": 1, "failed_count": 1,
                                        "completed_count": 0, "retry_count": 0}
    # recomputing is stable (idempotent) and still keeps the short id
    summarise_node(pc_run, S, "n-plan")
    assert queries.get_node(pc_run, S, "n-plan")["meta"]["execution_summary"] == stored


def test_summary_llm_tokens_not_double_counted_and_cost_records_fallback(store):
    store.write_batch(Batch(
        nodes=[{"id": "n1", "run_id": R, "session_id": S}, {"id": "n2", "run_id": R, "session_id": S}],
        events=[ev("a", 1, "agent_call", "engineer", node_id="n1", meta={"tokens": 150}),
                ev("l1", 2, "llm_call", "engineer", node_id="n1", parent_event_id="a", depth=1,
                   meta={"tokens": 100, "cost_usd": 0.1}),
                ev("l2", 3, "llm_call", "engineer", node_id="n1", parent_event_id="a", depth=1,
                   meta={"tokens": 50, "cost_usd": 0.05, "model": "gpt"}),
                ev("b", 4, "agent_call", "planner", node_id="n2", meta={"model": "gpt", "tokens": float("nan")})],
        costs=[{"run_id": R, "session_id": S, "node_id": "n2", "agent_name": "planner", "total_tokens": 70,
                "cost_usd": 0.07}, {"run_id": R, "session_id": S, "node_id": "n2", "agent_name": None,
                                    "total_tokens": 5, "cost_usd": 0.001}]))
    n1 = compute_node_summary(store, S, "n1")["cost_summary"]
    assert n1 == {"total_tokens": 150, "total_cost_usd": 0.15,
                  "by_agent": {"engineer": {"tokens": 150, "cost": 0.15}}}
    n2 = compute_node_summary(store, S, "n2")["cost_summary"]
    assert n2 == {"total_tokens": 75, "total_cost_usd": 0.071,
                  "by_agent": {"planner": {"tokens": 70, "cost": 0.07}, "unknown": {"tokens": 5, "cost": 0.001}}}


def test_summary_of_empty_node(store):
    store.write_batch(Batch(nodes=[{"id": "n0", "run_id": R, "session_id": S}]))
    summary = summarise_node(store, S, "n0")
    assert summary["total_events"] == 0 and summary["timing"]["duration_seconds"] is None
    assert summary["success_metrics"]["completion_rate"] == 0.0
    with pytest.raises(KeyError):
        summarise_node(store, "other", "n0")
