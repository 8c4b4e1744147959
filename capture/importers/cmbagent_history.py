"""Import CMBAgent chat histories and MARS session folders; ``PATH`` may be one history file, one session or
task folder, or a directory holding any of them.

An upstream history (``{page, chat_mode, messages[]}``) gives one run per assistant turn: each
``Calling <agent>...`` line of the turn's ``reasoning`` log opens an ``agent_call`` whose cost table row becomes
``meta`` (model, tokens, ``cost_usd``) and a cost record; consecutive agents give handoffs; executor output
gives ``code_exec`` (exit code from ``exitcode: N`` or inferred from a traceback); tracebacks give errors; each
cost row (one per LLM call) also gives an ``llm_call`` under the agent call. The history records no times, only
the turn's ``elapsed`` seconds: its events are flagged ``no_source_time`` and the run carries no start or end.
MARS session folders and task folders are handled by :mod:`capture.importers.mars_session`.
"""

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from capture.core.vocabulary import normalise_mode
from capture.importers.common import ImportReport, SourceError, importing, load_json, stable_id
from capture.importers.mars_session import is_session_folder, is_task_folder, session_batches, task_batches
from capture.importers.merge import Contribution
from capture.importers.transcript import RunBuilder
from capture.store.capture_store import Batch, CaptureStore

CALLING = re.compile(r"^Calling (\S+?)\.\.\.\s*$", re.MULTILINE)
MESSAGE_FROM = re.compile(r"^Message from (\S+?):\s*$", re.MULTILINE)
COST_HEADER = re.compile(r"^\s*Model\s+agent\s+Cost\s+Prompt Tokens\s+Completion Tokens\s+Total Tokens\s*$")
MAX_DEPTH = 4


def cost_row(body: str) -> dict[str, Any] | None:
    """The first cost-table row under a ``Calling`` line: model, agent, cost and token counts."""
    lines = body.splitlines()
    for index, line in enumerate(lines[:-1]):
        if COST_HEADER.match(line):
            parts = lines[index + 1].split()
            if len(parts) >= 6:
                try:
                    return {"model": parts[0], "cost_usd": float(parts[-4]), "prompt_tokens": int(parts[-3]),
                            "completion_tokens": int(parts[-2]), "total_tokens": int(parts[-1])}
                except ValueError:
                    return None
    return None


def _messages(body: str) -> list[tuple[str, str]]:
    parts = MESSAGE_FROM.split(body)
    return [(parts[i], parts[i + 1].strip("\n")) for i in range(1, len(parts) - 1, 2)]


def turn_calls(reasoning: str) -> list[tuple[str, str]]:
    """(agent, log text) per ``Calling <agent>...`` of a turn, in order."""
    parts = CALLING.split(reasoning)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]


def _elapsed(value: Any) -> float | None:
    try:
        return float(str(value).rstrip("s")) if value is not None else None
    except ValueError:
        return None


def history_batches(path: Path, report: ImportReport, session: str | None) -> Iterator[Contribution]:
    """One contribution per assistant turn of an upstream CMBAgent history file."""
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        raise SourceError(f"{path}: not a CMBAgent chat history (expected an object with a 'messages' list)")
    session_id = session or stable_id("cmbagent-history-session", path.name)
    session_row = {"id": session_id, "name": session or path.stem, "status": "active"}
    last_user: str | None = None
    answered = False
    for index, message in enumerate(data["messages"]):
        if not isinstance(message, dict) or "role" not in message:
            raise SourceError(f"{path}: message {index} has no 'role'")
        if message["role"] == "user":
            last_user = message.get("content") if isinstance(message.get("content"), str) else last_user
            continue
        if message["role"] != "assistant":
            continue
        calls = turn_calls(str(message.get("reasoning") or ""))
        if not calls:
            report.unmapped["assistant turn without agent calls"] += 1
            continue
        answered = True
        run_id = stable_id("cmbagent-history", path.name, index)
        builder = RunBuilder(run_id, session_id, report)
        preamble = CALLING.split(str(message["reasoning"]))[0]
        for sender, text in _messages(preamble):
            builder.message(sender, text)
        for agent, body in calls:
            cost = cost_row(body)
            builder.agent_call(agent, meta=cost, same_call=False)
            if cost:
                builder.llm_call(agent, cost)
            for sender, text in _messages(body):
                builder.message(sender, text)
        builder.close()
        run = {"id": run_id, "session_id": session_id, "mode": normalise_mode(data.get("chat_mode")),
               "status": "completed", "task_description": last_user,
               "agent": calls[0][0], "meta": {"source": path.name, "page": data.get("page"),
                                              "message_index": index, "n_calls": len(calls),
                                              "elapsed_seconds": _elapsed(message.get("elapsed")),
                                              "source_times": False}}
        yield Contribution(run_id, f"cmbagent-history:{path.name}#{index}", 1,
                           Batch(runs=[run], events=builder.events, messages=builder.messages, costs=builder.costs),
                           session_row)
    if not answered:
        report.unmapped["history without a recorded answer"] += 1


def _sources(path: Path, depth: int = 0) -> Iterator[tuple[str, Path]]:
    """(kind, path) of every importable thing under ``path``."""
    if path.is_file():
        yield "history", path
        return
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or directory")
    if is_session_folder(path):
        yield "session", path
        return
    if is_task_folder(path):
        yield "task", path
        return
    if depth >= MAX_DEPTH:
        return
    for child in sorted(path.iterdir()):
        if child.is_dir() or (child.suffix == ".json" and "chat_history" in child.name):
            yield from _sources(child, depth + 1)


def import_cmbagent_history(path: str | Path, store: CaptureStore, *, session: str | None = None,
                            quiet: bool = True) -> ImportReport:
    """Merge histories, session folders and task folders under ``path`` into ``store``; one transaction per run.
    A directory holding none of them is bad input (named), not an empty success."""
    path = Path(path)
    producers = {"history": history_batches, "session": session_batches, "task": task_batches}
    with importing("cmbagent-history", path, store, quiet=quiet) as job:
        sources = list(_sources(path))
        if not sources:
            raise SourceError(f"{path}: no CMBAgent chat history (*chat_history*.json), MARS session folder "
                              f"(session.log) or task folder (planning/, control/) found")
        for kind, source in sources:
            job.where = f"{kind} {source.relative_to(path)}" if source != path else kind
            job.write_all(producers[kind](source, job.report, session))
    return job.report
