"""MARS session folders (``<session>/session.log`` + ``tasks/<task>/...``) and task output folders.

``session.log`` is a stream of ``[ts] [category] text`` records whose text may span lines (only lines that
start a record begin one). ``run.started`` .. ``run.completed|failed`` bound a run; agent messages, tool calls
and AG2 event classes rebuild its events (a speaker change is a handoff whose mechanism comes from the
preceding ``*TransitionEvent``). When a log holds no agent records for a run, the task folder's step chats
are used instead. ``final_plan.json`` gives the planning and ``step_N`` nodes, ``cost_report*.json`` (bare
``NaN`` allowed) the cost per agent per step, and every file of the task folder a ``files`` row.

Runs take the canonical ids the MARS database importer gives the same runs (the UI task id; a stage folder's
parent run and stage name), so the two sources merge into one run in either order; the log's events outrank the
database's sparse node events, the database's run row outranks the log's.
"""

import ast
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from capture.core.vocabulary import normalise_mode
from capture.importers.common import (
    ImportReport,
    SourceError,
    load_json,
    mars_run_id,
    stable_id,
    stage_run_id,
)
from capture.importers.merge import Contribution
from capture.importers.transcript import RunBuilder, cost_report_row, tool_name
from capture.store.capture_store import Batch

RECORD = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?)\] \[([a-z_.]+)\] ?(.*)$")
SPEAKER = re.compile(r"^(\S+?): ?(.*)$", re.DOTALL)
EVENT_CLASS = re.compile(r"^\[(\w+)\] ?(.*)$", re.DOTALL)
STEP_CHAT = re.compile(r"chat_history_step_(\d+)\.json$")
STEP_COST = re.compile(r"cost_report_step_(\d+)_")
TRANSITIONS = {"AfterWorksTransitionEvent": "after_work", "ReplyResultTransitionEvent": "reply_result",
               "OnConditionLLMTransitionEvent": "llm_condition",
               "OnContextConditionTransitionEvent": "context_condition"}
# AG2 event classes that carry no step of their own (the speaker's record that follows does).
QUIET_CLASSES = frozenset({"GroupChatRunChatEvent", "UsingAutoReplyEvent", "ExecuteFunctionEvent",
                           "PostCarryoverProcessingEvent", "GenerateCodeExecutionReplyEvent"})
FILE_TYPES = (("plan.json", "plan"), ("cost_report", "report"), ("timing_report", "report"),
              ("/chats/", "chat"), ("/codebase/", "code"), ("/context/", "context"))
RANK = 1  # a parsed folder ranks below the database row of the same run
EXTENSION_TYPES = {".json": "data", ".csv": "data", ".pkl": "data", ".npy": "data", ".png": "plot",
                   ".pdf": "plot", ".svg": "plot", ".txt": "report", ".md": "report", ".py": "code",
                   ".log": "log"}


@dataclass
class Record:
    """One ``session.log`` record (its text may span several lines)."""

    at: datetime
    category: str
    text: str
    line: int


@dataclass
class LoggedRun:
    """The records of one run in a session log."""

    task_id: str | None
    started: Record
    records: list[Record] = field(default_factory=list)
    end: Record | None = None


def is_session_folder(path: Path) -> bool:
    """A MARS session folder holds ``session.log``."""
    return (path / "session.log").is_file()


def is_task_folder(path: Path) -> bool:
    """A task output folder holds a ``planning`` or ``control`` folder."""
    return (path / "planning").is_dir() or (path / "control").is_dir()


def parse_log(path: Path) -> list[Record]:
    """Split ``session.log`` into records; a first line that starts no record is an error naming the line."""
    records: list[Record] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read ({exc})") from None
    for number, line in enumerate(lines, start=1):
        found = RECORD.match(line)
        if found:
            try:
                at = datetime.fromisoformat(found.group(1)).replace(tzinfo=UTC)
            except ValueError:
                raise SourceError(f"{path}: line {number}: bad timestamp {found.group(1)!r}") from None
            records.append(Record(at, found.group(2), found.group(3), number))
        elif records:
            records[-1].text += "\n" + line
        elif line.strip():
            raise SourceError(f"{path}: line {number}: not a session log record: {line[:60]!r}")
    return records


def split_runs(records: list[Record], report: ImportReport) -> list[LoggedRun]:
    """Group records by ``run.started`` .. ``run.completed``/``run.failed`` (a run may end without one)."""
    runs: list[LoggedRun] = []
    current: LoggedRun | None = None
    for record in records:
        if record.category == "run.started":
            current = LoggedRun(_task_id(record), record)
            runs.append(current)
        elif current is None:
            report.unmapped["session.log record outside a run"] += 1
        elif record.category in ("run.completed", "run.failed"):
            current.end = record
            current = None
        else:
            current.records.append(record)
    return runs


def _task_id(record: Record) -> str | None:
    found = re.match(r"^\[([^\]]+)\]", record.text)
    return found.group(1) if found else None


def _fields(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", text))


def replay_log(builder: RunBuilder, records: list[Record], report: ImportReport) -> str | None:
    """Rebuild events from a run's log records; returns the first ``_User`` message (the task)."""
    task: str | None = None
    last_tool: dict[str, Any] | None = None
    for record in records:
        if record.category == "agent.message":
            speaker, text = _speaker(record)
            if speaker == "_User" and task is None:
                task = text
            builder.message(speaker, text, record.at)
        elif record.category == "tool.call":
            speaker, _ = _speaker(record)
            last_tool = builder.tool_call(tool_name(None, speaker), speaker, at=record.at)
        elif record.category == "tool.response":
            _, text = _speaker(record)
            if last_tool is not None:
                last_tool["outputs"] = {"result": text.removeprefix("result content=")}
                last_tool["completed_at"] = record.at
            builder.touch(record.at)
        elif record.category == "agent.event":
            found = EVENT_CLASS.match(record.text)
            name = found.group(1) if found else record.text[:40]
            if name in TRANSITIONS:
                builder.transition(TRANSITIONS[name])
            elif name == "TerminationEvent":
                builder.close(record.at)
            elif name == "ExecutedFunctionEvent":
                builder.touch(record.at)
            elif name not in QUIET_CLASSES:
                report.unmapped[f"agent.event {name}"] += 1
        elif record.category != "agent.output":
            report.unmapped[f"session.log category {record.category}"] += 1
    builder.close()
    return task


def _speaker(record: Record) -> tuple[str, str]:
    found = SPEAKER.match(record.text)
    return (found.group(1), found.group(2)) if found else ("unknown", record.text)


def replay_chats(builder: RunBuilder, chats: list[tuple[int, Path]], nodes: dict[str, str],
                 report: ImportReport) -> None:
    """Rebuild events from per-step chat files (``message`` + ``agent_call`` per sender, ``tool_calls``)."""
    for step, path in chats:
        builder.enter_node(nodes.get(f"step_{step}"))
        messages = load_json(path)
        if not isinstance(messages, list):
            raise SourceError(f"{path}: expected a list of chat messages")
        pending: dict[str, dict[str, Any]] = {}
        for index, message in enumerate(messages):
            if not isinstance(message, dict):
                raise SourceError(f"{path}: message {index} is not an object")
            sender = message.get("name") or message.get("role") or "unknown"
            content = message.get("content")
            if content not in (None, "", "None"):
                builder.message(sender, str(content))
            for call in _calls(message.get("tool_calls"), path, index):
                function = call.get("function") or {}
                event = builder.tool_call(tool_name(function.get("name"), sender), sender,
                                          arguments=function.get("arguments"))
                pending[str(call.get("id"))] = event
            for response in _calls(message.get("tool_responses"), path, index):
                event = pending.pop(str(response.get("tool_call_id")), None)
                if event is None:
                    report.unmapped["tool response without its call"] += 1
                else:
                    event["outputs"] = {"result": response.get("content")}
        builder.close()


def _calls(value: Any, path: Path, index: int) -> list[dict[str, Any]]:
    """``tool_calls``/``tool_responses`` are stored as a Python repr string in MARS chats."""
    if value in (None, "", "None"):
        return []
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise SourceError(f"{path}: message {index}: unreadable tool call list") from None
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def plan_nodes(plan: Any, run_id: str, session_id: str, where: str) -> tuple[list[dict[str, Any]],
                                                                         list[dict[str, Any]]]:
    """The ``planning`` node and a ``step_N`` node per sub-task of a CMBAgent ``final_plan`` (ids from the run id
    and the short name, as every importer keys nodes), with sequential edges; ``where`` names the plan in errors."""
    steps = plan.get("sub_tasks") if isinstance(plan, dict) else None
    if not isinstance(steps, list):
        raise SourceError(f"{where}: expected an object with a 'sub_tasks' list")

    def node(short: str, kind: str, agent: str | None, order: int, meta: dict[str, Any]) -> dict[str, Any]:
        return {"id": stable_id(run_id, "node", short), "run_id": run_id, "session_id": session_id,
                "node_type": kind, "agent": agent, "status": "completed", "order_index": order,
                "meta": {"id": short, **meta}}

    rows = [node("planning", "planning", "planner", 0, {"label": "Planning"})]
    for number, step in enumerate(steps, start=1):
        step = step if isinstance(step, dict) else {}
        rows.append(node(f"step_{number}", "agent", step.get("sub_task_agent"), number,
                         {"step_number": number, "task": step.get("sub_task"),
                          "bullet_points": step.get("bullet_points")}))
    edges = [{"from_node_id": a["id"], "to_node_id": b["id"], "dependency_type": "sequential"}
             for a, b in pairwise(rows)]
    return rows, edges


def file_type(relative: str) -> str:
    """The ``files.file_type`` of a path relative to the run's work directory (by folder, else extension)."""
    for marker, kind in FILE_TYPES:
        if marker in f"/{relative}":
            return kind
    return EXTENSION_TYPES.get(Path(relative).suffix.lower(), "other")


class TaskFolder:
    """Nodes, costs and files of one task output folder (``planning/``, ``control/``, ``cost/``)."""

    def __init__(self, path: Path, run_id: str, session_id: str, report: ImportReport) -> None:
        self.path = path
        self.run_id = run_id
        self.session_id = session_id
        self.report = report
        self.nodes: dict[str, str] = {}

    def node_rows(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``planning`` + ``step_N`` nodes from ``final_plan.json`` and sequential edges between them."""
        plan_path = self.path / "planning" / "final_plan.json"
        if not plan_path.is_file():
            return [], []
        rows, edges = plan_nodes(load_json(plan_path), self.run_id, self.session_id, str(plan_path))
        self.nodes.update({row["meta"]["id"]: row["id"] for row in rows})
        return rows, edges

    def chats(self) -> list[tuple[int, Path]]:
        """Step chat files in step order."""
        found = [(int(m.group(1)), p) for p in (self.path / "control" / "chats").glob("*.json")
                 if (m := STEP_CHAT.search(p.name))]
        return sorted(found)

    def node_of(self, relative: str) -> str | None:
        """The node a file belongs to, by where it sits."""
        step = STEP_CHAT.search(relative) or STEP_COST.search(relative)
        if step:
            return self.nodes.get(f"step_{step.group(1)}")
        return self.nodes.get("planning") if relative.startswith("planning/") else None

    def costs(self, builder: RunBuilder) -> None:
        """An ``llm_call`` aggregate (with its cost record) per agent row of every cost report, on the report's
        node (the ``Total`` row is a sum, not a record)."""
        for path in sorted(self.path.rglob("cost_report*.json")):
            rows = load_json(path)
            if not isinstance(rows, list):
                raise SourceError(f"{path}: expected a list of cost rows")
            relative = path.relative_to(self.path).as_posix()
            builder.enter_node(self.node_of(relative))
            for row in rows:
                parsed = cost_report_row(row, str(path))
                if parsed is not None:
                    builder.llm_call(parsed[0], {**parsed[1], "cost_report": relative}, aggregate=True)
        builder.enter_node(None)

    def files(self, builder: RunBuilder) -> list[dict[str, Any]]:
        """A ``files`` row per file (sha256, size, type by location); ``ideas_*.json`` also a ``file_gen``."""
        rows = []
        for path in sorted(p for p in self.path.rglob("*") if p.is_file()):
            relative = path.relative_to(self.path).as_posix()
            content = path.read_bytes()
            builder.node_id = self.node_of(relative)
            event_id = None
            if path.name.startswith("ideas_"):
                event_id = builder.file_gen(relative, len(content))["id"]
            rows.append({"id": stable_id(self.run_id, "file", relative), "run_id": self.run_id,
                         "session_id": self.session_id, "event_id": event_id, "node_id": builder.node_id,
                         "file_path": relative, "file_type": file_type(relative), "size_bytes": len(content),
                         "content_hash": hashlib.sha256(content).hexdigest(),
                         "workflow_phase": relative.split("/", 1)[0] if "/" in relative else None,
                         "created_at": builder.untimed(), "meta": {"source_path": str(path), "no_source_time": True}})
        builder.node_id = None
        return rows


def _task_batch(folder: TaskFolder, builder: RunBuilder, run: dict[str, Any], use_chats: bool) -> Batch:
    nodes, edges = folder.node_rows()
    if use_chats:
        replay_chats(builder, folder.chats(), folder.nodes, folder.report)
    files = folder.files(builder) if folder.path.is_dir() else []
    if folder.path.is_dir():
        folder.costs(builder)
    return Batch(runs=[run], nodes=nodes, edges=edges, events=builder.events, files=files,
                 messages=builder.messages, costs=builder.costs)


def session_batches(path: Path, report: ImportReport, session: str | None) -> Iterator[Contribution]:
    """One contribution per run of a MARS session folder."""
    session_id = session or path.name
    session_row = {"id": session_id, "name": session or f"mars session {path.name}", "status": "active"}
    for logged in split_runs(parse_log(path / "session.log"), report):
        run_id = mars_run_id(logged.task_id, None) if logged.task_id else \
            stable_id("mars-session", path.name, logged.started.line)
        builder = RunBuilder(run_id, session_id, report, fallback_time=logged.started.at)
        has_agents = any(r.category in ("agent.message", "tool.call") for r in logged.records)
        task = replay_log(builder, logged.records, report) if has_agents else None
        started = _fields(logged.started.text)
        status, meta = "executing", {"source": f"{path.name}/session.log", "task_id": logged.task_id,
                                     "work_dir": started.get("work_dir"),
                                     "events_from": "session.log" if has_agents else "chats"}
        if logged.end is not None:
            ended = _fields(logged.end.text)
            if logged.end.category == "run.failed":
                status = "failed"
                message = logged.end.text.split("error=", 1)[-1]
                builder.error("rate_limit" if "429" in message else "runtime_error", message, logged.end.at)
            else:
                status = "completed" if ended.get("status", "success") == "success" else "failed"
            if "execution_time" in ended:
                meta["execution_time_s"] = float(ended["execution_time"].rstrip("s"))
        folder = TaskFolder(path / "tasks" / (logged.task_id or "-"), run_id, session_id, report)
        run = {"id": run_id, "session_id": session_id, "mode": normalise_mode(started.get("mode")),
               "agent": started.get("agent"), "model": started.get("model"), "status": status,
               "started_at": logged.started.at, "completed_at": logged.end.at if logged.end else None,
               "task_description": task, "meta": meta}
        label = f"mars-session:{path.name}/{logged.task_id or logged.started.line}"
        yield Contribution(run_id, label, RANK, _task_batch(folder, builder, run, use_chats=not has_agents),
                           session_row)


def task_batches(path: Path, report: ImportReport, session: str | None) -> Iterator[Contribution]:
    """A task output folder on its own (a Denario stage's ``<stage>_output`` under the parent run's folder) as
    the stage's run."""
    identity = f"{path.parent.name}/{path.name}"
    session_id = session or stable_id("cmbagent-task-session", identity)
    session_row = {"id": session_id, "name": session or f"task {identity}", "status": "active"}
    stage = path.name.removesuffix("_output")
    run_id = stage_run_id(path.parent.name, stage)
    builder = RunBuilder(run_id, session_id, report)
    folder = TaskFolder(path, run_id, session_id, report)
    run = {"id": run_id, "session_id": session_id, "mode": normalise_mode(stage), "stage_name": stage,
           "status": "completed", "meta": {"source": identity, "source_run_id": path.parent.name}}
    batch = _task_batch(folder, builder, run, use_chats=True)
    terminated = any(e["event_type"] == "tool_call" and (e["meta"] or {}).get("tool_name") == "terminate_session"
                     for e in batch.events)
    run["status"] = "completed" if terminated else "executing"
    yield Contribution(run_id, f"mars-task:{identity}", RANK, batch, session_row)
