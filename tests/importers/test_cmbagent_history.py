"""The chat-history importer on the real upstream histories, MARS session folders and the idea-generation task."""

import json
import shutil
from collections import Counter
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from sqlalchemy import func, select

from capture.importers import SourceError, import_cmbagent_history
from capture.store.capture_store import CaptureStore
from capture.store.models import CostRecord, DagNode, ExecutionEvent, File, Message, WorkflowRun

STOCK = "anon_planning_and_control_download_stock_prices_of_tech_bigs_of_US_chat_history.json"


def cmbagent(data: Path) -> Path:
    return data / "cmbagent"


def agent_sequence(store: CaptureStore, run_id: str) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(ExecutionEvent.agent_name)
                                 .where(ExecutionEvent.run_id == run_id, ExecutionEvent.event_type == "agent_call")
                                 .order_by(ExecutionEvent.execution_order)).scalars())


def test_every_upstream_turn_matches_the_derived_call_sequences(sqlite_store: CaptureStore, data: Path) -> None:
    report = import_cmbagent_history(cmbagent(data) / "upstream_cmbagent_history", sqlite_store)
    assert report.runs_written == 26
    assert dict(report.unmapped) == {"assistant turn without agent calls": 1, "history without a recorded answer": 2}
    derived = json.loads((cmbagent(data) / "derived_agent_call_sequences.json").read_text())
    with sqlite_store.engine.connect() as conn:
        runs = {(r.meta["source"], r.meta["message_index"]): r for r in conn.execute(select(WorkflowRun))}
        for turn in derived:
            run = runs[(turn["source_file"], turn["message_index"])]
            assert agent_sequence(sqlite_store, run.id) == [c["agent"] for c in turn["calls"]]
            costs = conn.execute(select(func.count(), func.sum(CostRecord.cost_usd))
                                 .where(CostRecord.run_id == run.id)).one()
            priced = [c for c in turn["calls"] if "cost_usd" in c]
            assert costs[0] == len(priced)
            if priced:
                assert costs[1] == sum(Decimal(str(c["cost_usd"])) for c in priced)
            assert run.meta["elapsed_seconds"] == turn["elapsed_seconds"]
    assert sum(len(t["calls"]) for t in derived) == 193


def test_stock_prices_run_rebuilds_calls_handoffs_code_and_detours(sqlite_store: CaptureStore, data: Path) -> None:
    import_cmbagent_history(cmbagent(data) / "upstream_cmbagent_history" / STOCK, sqlite_store)
    with sqlite_store.engine.connect() as conn:
        run = conn.execute(select(WorkflowRun)).one()
        events = conn.execute(select(ExecutionEvent).where(ExecutionEvent.run_id == run.id)
                              .order_by(ExecutionEvent.execution_order)).all()
    calls = [e for e in events if e.event_type == "agent_call"]
    assert (run.mode, run.status, run.meta["elapsed_seconds"], len(calls)) == ("planning_and_control", "completed",
                                                                               559.79, 73)
    assert calls[0].agent_name == "plan_setter" and calls[-1].agent_name == "terminator"
    assert calls[0].meta == {"model": "gpt-4.1-2025-04-14", "cost_usd": 0.00138, "prompt_tokens": 209,
                             "completion_tokens": 12, "total_tokens": 221, "no_source_time": True}
    llm = [e for e in events if e.event_type == "llm_call"]
    assert len(llm) == sum(1 for c in calls if "cost_usd" in c.meta)
    assert llm[0].parent_event_id == calls[0].id and llm[0].meta["total_tokens"] == 221
    changes = sum(1 for a, b in pairwise(calls) if a.agent_name != b.agent_name)
    assert Counter(e.event_type for e in events)["handoff"] == changes == 66
    code = [e for e in events if e.event_type == "code_exec"]
    assert len(code) == sum(1 for c in calls if c.agent_name in ("executor", "executor_bash")) == 12
    assert sum(1 for e in code if e.status == "failed") == 3
    errors = [e for e in events if e.event_type == "error"]
    assert [e.error_message for e in errors][:2] == ["ModuleNotFoundError: No module named 'seaborn'",
                                                    "ModuleNotFoundError: No module named 'openpyxl'"]
    assert all(e.depth == 1 and e.parent_event_id for e in errors + code)
    assert Counter(c.agent_name for c in calls if (c.meta or {}).get("path") == "dependency_fix") == \
        {"installer": 2, "executor_bash": 2}


def test_session_folders_follow_the_log(sqlite_store: CaptureStore, data: Path) -> None:
    report = import_cmbagent_history(cmbagent(data) / "mars_sessions_2026-02-18", sqlite_store)
    assert report.runs_written == 10 and dict(report.unmapped) == {}
    with sqlite_store.engine.connect() as conn:
        shape = Counter((r.mode, r.status) for r in conn.execute(select(WorkflowRun.mode, WorkflowRun.status)))
        assert shape == {("one_shot", "completed"): 3, ("planning_and_control", "completed"): 5,
                         ("human_in_the_loop", "executing"): 1, ("idea_generation", "failed"): 1}
        failed = conn.execute(select(WorkflowRun.id).where(WorkflowRun.status == "failed")).scalar_one()
        error = conn.execute(select(ExecutionEvent).where(ExecutionEvent.run_id == failed,
                                                          ExecutionEvent.event_type == "error")).one()
        assert error.event_subtype == "rate_limit" and "429" in error.error_message
        # the cost reports of the 10 runs are the 89797ef database's 101 cost records, to the cent
        assert conn.execute(select(func.count(), func.sum(CostRecord.cost_usd))).one() == (101, Decimal("6.068800"))
        names = Counter(m["tool_name"] for m in conn.execute(
            select(ExecutionEvent.meta).where(ExecutionEvent.event_type == "tool_call")).scalars())
        one_shot = conn.execute(select(WorkflowRun).where(WorkflowRun.mode == "one_shot",
                                                          WorkflowRun.meta["task_id"].as_string()
                                                          == "task_1771405087092_x36p0w44p")).one()
    assert not any(n.endswith("_closure") for n in names)
    assert {"record_status", "terminate_session", "post_execution_transfer", "record_plan"} <= set(names)
    assert one_shot.meta["execution_time_s"] == 19.04 and one_shot.task_description == \
        "Plot a 3D Möbius strip using matplotlib."
    assert agent_sequence(sqlite_store, one_shot.id) == [
        "engineer", "engineer_nest", "engineer_response_formatter", "executor", "engineer_nest",
        "executor_response_formatter", "control", "terminator"]  # the nested chat hands its result back


def test_idea_generation_task_folder(sqlite_store: CaptureStore, data: Path) -> None:
    report = import_cmbagent_history(cmbagent(data) / "mars_idea_generation_task", sqlite_store)
    assert (report.runs_written, report.nodes, report.edges, report.files) == (1, 7, 6, 18)
    with sqlite_store.engine.connect() as conn:
        run = conn.execute(select(WorkflowRun)).one()
        steps = conn.execute(select(DagNode.agent).where(DagNode.node_type == "agent")
                             .order_by(DagNode.order_index)).scalars().all()
        ideas = conn.execute(select(File).where(File.file_path.like("control/ideas_%"))).all()
        tools = Counter(m["tool_name"] for m in conn.execute(
            select(ExecutionEvent.meta).where(ExecutionEvent.event_type == "tool_call")).scalars())
        models = set(conn.execute(select(CostRecord.model)).scalars())
        step_messages = conn.execute(select(func.count()).select_from(Message)
                                     .where(Message.node_id.is_not(None))).scalar_one()
    assert (run.mode, run.stage_name, run.status, run.meta["source_run_id"]) == \
        ("idea_generation", "idea_generation", "completed", "a65e0e35-855e-4b01-a2fa-34e932716ec4")
    assert steps == ["idea_maker", "idea_hater", "idea_maker", "idea_hater", "idea_maker", "idea_maker"]
    assert len(ideas) == 4 and all(f.event_id and f.file_type == "data" and len(f.content_hash) == 64
                                   for f in ideas)
    assert set(tools) == {"record_status", "record_status_starter", "terminate_session"}  # the chats hold no idea_saver turn
    assert models == {"gpt-4.1-2025-04-14", "o3-mini-2025-01-31", "gpt-4o-2024-08-06"}
    assert step_messages == report.messages


def test_importing_twice_changes_nothing(sqlite_store: CaptureStore, data: Path, row_counts) -> None:
    for name in ("upstream_cmbagent_history", "mars_sessions_2026-02-18", "mars_idea_generation_task"):
        import_cmbagent_history(cmbagent(data) / name, sqlite_store)
    before = row_counts(sqlite_store)
    again = import_cmbagent_history(cmbagent(data), sqlite_store)
    assert (again.runs_written, again.runs_skipped) == (0, 26 + 10 + 1)
    assert row_counts(sqlite_store) == before


def test_truncated_history_and_broken_log_are_named(sqlite_store: CaptureStore, data: Path, tmp_path: Path,
                                                    row_counts) -> None:
    source = cmbagent(data) / "upstream_cmbagent_history"
    folder = tmp_path / "histories"
    folder.mkdir()
    shutil.copy(source / STOCK, folder / "b_chat_history.json")
    (folder / "c_chat_history.json").write_text((source / STOCK).read_text()[:5000])
    with pytest.raises(SourceError, match=r"c_chat_history\.json: invalid JSON at line \d+, column \d+ "
                                          r"\(character 3936\): Unterminated string") as caught:
        import_cmbagent_history(folder, sqlite_store)
    assert caught.value.report.runs_written == 1 and row_counts(sqlite_store)["workflow_runs"] == 1
    before = row_counts(sqlite_store)
    session = tmp_path / "broken-session"
    session.mkdir()
    (session / "session.log").write_text("garbage without a record\n[2026-02-18 08:58:07.423] [run.started] [t]\n")
    with pytest.raises(SourceError, match=r"session\.log: line 1: not a session log record"):
        import_cmbagent_history(session, sqlite_store)
    with pytest.raises(SourceError, match=r"not a CMBAgent chat history"):
        import_cmbagent_history(cmbagent(data) / "derived_agent_call_sequences.json", sqlite_store)
    assert row_counts(sqlite_store) == before
