"""Import an AG2 runtime-logging SQLite database (``autogen.runtime_logging.start(logger_type="sqlite")``).

One run per AG2 ``session_id``. ``events`` rows give the agents' replies (a ``reply_func_executed`` with
``final`` and a reply closes an ``agent_call`` that opened at the agent's first reply function) and the
deliveries (``received_message`` → ``message``); ``chat_completions`` rows give ``llm_call`` events with the
response's model and usage and the logged ``cost`` (plus a cost record); ``function_calls`` rows give
``tool_call`` events. Leaves hang under the call of the same agent that was open at their time; speaker
changes give handoffs. ``events`` and ``function_calls`` carry no session id: the agent id joins them to it.
"""

import json
import sqlite3
from collections import defaultdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from capture.importers.common import (
    ImportReport,
    SourceError,
    canonical,
    importing,
    member_id,
    open_readonly,
    stable_id,
)
from capture.importers.merge import Contribution
from capture.store.capture_store import Batch, CaptureStore
from capture.store.records import to_utc

REQUIRED_TABLES = ("chat_completions", "agents", "events", "function_calls")
# Sort rank at equal times: a delivery, then the handoff, then the call it opens, then its leaves.
RANK = {"message": 0, "handoff": 1, "agent_call": 2, "llm_call": 3, "tool_call": 4}


def _json(value: Any, path: Path, table: str, row_id: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        if table == "function_calls":  # returns are logged with str() when not JSON-serialisable
            return value
        raise SourceError(f"{path}: table {table}, row {row_id}: invalid JSON") from None


def _cost(value: Any, path: Path, row_id: Any) -> float | None:
    """The logged cost of a completion as a number (``None`` when not logged)."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SourceError(f"{path}: table chat_completions, row {row_id}: cost {value!r:.40} is not a number") \
            from None


def _time(value: Any, path: Path, table: str, row_id: Any) -> datetime | None:
    try:
        return to_utc(value, field="timestamp", kind=f"{path}: table {table}, row {row_id}")
    except ValueError as exc:
        raise SourceError(str(exc)) from None


class _Session:
    """The rows of one AG2 session, turned into one run's batch."""

    def __init__(self, path: Path, ag2_session: str, run_id: str, session_id: str, report: ImportReport) -> None:
        self.path = path
        self.ag2_session = ag2_session
        self.run_id = run_id
        self.session_id = session_id
        self.report = report
        self.calls: list[dict[str, Any]] = []
        self.leaves: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.costs: list[dict[str, Any]] = []

    def event(self, key: str, event_type: str, subtype: str | None, agent: str | None, at: datetime | None,
              **fields: Any) -> dict[str, Any]:
        etype, sub, meta = canonical(event_type, subtype, self.report, fields.pop("meta", None))
        return {"id": member_id(self.run_id, key), "run_id": self.run_id, "session_id": self.session_id,
                "event_type": etype, "event_subtype": sub, "agent_name": agent, "timestamp": at,
                "started_at": at, "status": "completed", "meta": meta, **fields}

    def add_events(self, rows: list[dict[str, Any]]) -> None:
        """Replies become agent calls, deliveries become messages."""
        opened: dict[str, datetime | None] = {}
        for row in rows:
            state = _json(row["json_state"], self.path, "events", row["id"]) or {}
            agent, at = row["source_name"], _time(row["timestamp"], self.path, "events", row["id"])
            if row["event_name"] == "received_message":
                self._message(row, state, agent, at)
            elif row["event_name"] == "reply_func_executed":
                opened.setdefault(agent, at)
                if state.get("final") and state.get("reply") is not None:
                    start = opened.pop(agent)
                    self.calls.append(self.event(
                        f"events:{row['id']}", "agent_call", "complete", agent, start, completed_at=at,
                        duration_ms=int((at - start).total_seconds() * 1000) if at and start else None,
                        outputs={"reply": state.get("reply")},
                        meta={"reply_func_name": state.get("reply_func_name"), "agent_class": row["agent_class_name"]}))
                elif state.get("final"):
                    opened.pop(agent, None)  # a final "no reply" (termination) closes without a call
            else:
                self.report.unmapped[f"ag2 event {row['event_name']}"] += 1

    def _message(self, row: dict[str, Any], state: dict[str, Any], agent: str, at: datetime | None) -> None:
        message = state.get("message")
        content = message.get("content") if isinstance(message, dict) else message
        sender = state.get("sender")
        event = self.event(f"events:{row['id']}", "message", "send", sender, at,
                           inputs={"message": message}, meta={"sender": sender, "recipient": agent,
                                                              "valid": state.get("valid")})
        self.leaves.append(event)
        self.messages.append({"run_id": self.run_id, "session_id": self.session_id, "event_id": event["id"],
                              "sender": sender, "recipient": agent, "timestamp": at,
                              "content": content if isinstance(content, str) or content is None
                              else json.dumps(content)})

    def add_completions(self, rows: list[dict[str, Any]]) -> None:
        """LLM calls with model, tokens and cost from the logged response."""
        for row in rows:
            response = _json(row["response"], self.path, "chat_completions", row["id"])
            response = response if isinstance(response, dict) else {"text": response}
            usage = response.get("usage") or {}
            prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            start = _time(row["start_time"], self.path, "chat_completions", row["id"])
            end = _time(row["end_time"], self.path, "chat_completions", row["id"])
            cost = _cost(row["cost"], self.path, row["id"])
            meta = {"model": response.get("model"), "prompt_tokens": prompt, "completion_tokens": completion,
                    "total_tokens": int(usage.get("total_tokens") or prompt + completion),
                    "cost_usd": cost, "is_cached": bool(row["is_cached"]),
                    "invocation_id": row["invocation_id"]}
            event = self.event(f"chat_completions:{row['id']}", "llm_call", "complete", row["source_name"], start,
                               completed_at=end, duration_ms=int((end - start).total_seconds() * 1000)
                               if start and end else None,
                               inputs={"request": _json(row["request"], self.path, "chat_completions", row["id"])},
                               outputs={"choices": response.get("choices")}, meta=meta)
            self.leaves.append(event)
            self.costs.append({"run_id": self.run_id, "session_id": self.session_id, "event_id": event["id"],
                               "model": meta["model"], "agent_name": row["source_name"] or "unattributed",
                               "prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": meta["total_tokens"], "cost_usd": cost or 0,
                               "timestamp": start})

    def add_function_calls(self, rows: list[dict[str, Any]]) -> None:
        """Tool executions (by the executing agent)."""
        for row in rows:
            at = _time(row["timestamp"], self.path, "function_calls", row["id"])
            self.leaves.append(self.event(
                f"function_calls:{row['id']}", "tool_call", "complete", row["source_name"], at,
                inputs={"tool_name": row["function_name"],
                        "arguments": _json(row["args"], self.path, "function_calls", row["id"])},
                outputs={"result": _json(row["returns"], self.path, "function_calls", row["id"])},
                meta={"tool_name": row["function_name"]}))

    def batch(self, agents: list[str]) -> Batch:
        """Nest leaves under the open call of their agent, add handoffs, order everything by time."""
        by_agent: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for call in self.calls:
            by_agent[call["agent_name"]].append(call)
        for leaf in self.leaves:
            owner = leaf["meta"].get("recipient") if leaf["event_type"] == "message" else leaf["agent_name"]
            parent = next((c for c in by_agent.get(owner, []) if leaf["timestamp"] and c["started_at"]
                           and c["started_at"] <= leaf["timestamp"] <= c["completed_at"]), None)
            if parent is not None and leaf["event_type"] != "message":
                leaf["parent_event_id"], leaf["depth"] = parent["id"], 1
        ordered = sorted(self.calls, key=lambda e: (e["completed_at"], RANK["agent_call"]))
        handoffs = [self.event(f"handoff:{a['id']}", "handoff", "transfer", a["agent_name"], b["started_at"],
                               inputs={"from_agent": a["agent_name"], "to_agent": b["agent_name"]})
                    for a, b in pairwise(ordered) if a["agent_name"] != b["agent_name"]]
        events = sorted(self.calls + self.leaves + handoffs,
                        key=lambda e: (e["started_at"] or e["timestamp"], RANK[e["event_type"]]))
        for order, event in enumerate(events, start=1):
            event["execution_order"] = order
        times = [e["timestamp"] for e in events if e["timestamp"]]
        run = {"id": self.run_id, "session_id": self.session_id, "mode": "ag2", "status": "completed",
               "started_at": min(times) if times else None, "completed_at": max(times) if times else None,
               "agent": agents[0] if agents else None,
               "meta": {"source": self.path.name, "ag2_session_id": self.ag2_session, "agents": agents}}
        return Batch(runs=[run], events=events, messages=self.messages, costs=self.costs)


def _rows(conn: sqlite3.Connection, sql: str, path: Path) -> list[dict[str, Any]]:
    try:
        return [dict(r) for r in conn.execute(sql)]
    except sqlite3.DatabaseError as exc:
        raise SourceError(f"{path}: {exc}") from None


def import_ag2_log(path: str | Path, store: CaptureStore, *, session: str | None = None,
                   quiet: bool = True) -> ImportReport:
    """Merge every AG2 session of a runtime-logging database into ``store`` as a run (one transaction each)."""
    path = Path(path)
    with importing("ag2-log", path, store, quiet=quiet) as job:
        report = job.report
        with open_readonly(path, REQUIRED_TABLES, "an AG2 runtime-logging database") as conn:
            agents = _rows(conn, "SELECT agent_id, session_id, name FROM agents ORDER BY id", path)
            completions = _rows(conn, "SELECT * FROM chat_completions ORDER BY id", path)
            events = _rows(conn, "SELECT * FROM events ORDER BY timestamp, id", path)
            functions = _rows(conn, "SELECT rowid AS id, * FROM function_calls ORDER BY timestamp, rowid", path)
        session_of_agent = {a["agent_id"]: a["session_id"] for a in agents}
        sessions = sorted({a["session_id"] for a in agents} | {c["session_id"] for c in completions})
        job.progress.total_runs = len(sessions)
        target = session or stable_id("ag2-log-session", path.name)
        session_row = {"id": target, "name": session or f"ag2 log {path.name}", "status": "active"}
        orphans = [r for r in events + functions if r["source_id"] not in session_of_agent]
        if orphans:
            report.unmapped["ag2 row of an agent created before logging started"] += len(orphans)
        for ag2_session in sessions:
            run_id = stable_id("ag2-log", path.name, ag2_session)
            job.where = f"AG2 session {ag2_session}"
            built = _Session(path, ag2_session, run_id, target, report)
            built.add_events([r for r in events if session_of_agent.get(r["source_id"]) == ag2_session])
            built.add_completions([r for r in completions if r["session_id"] == ag2_session])
            built.add_function_calls([r for r in functions if session_of_agent.get(r["source_id"]) == ag2_session])
            names = [a["name"] for a in agents if a["session_id"] == ag2_session]
            job.write(Contribution(run_id, f"ag2-log:{path.name}#{ag2_session}", 1, built.batch(names),
                                   session_row))
    return job.report
