"""Import a CMBAgent/MARS SQLite database (``cmbagent_workdir/database/cmbagent.db``) run by run.

The source is opened read-only (``mode=ro`` URI) and never written. A run gets its canonical id (its UI task id,
recorded in its meta or, for older MARS versions, read off the task folder its files sit in; else its UUID; see
:func:`~capture.importers.common.mars_run_id`) so that its session folder, imported before or after, merges into
the same run; nodes are keyed by their readable id (``meta.id``), files by their path relative to the run's work
directory (the original in ``meta.source_path``). Events keep ids in the database's own namespace (file name,
table, source id); the source id stays in ``meta.source_id``. ``agent_call/execution`` rows from the DAG tracker
become ``state_transition/node``; ``task_stages`` rows become child runs (``parent_run_id``, ``stage_number``,
``stage_name``) keyed by parent and stage name, so a stage's output folder and the stage's own child run, when the
database holds one, merge into them; cost rows without an agent are attributed to ``unattributed``.
"""

import json
import re
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from capture.importers.common import (
    ImportReport,
    SourceError,
    canonical,
    importing,
    mars_run_id,
    open_readonly,
    relative_path,
    stable_id,
    stage_run_id,
)
from capture.importers.merge import Contribution
from capture.store.capture_store import Batch, CaptureStore
from capture.store.records import to_utc

REQUIRED_TABLES = ("sessions", "workflow_runs", "dag_nodes", "dag_edges", "execution_events", "files",
                   "messages", "cost_records")
UNATTRIBUTED = "unattributed"
RANK = 2  # a database row outranks a parsed session folder where they disagree
JSON_COLUMNS = {"meta", "inputs", "outputs", "input_data", "output_data", "output_files", "resource_limits"}


class _Reader:
    """Reads the source tables into plain dicts, parsing JSON columns and naming the row on bad values."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def rows(self, table: str, order: str = "rowid") -> list[dict[str, Any]]:
        if table not in self.tables:
            return []
        try:
            fetched = self.conn.execute(f'SELECT * FROM "{table}" ORDER BY {order}').fetchall()
        except sqlite3.DatabaseError as exc:
            raise SourceError(f"{self.path}: table {table}: {exc}") from None
        return [self._decode(table, dict(row)) for row in fetched]

    def _decode(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        for column in JSON_COLUMNS & row.keys():
            value = row[column]
            if isinstance(value, str) and value:
                try:
                    row[column] = json.loads(value)
                except json.JSONDecodeError as exc:
                    raise SourceError(f"{self.path}: table {table}, row id {row.get('id')!r}, column {column}: "
                                      f"invalid JSON ({exc})") from None
        return row


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else ({} if value is None else {"value": value})


class _Mapper:
    """Turns one source database into per-run batches with ids re-derived in the source's own namespace."""

    def __init__(self, reader: _Reader, source: str, report: ImportReport, session: str | None) -> None:
        self.source = source
        self.report = report
        self.session = session
        runs = reader.rows("workflow_runs")
        self.run_ids = {r["id"] for r in runs}
        self.run_session = {r["id"]: self.session_of(r) for r in runs}
        self.runs = runs
        self.files = self._by_run(reader.rows("files"), "run_id", "files")
        task_ids = {r["id"]: _task_id(r, self.files.get(r["id"], [])) for r in runs}
        self.canonical = {r["id"]: mars_run_id(task_ids[r["id"]], r["id"]) for r in runs}
        self.work_dirs = {r["id"]: _work_dir(r, task_ids[r["id"]]) for r in runs}
        self.stages = self._by_run(reader.rows("task_stages"), "parent_run_id", "task_stages")
        for parent, stages in self.stages.items():  # a stage's own child run is the stage run
            for stage in stages:
                if stage.get("child_run_id") in self.run_ids:
                    self.canonical[stage["child_run_id"]] = stage_run_id(parent, stage["stage_name"])
        self.nodes = self._by_run(reader.rows("dag_nodes"), "run_id", "dag_nodes")
        node_run = {n["id"]: run for run, nodes in self.nodes.items() for n in nodes}
        self.node_ids = {n["id"]: stable_id(self.canonical[run], "node", _dict(n.get("meta")).get("id") or n["id"])
                         for run, nodes in self.nodes.items() for n in nodes}
        edges: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for edge in reader.rows("dag_edges"):
            run = node_run.get(edge["from_node_id"])
            if run is None or edge["to_node_id"] not in node_run:
                report.unmapped["dag_edges row with an unknown node"] += 1
            else:
                edges[run].append(edge)
        self.edges = edges
        self.events = self._by_run(reader.rows("execution_events"), "run_id", "execution_events")
        self.messages = self._by_run(reader.rows("messages"), "run_id", "messages")
        self.costs = self._by_run(reader.rows("cost_records"), "run_id", "cost_records")
        self.sessions = reader.rows("sessions")

    def _by_run(self, rows: list[dict[str, Any]], key: str, table: str) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            if row.get(key) in self.run_ids:
                grouped[row[key]].append(row)
            else:
                self.report.unmapped[f"{table} row of an unknown run"] += 1
        return grouped

    def id(self, table: str, source_id: Any) -> str | None:
        return None if source_id is None else stable_id("cmbagent-db", self.source, table, source_id)

    def run_ref(self, source_id: str | None) -> str | None:
        """The canonical id of a run of this database (or of one it names but does not hold)."""
        if source_id is None:
            return None
        return self.canonical.get(source_id) or mars_run_id(None, source_id)

    def session_of(self, row: dict[str, Any]) -> str:
        return self.session or row.get("session_id") or "default"

    def session_rows(self, path: Path) -> dict[str, dict[str, Any]]:
        """Session rows by id, times in UTC (written with the first run of each session)."""
        if self.session:
            return {self.session: {"id": self.session, "name": self.session, "status": "active"}}
        keep = ("user_id", "name", "created_at", "last_active_at", "status", "meta", "resource_limits")
        rows = {}
        for source in self.sessions:
            # A value the source left empty is left out, so the store's default (creation time, status) applies.
            row = {"id": source["id"], **{k: source[k] for k in keep if source.get(k) is not None}}
            for column in ("created_at", "last_active_at"):
                if column in row:
                    row[column] = to_utc(row[column], field=column, kind=f"{path}: session {row['id']}")
            rows[row["id"]] = row
        return rows

    def contributions(self, run: dict[str, Any], sessions: dict[str, dict[str, Any]]) -> list[Contribution]:
        """The run's contribution, then one per stage (each stage is a run of its own)."""
        label = f"cmbagent-db:{self.source}"
        session = sessions.get(self.session_of(run)) or {"id": self.session_of(run), "status": "active"}
        batch = Batch(runs=[self._run(run)])
        batch.nodes = [self._node(n) for n in self.nodes.get(run["id"], [])]
        batch.edges = [{"from_node_id": self.node_ids.get(e["from_node_id"]),
                        "to_node_id": self.node_ids.get(e["to_node_id"]),
                        "dependency_type": e.get("dependency_type") or "sequential",
                        "condition": e.get("condition")} for e in self.edges.get(run["id"], [])]
        batch.events = [self._event(e) for e in self.events.get(run["id"], [])]
        batch.files = [self._file(f) for f in self.files.get(run["id"], [])]
        batch.messages = [self._message(m) for m in self.messages.get(run["id"], [])]
        batch.costs = [self._cost(c) for c in self.costs.get(run["id"], [])]
        out = [Contribution(self.run_ref(run["id"]), f"{label}#{run['id']}", RANK, batch, session)]
        for stage in self.stages.get(run["id"], []):
            stage_batch = Batch(runs=[self._stage_run(run, stage)])
            if stage.get("error_message"):
                stage_batch.events.append(self._stage_error(run, stage))
            out.append(Contribution(stage_batch.runs[0]["id"], f"{label}#{stage['id']}", RANK, stage_batch,
                                    session))
        return out

    def _run(self, run: dict[str, Any]) -> dict[str, Any]:
        meta = {**_dict(run.get("meta")), "source_id": run["id"], "source": self.source}
        if run.get("session_id") and self.session:
            meta["source_session_id"] = run["session_id"]
        return {
            "id": self.run_ref(run["id"]), "session_id": self.session_of(run),
            "project_id": run.get("project_id"), "mode": run.get("mode"), "agent": run.get("agent"),
            "model": run.get("model"), "status": run.get("status") or "executing",
            "started_at": run.get("started_at"), "completed_at": run.get("completed_at"),
            "last_heartbeat_at": run.get("last_heartbeat_at"),
            "checkpoint_frequency_minutes": run.get("checkpoint_frequency_minutes"),
            "task_description": run.get("task_description"), "meta": meta,
            "branch_parent_id": self.run_ref(run.get("branch_parent_id")),
            "is_branch": bool(run.get("is_branch")), "branch_depth": run.get("branch_depth") or 0,
            "parent_run_id": self.run_ref(run.get("parent_run_id")),
            "stage_number": run.get("stage_number"), "stage_name": run.get("stage_name"),
        }

    def _stage_run(self, parent: dict[str, Any], stage: dict[str, Any]) -> dict[str, Any]:
        """A ``task_stages`` row as a child run of its parent (the row's own child run when it names one)."""
        task = _dict(stage.get("input_data")).get("task")
        meta = {"source_id": stage["id"], "source": self.source, "source_table": "task_stages",
                **{k: stage.get(k) for k in ("input_data", "output_data", "output_files", "meta")
                   if stage.get(k) is not None}}
        return {
            "id": stage_run_id(parent["id"], stage["stage_name"]),
            "session_id": self.session_of(parent), "project_id": parent.get("project_id"),
            "mode": parent.get("mode"), "agent": parent.get("agent"), "model": parent.get("model"),
            "status": stage.get("status") or "pending", "started_at": stage.get("started_at"),
            "completed_at": stage.get("completed_at"), "last_heartbeat_at": None,
            "checkpoint_frequency_minutes": None, "task_description": task, "meta": meta,
            "branch_parent_id": None, "is_branch": False, "branch_depth": 0,
            "parent_run_id": self.run_ref(parent["id"]),
            "stage_number": stage.get("stage_number"), "stage_name": stage.get("stage_name"),
        }

    def _stage_error(self, parent: dict[str, Any], stage: dict[str, Any]) -> dict[str, Any]:
        etype, sub, meta = canonical("error", "step_failure", self.report,
                                     {"source_id": stage["id"], "source_table": "task_stages"})
        return {"id": self.id("task_stages.error", stage["id"]),
                "run_id": stage_run_id(parent["id"], stage["stage_name"]),
                "session_id": self.session_of(parent), "event_type": etype, "event_subtype": sub,
                "agent_name": "system", "timestamp": stage.get("completed_at") or stage.get("started_at"),
                "error_message": stage["error_message"], "status": "failed", "meta": meta}

    def _node(self, node: dict[str, Any]) -> dict[str, Any]:
        meta = _dict(node.get("meta"))
        meta.setdefault("id", node["id"])
        meta["source_id"] = node["id"]
        return {"id": self.node_ids[node["id"]], "run_id": self.run_ref(node["run_id"]),
                "session_id": self.session_of(node),
                "parent_node_id": self.node_ids.get(node.get("parent_node_id")),
                "node_type": node.get("node_type") or "agent", "agent": node.get("agent"),
                "status": node.get("status") or "pending", "order_index": node.get("order_index") or 0,
                "depth": node.get("depth") or 0, "meta": meta}

    def _event(self, event: dict[str, Any]) -> dict[str, Any]:
        meta = {**_dict(event.get("meta")), "source_id": event["id"]}
        etype, sub, meta = canonical(event["event_type"], event.get("event_subtype"), self.report, meta)
        return {
            "id": self.id("execution_events", event["id"]), "run_id": self.run_ref(event["run_id"]),
            "node_id": self.node_ref(event.get("node_id")), "step_id": event.get("step_id"),
            "session_id": self.session_of(event),
            "parent_event_id": self.id("execution_events", event.get("parent_event_id")),
            "event_type": etype, "event_subtype": sub, "agent_name": event.get("agent_name"),
            "agent_role": event.get("agent_role"), "timestamp": event.get("timestamp"),
            "started_at": event.get("started_at"), "completed_at": event.get("completed_at"),
            "duration_ms": event.get("duration_ms"), "inputs": event.get("inputs"),
            "outputs": event.get("outputs"), "error_message": event.get("error_message"), "meta": meta,
            "execution_order": event.get("execution_order") or 0, "depth": event.get("depth") or 0,
            "status": event.get("status") or "completed",
        }

    def node_ref(self, node_id: str | None) -> str | None:
        if node_id is None:
            return None
        if node_id not in self.node_ids:
            self.report.unmapped["reference to an unknown dag node"] += 1
            return self.id("dag_nodes", node_id)
        return self.node_ids[node_id]

    def _file(self, row: dict[str, Any]) -> dict[str, Any]:
        relative, outside = relative_path(row["file_path"], self.work_dirs.get(row["run_id"]))
        meta = {**_dict(row.get("meta")), "source_id": row["id"], "source_path": row["file_path"]}
        if outside:
            meta["outside_work_dir"] = True
        keep = ("file_type", "size_bytes", "created_at", "workflow_phase", "content_hash",
                "generating_agent", "generating_code_hash", "priority", "step_id")
        out = {k: row.get(k) for k in keep}
        run_id = self.run_ref(row["run_id"])
        return {**out, "file_path": relative, "id": stable_id(run_id, "file", relative), "run_id": run_id,
                "session_id": self.session_of(row), "event_id": self.id("execution_events", row.get("event_id")),
                "node_id": self.node_ref(row.get("node_id")), "file_type": row.get("file_type") or "other",
                "is_final_output": bool(row.get("is_final_output")), "meta": meta}

    def _message(self, row: dict[str, Any]) -> dict[str, Any]:
        meta = {**_dict(row.get("meta")), "source_id": row["id"]}
        return {"run_id": self.run_ref(row["run_id"]), "session_id": self.run_session[row["run_id"]],
                "step_id": row.get("step_id"), "event_id": self.id("execution_events", row.get("event_id")),
                "node_id": self.node_ref(row.get("node_id")), "sender": row.get("sender"),
                "recipient": row.get("recipient"), "content": row.get("content"),
                "timestamp": row.get("timestamp"), "tokens": row.get("tokens"), "meta": meta}

    def _cost(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"run_id": self.run_ref(row["run_id"]), "session_id": self.run_session[row["run_id"]],
                "step_id": row.get("step_id"), "model": row.get("model"),
                "agent_name": row.get("agent_name") or UNATTRIBUTED,
                "parent_run_id": self.run_ref(row.get("parent_run_id")),
                "prompt_tokens": row.get("prompt_tokens") or 0,
                "completion_tokens": row.get("completion_tokens") or 0,
                "total_tokens": row.get("total_tokens") or 0, "cost_usd": row.get("cost_usd") or 0,
                "timestamp": row.get("timestamp")}


def _task_id(run: dict[str, Any], files: list[dict[str, Any]]) -> str | None:
    """The run's UI task id: ``meta.task_id``, else the one task folder of the run's session that its files sit in
    (older MARS versions wrote no task id but kept the folder layout)."""
    recorded = _dict(run.get("meta")).get("task_id")
    if recorded:
        return str(recorded)
    folders = {found.group(1) for row in files
               if (found := re.search(rf"/sessions/{re.escape(str(run.get('session_id')))}/tasks/([^/]+)/",
                                      str(row.get("file_path") or "")))}
    return folders.pop() if len(folders) == 1 else None


def _work_dir(run: dict[str, Any], task_id: str | None) -> str | None:
    """Where a MARS run wrote its files: ``meta.work_dir`` (Denario), else ``<workDir>/sessions/<session>/tasks/
    <task id>`` when the run's task is known."""
    meta = _dict(run.get("meta"))
    if meta.get("work_dir"):
        return str(meta["work_dir"])
    if meta.get("workDir") and task_id and run.get("session_id"):
        return f"{meta['workDir']}/sessions/{run['session_id']}/tasks/{task_id}"
    return None


def import_cmbagent_db(path: str | Path, store: CaptureStore, *, session: str | None = None,
                       quiet: bool = True) -> ImportReport:
    """Merge every run of a MARS database (and its stages) into ``store``; one transaction per run."""
    path = Path(path)
    with importing("cmbagent-db", path, store, quiet=quiet) as job:
        with open_readonly(path, REQUIRED_TABLES, "a CMBAgent database") as conn:
            job.where = "its tables"
            mapper = _Mapper(_Reader(conn, path), path.name, job.report, session)
            sessions = mapper.session_rows(path)
            contributions = []
            for run in mapper.runs:
                job.where = f"workflow_runs id {run.get('id')!r}"
                contributions += mapper.contributions(run, sessions)
        job.progress.total_runs = len(contributions)
        job.write_all(contributions)
    return job.report
