"""Import CMBAgent benchmark trials (``benchmarks_cmbagent_trials.jsonl``: one JSON object per trial).

A trial is a run: mode from the suite (``evals`` one-shot, ``pacevals`` planning and control), model from the
prompt group's name when it names one, ``meta.prompt_group`` and ``meta.trial``. Each agent row of a cost report
(the ``Total`` row is a sum) becomes an ``llm_call`` event flagged ``aggregate`` (the report sums that agent's
calls) with its cost record, attached to the ``step_N`` or ``planning`` node the report belongs to; the final
plan gives those nodes. Timing reports are kept in ``meta.timing`` (a single report also gives
``meta.duration_s``); the trials record no clock times, so events carry ``no_source_time`` and the run has no start.
Artefacts and reports become ``files`` rows (relative paths, as recorded). The benchmark has no success flag: one
-shot trials with ``data/result.csv`` (its usual proxy) are ``completed``, those without ``failed``; planning and
control trials keep no result file, so their outcome is ``unknown`` (``meta.outcome``) and their status
``completed``.
"""

import re
from pathlib import Path
from typing import Any

from capture.importers.common import ImportReport, SourceError, importing, json_lines, stable_id
from capture.importers.mars_session import STEP_COST, file_type, plan_nodes
from capture.importers.merge import Contribution
from capture.importers.transcript import RunBuilder, as_number, cost_report_row
from capture.store.capture_store import Batch, CaptureStore

MODES = {"evals": "one_shot", "pacevals": "planning_and_control"}
GROUP_MODEL = re.compile(r"^prompt_engineer(.+)_\d+$")
RESULT = "data/result.csv"
STEP_TIMING = re.compile(r"timing_report_step_(\d+)_")


def _outcome(suite: str, artifacts: list[str]) -> tuple[str, str]:
    """(run status, meta.outcome) from the benchmark's success proxy."""
    if suite != "evals":
        return "completed", "unknown"
    return ("completed", "result.csv present") if RESULT in artifacts else ("failed", "no data/result.csv")


class _Trial:
    """One trial line turned into a run's contribution."""

    def __init__(self, record: dict[str, Any], where: str, session_id: str, report: ImportReport) -> None:
        self.record = record
        self.where = where
        self.session_id = session_id
        self.report = report
        suite, group, trial = record.get("suite"), record.get("prompt_group"), record.get("trial")
        if not isinstance(suite, str) or not isinstance(group, str) or not isinstance(trial, int):
            raise SourceError(f"{where}: a trial needs 'suite' and 'prompt_group' (strings) and 'trial' (an integer)")
        self.suite, self.group, self.trial = suite, group, trial
        self.run_id = stable_id("cmbagent-trials", suite, group, trial)

    def _list(self, key: str) -> list[Any]:
        value = self.record.get(key) or []
        if not isinstance(value, list):
            raise SourceError(f"{self.where}: '{key}' must be a list")
        return value

    def contribution(self, session_row: dict[str, Any]) -> Contribution:
        builder = RunBuilder(self.run_id, self.session_id, self.report)
        nodes, edges = ([], []) if self.record.get("final_plan") is None else plan_nodes(
            self.record["final_plan"], self.run_id, self.session_id, f"{self.where}: final_plan")
        node_ids = {n["meta"]["id"]: n["id"] for n in nodes}
        artifacts = [a for a in self._list("artifacts") if isinstance(a, str)]
        files = [self._file(path, builder) for path in artifacts]
        for index, cost_report in enumerate(self._list("cost_reports")):
            if not isinstance(cost_report, dict) or not isinstance(cost_report.get("rows"), list):
                raise SourceError(f"{self.where}: cost_reports[{index}] needs a 'rows' list")
            path = str(cost_report.get("path") or f"cost_report_{index}.json")
            builder.node_id = self._node_of(path, node_ids)
            files.append(self._file(path, builder))
            for row in cost_report["rows"]:
                self._cost_row(builder, row, path)
        builder.node_id = None
        timing = []
        for index, timing_report in enumerate(self._list("timing_reports")):
            if not isinstance(timing_report, dict) or not isinstance(timing_report.get("data"), dict):
                raise SourceError(f"{self.where}: timing_reports[{index}] needs a 'data' object")
            path = str(timing_report.get("path") or f"timing_report_{index}.json")
            timing.append({"path": path, **timing_report["data"]})
            files.append(self._file(path, builder))
            step = STEP_TIMING.search(path)
            node = next((n for n in nodes if step and n["meta"]["id"] == f"step_{step.group(1)}"), None)
            if node is not None:
                node["meta"]["timing"] = timing_report["data"]
        status, outcome = _outcome(self.suite, artifacts)
        group_model = GROUP_MODEL.match(self.group)
        meta = {"source": "benchmarks_cmbagent_trials", "suite": self.suite, "prompt_group": self.group,
                "trial": self.trial, "outcome": outcome, "timing": timing, "source_times": False}
        if len(timing) == 1 and "total_time" in timing[0]:
            meta["duration_s"] = as_number(timing[0]["total_time"])
        run = {"id": self.run_id, "session_id": self.session_id, "mode": MODES.get(self.suite, self.suite),
               "model": group_model.group(1) if group_model else None, "status": status,
               "task_description": f"CMBAgent benchmark prompt {self.group}", "meta": meta}
        batch = Batch(runs=[run], nodes=nodes, edges=edges, events=builder.events, files=files,
                      costs=builder.costs)
        label = f"cmbagent-trials:{self.suite}/{self.group}/trial_{self.trial}"
        return Contribution(self.run_id, label, 1, batch, session_row)

    @staticmethod
    def _node_of(path: str, node_ids: dict[str, str]) -> str | None:
        step = STEP_COST.search(path)
        if step:
            return node_ids.get(f"step_{step.group(1)}")
        return node_ids.get("planning") if path.startswith("planning/") else None

    def _cost_row(self, builder: RunBuilder, row: Any, path: str) -> None:
        group_model = GROUP_MODEL.match(self.group)
        parsed = cost_report_row(row, f"{self.where}: {path}")
        if parsed is not None:
            agent, cost = parsed
            if cost["model"] is None and group_model and agent == "engineer":
                cost["model"] = group_model.group(1)
            builder.llm_call(agent, {**cost, "cost_report": path}, aggregate=True)

    def _file(self, path: str, builder: RunBuilder) -> dict[str, Any]:
        return {"id": stable_id(self.run_id, "file", path), "run_id": self.run_id, "session_id": self.session_id,
                "node_id": builder.node_id, "file_path": path, "file_type": file_type(path),
                "workflow_phase": path.split("/", 1)[0] if "/" in path else None,
                "is_final_output": path == RESULT, "created_at": builder.untimed(),
                "meta": {"no_source_time": True, "listed_only": True}}


def import_cmbagent_trials(path: str | Path, store: CaptureStore, *, session: str | None = None,
                           quiet: bool = True) -> ImportReport:
    """Merge every trial of a benchmark-trials JSON-lines file into ``store`` as a run (one transaction each)."""
    path = Path(path)
    session_row = {"id": session or stable_id("cmbagent-trials-session", path.name),
                   "name": session or f"cmbagent trials {path.name}", "status": "active"}
    with importing("cmbagent-trials", path, store, quiet=quiet) as job:
        for number, record in json_lines(path, "one trial per line"):
            job.where = f"line {number}"
            trial = _Trial(record, f"{path}: line {number}", session_row["id"], job.report)
            job.write(trial.contribution(session_row))
        if not (job.report.runs_written or job.report.runs_skipped):
            raise SourceError(f"{path}: no trials (not one JSON line)")
    return job.report
