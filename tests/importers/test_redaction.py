"""One redaction for every way in: each importer masks planted secrets of every kind before storing anything."""

import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from capture.core.redaction import Redactor
from capture.importers import (
    import_ag2_log,
    import_cmbagent_db,
    import_cmbagent_history,
    import_cmbagent_trials,
    import_xes,
)
from capture.store.capture_store import CaptureStore
from capture.store.models import Base
from tests.importers.test_ag2_log import logged_chat

# One secret of each kind; the value after the kept prefix must never reach the store.
SECRETS = {
    "openai": ("", "sk-proj-Zq3xJ8vN2mK5pL7rT9wY4bC6dF1gH0jA"),
    "huggingface": ("", "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"),
    "jwt": ("", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTk5OX0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"),
    "pem": ("-----BEGIN PRIVATE KEY-----",
            "\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"),
    "authorization": ("Authorization: ", "Basic YWxpY2U6d29uZGVybGFuZA=="),
    "connection": ("postgresql://alice:", "Tr0ub4dor&3xyz@db.internal:5432/prod"),
    "password": ("password=", "CorrectHorseBattery9"),
}
# The part of each secret that identifies it (what a leak would show).
TELLS = {"openai": "Zq3xJ8vN2mK5pL7rT9wY", "huggingface": "QwErTyUiOpAsDfGhJkLz", "jwt": "c2lnbmF0dXJlLXNpZ25hdHVyZQ",
         "pem": "MIIEvQIBADANBgkqhkiG9w0", "authorization": "YWxpY2U6d29uZGVybGFuZA", "connection": "Tr0ub4dor",
         "password": "CorrectHorseBattery9"}


def planted(prefix: str = "") -> str:
    """A text that carries every secret."""
    return prefix + "\n".join(f"[{kind}] {keep}{secret}" for kind, (keep, secret) in SECRETS.items()) + "\ndone"


def stored_text(store: CaptureStore) -> str:
    """Every value of every row of the store, as text."""
    parts = []
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                parts.append(json.dumps([str(v) for v in row]))
    return "\n".join(parts)


def assert_masked(store: CaptureStore) -> None:
    text = stored_text(store)
    leaked = [kind for kind, tell in TELLS.items() if tell in text]
    assert leaked == [], f"stored unmasked: {leaked}"
    assert text.count("***") >= len(SECRETS)
    assert "[openai] ***" in text and "-----BEGIN PRIVATE KEY-----***" in text


def test_every_pattern_masks_its_secret() -> None:
    masked = Redactor().text(planted())
    assert not [kind for kind, tell in TELLS.items() if tell in masked]
    assert "Authorization: ***" in masked and "postgresql://alice:***@db.internal" in masked


def test_mars_database(sqlite_store: CaptureStore, data: Path, tmp_path: Path) -> None:
    copy = tmp_path / "planted.db"
    shutil.copy(data / "cmbagent" / "mars_sqlite" / "cmbagent_mars_474d7ff_2026-03-01.db", copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("UPDATE workflow_runs SET task_description = ?", (planted("task "),))
        conn.execute("UPDATE execution_events SET error_message = ?, inputs = ?",
                     (planted("error "), json.dumps({"note": planted()})))
        conn.execute("UPDATE task_stages SET error_message = ?", (planted("stage "),))
    import_cmbagent_db(copy, sqlite_store)
    assert_masked(sqlite_store)


def test_history(sqlite_store: CaptureStore, tmp_path: Path) -> None:
    history = {"page": "one_shot", "chat_mode": "one_shot", "messages": [
        {"role": "user", "content": planted("Plot it. ")},
        {"role": "assistant", "content": [["engineer", "ok"]], "elapsed": "3.0s",
         "reasoning": f"Calling engineer...\nMessage from engineer:\n{planted()}\n"}]}
    path = tmp_path / "planted_chat_history.json"
    path.write_text(json.dumps(history))
    assert import_cmbagent_history(path, sqlite_store).runs_new == 1
    assert_masked(sqlite_store)


def test_session_folder(sqlite_store: CaptureStore, tmp_path: Path) -> None:
    session = tmp_path / "5e551011-0000-4000-8000-000000000001"
    session.mkdir()
    (session / "session.log").write_text(
        "[2026-02-18 08:58:07.423] [run.started] [task_1] mode=one-shot agent=engineer\n"
        f"[2026-02-18 08:58:08.000] [agent.message] _User: {planted()}\n"
        f"[2026-02-18 08:58:09.000] [agent.message] engineer: {planted('reply ')}\n"
        f"[2026-02-18 08:58:10.000] [run.failed] [task_1] error={planted()}\n")
    assert import_cmbagent_history(session, sqlite_store).runs_new == 1
    assert_masked(sqlite_store)


def test_xes(sqlite_store: CaptureStore, tmp_path: Path) -> None:
    secret = planted().replace("&", "&amp;").replace('"', "&quot;").replace("\n", "&#10;")
    path = tmp_path / "planted.xes"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><log xes.version="1.0"><trace>'
        f'<string key="concept:name" value="case 1"/><string key="note" value="{secret}"/>'
        f'<event><string key="concept:name" value="call"/><string key="org:resource" value="engineer"/>'
        f'<string key="payload" value="{secret}"/><date key="time:timestamp" value="2026-01-01T00:00:00+00:00"/>'
        '</event></trace></log>')
    assert import_xes(path, sqlite_store).runs_new == 1
    assert_masked(sqlite_store)


def test_ag2_log(sqlite_store: CaptureStore, tmp_path: Path) -> None:
    dbname = tmp_path / "planted_ag2.db"
    logged_chat(dbname, planted("What is 2 + 3? "), 2, 3)
    assert import_ag2_log(dbname, sqlite_store).runs_new == 1
    assert_masked(sqlite_store)


def test_trials(sqlite_store: CaptureStore, tmp_path: Path) -> None:
    trial = {"suite": "evals", "prompt_group": "prompt_engineergpt-4o_0", "trial": 0,
             "cost_reports": [{"path": "cost_report_1.json", "rows": [
                 {"Agent": planted("engineer "), "Cost ($)": 0.1, "Prompt Tokens": 10.0, "Completion Tokens": 2.0,
                  "Total Tokens": 12.0}]}],
             "timing_reports": [{"path": "timing_report_1.json", "data": {"total_time": 3.0, "note": planted()}}],
             "artifacts": [f"data/{planted()}.csv"]}
    path = tmp_path / "planted_trials.jsonl"
    path.write_text(json.dumps(trial) + "\n")
    assert import_cmbagent_trials(path, sqlite_store).runs_new == 1
    assert_masked(sqlite_store)


def test_configured_extra_patterns_apply_to_imports(sqlite_store: CaptureStore, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKILLMINE_REDACT_PATTERNS", "internal-[0-9]{6}")
    path = tmp_path / "extra_trials.jsonl"
    path.write_text(json.dumps({"suite": "evals", "prompt_group": "g_0", "trial": 1, "cost_reports": [],
                                "timing_reports": [], "artifacts": ["data/internal-123456.csv"]}) + "\n")
    import_cmbagent_trials(path, sqlite_store)
    text = stored_text(sqlite_store)
    assert "internal-123456" not in text and "data/***.csv" in text
