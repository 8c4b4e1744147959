"""The AG2 runtime-logging importer on databases written by real AG2 agents with a scripted offline model."""

import sqlite3
from decimal import Decimal
from pathlib import Path

import autogen
import pytest
from autogen import ConversableAgent, register_function
from sqlalchemy import func, select

from capture.importers import SourceError, import_ag2_log
from capture.store.capture_store import CaptureStore
from capture.store.models import CostRecord, ExecutionEvent, Message, WorkflowRun
from workloads.scripted_llm import Script, ToolCall, Turn, scripted_llm_config, use_script


def add(a: int, b: int) -> int:
    """The tool the scripted assistant calls."""
    return a + b


def logged_chat(dbname: Path, question: str, a: int, b: int) -> str:
    """Run a two-agent tool chat under AG2 runtime logging; returns AG2's session id."""
    script = Script([
        Turn(tool_calls=(ToolCall("add", {"a": a, "b": b}, id="call_1"),), prompt_tokens=100, completion_tokens=10,
             cost_usd=0.01),
        Turn(content=f"The sum is {a + b}. TERMINATE", prompt_tokens=150, completion_tokens=8, cost_usd=0.02),
    ])
    session_id = autogen.runtime_logging.start(logger_type="sqlite", config={"dbname": str(dbname)})
    try:
        assistant = use_script(ConversableAgent("assistant", llm_config=scripted_llm_config()), script)
        user = ConversableAgent("user", llm_config=False, human_input_mode="NEVER",
                                is_termination_msg=lambda m: "TERMINATE" in (m.get("content") or ""))
        register_function(add, caller=assistant, executor=user, description="add two numbers")
        user.initiate_chat(assistant, message=question, max_turns=3, silent=True)
    finally:
        autogen.runtime_logging.stop()
    return session_id


@pytest.fixture(scope="module")
def ag2_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    path = tmp_path_factory.mktemp("ag2") / "runtime.db"
    sessions = [logged_chat(path, "What is 2 + 3?", 2, 3), logged_chat(path, "What is 4 + 5?", 4, 5)]
    return path, sessions


def test_each_ag2_session_becomes_a_run_with_calls_llm_tools_and_messages(
        sqlite_store: CaptureStore, ag2_log: tuple[Path, list[str]]) -> None:
    path, sessions = ag2_log
    report = import_ag2_log(path, sqlite_store)
    assert (report.runs_written, report.events, report.messages, report.costs) == (2, 24, 8, 4)
    assert dict(report.unmapped) == {}
    with sqlite_store.engine.connect() as conn:
        runs = {r.meta["ag2_session_id"]: r for r in conn.execute(select(WorkflowRun))}
        assert set(runs) == set(sessions)
        run = runs[sessions[1]]
        events = conn.execute(select(ExecutionEvent).where(ExecutionEvent.run_id == run.id)
                              .order_by(ExecutionEvent.execution_order)).all()
        costs = conn.execute(select(func.count(), func.sum(CostRecord.cost_usd), func.sum(CostRecord.total_tokens))
                             .where(CostRecord.run_id == run.id)).one()
        contents = conn.execute(select(Message.sender, Message.recipient, Message.content)
                                .where(Message.run_id == run.id).order_by(Message.id)).all()
    assert [(e.event_type, e.agent_name) for e in events] == [
        ("message", "user"), ("agent_call", "assistant"), ("llm_call", "assistant"), ("message", "assistant"),
        ("handoff", "assistant"), ("agent_call", "user"), ("tool_call", "user"), ("message", "user"),
        ("handoff", "user"), ("agent_call", "assistant"), ("llm_call", "assistant"), ("message", "assistant")]
    llm = [e for e in events if e.event_type == "llm_call"]
    assert [(e.meta["model"], e.meta["prompt_tokens"], e.meta["completion_tokens"], e.meta["cost_usd"])
            for e in llm] == [("scripted-model", 100, 10, 0.01), ("scripted-model", 150, 8, 0.02)]
    assert all(e.depth == 1 and e.parent_event_id == events[i - 1].id for i, e in enumerate(events)
               if e.event_type == "llm_call")
    tool = next(e for e in events if e.event_type == "tool_call")
    assert (tool.inputs, tool.outputs, tool.depth) == ({"tool_name": "add", "arguments": {"a": 4, "b": 5}},
                                                       {"result": 9}, 1)
    assert tuple(costs) == (2, Decimal("0.030000"), 268)
    assert contents[0] == ("user", "assistant", "What is 4 + 5?") and contents[-1][2] == "The sum is 9. TERMINATE"
    assert (run.mode, run.status, run.meta["agents"]) == ("ag2", "completed", ["assistant", "user"])


def test_importing_twice_changes_nothing(sqlite_store: CaptureStore, ag2_log: tuple[Path, list[str]],
                                         row_counts) -> None:
    path, _ = ag2_log
    import_ag2_log(path, sqlite_store)
    before = row_counts(sqlite_store)
    again = import_ag2_log(path, sqlite_store)
    assert (again.runs_written, again.runs_skipped) == (0, 2) and row_counts(sqlite_store) == before


def test_bad_logs_are_named(sqlite_store: CaptureStore, ag2_log: tuple[Path, list[str]], tmp_path: Path,
                            row_counts) -> None:
    path, _ = ag2_log
    import_ag2_log(path, sqlite_store)
    before = row_counts(sqlite_store)
    partial = tmp_path / "partial.db"
    partial.write_bytes(path.read_bytes())
    with sqlite3.connect(partial) as conn:
        conn.execute("DROP TABLE function_calls")
    with pytest.raises(SourceError, match=r"partial\.db: not an AG2 runtime-logging database, missing table\(s\) "
                                          r"function_calls"):
        import_ag2_log(partial, sqlite_store)
    text = tmp_path / "log.txt"
    text.write_text('{"not": "sqlite"}\n' * 100)
    with pytest.raises(SourceError, match=r"log\.txt: not a readable SQLite database"):
        import_ag2_log(text, sqlite_store)
    assert row_counts(sqlite_store) == before
