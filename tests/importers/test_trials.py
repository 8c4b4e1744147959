"""The benchmark-trials importer on seven real trials (one-shot engineer and camb_context, planning and control)."""

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select

from capture.importers import import_cmbagent_trials
from capture.store.capture_store import CaptureStore
from capture.store.models import CostRecord, DagNode, ExecutionEvent, File, WorkflowRun


def trials(data: Path) -> Path:
    return data / "cmbagent" / "benchmarks_cmbagent_trials.jsonl"


def test_trials_become_runs_with_outcome_costs_and_plan(sqlite_store: CaptureStore, data: Path) -> None:
    source = [json.loads(line) for line in trials(data).read_text().splitlines()]
    report = import_cmbagent_trials(trials(data), sqlite_store)
    agent_rows = [row for t in source for c in t["cost_reports"] for row in c["rows"] if row["Agent"] != "Total"]
    assert (report.runs_new, report.events, report.costs, dict(report.unmapped)) == (7, len(agent_rows),
                                                                                     len(agent_rows), {})
    with sqlite_store.engine.connect() as conn:
        runs = {(r.meta["prompt_group"], r.meta["trial"]): r for r in conn.execute(select(WorkflowRun))}
        llm = conn.execute(select(ExecutionEvent).where(ExecutionEvent.event_type == "llm_call")).all()
        total = conn.execute(select(func.sum(CostRecord.cost_usd))).scalar_one()
        steps = conn.execute(select(DagNode.meta).where(DagNode.run_id == runs[("prompt_c558ace9_0", 0)].id)
                             .order_by(DagNode.order_index)).scalars().all()
        step_costs = conn.execute(select(DagNode.meta["id"].as_string(), func.count())
                                  .join(CostRecord, CostRecord.node_id == DagNode.id)
                                  .group_by(DagNode.meta["id"].as_string())).all()
        result_files = conn.execute(select(File.run_id).where(File.is_final_output.is_(True))).scalars().all()
    assert Counter((r.mode, r.status, r.meta["outcome"]) for r in runs.values()) == {
        ("one_shot", "completed", "result.csv present"): 4, ("one_shot", "failed", "no data/result.csv"): 1,
        ("planning_and_control", "completed", "unknown"): 2}
    gpt4o = runs[("prompt_engineergpt-4o_0", 0)]
    assert gpt4o.model == "gpt-4o" and gpt4o.meta["duration_s"] > 0 and gpt4o.started_at is None
    assert gpt4o.meta["source_times"] is False
    assert all(e.meta["aggregate"] and e.meta["no_source_time"] for e in llm)
    assert " " not in "".join(e.agent_name for e in llm) and "executor_response_formatter" in {e.agent_name for e in llm}
    source_total = sum(Decimal(str(row["Cost ($)"])).quantize(Decimal("0.000001")) for row in agent_rows)
    assert abs(total - source_total) <= Decimal("0.000001") * len(agent_rows)
    assert [m["id"] for m in steps] == ["planning", "step_1", "step_2", "step_3"]
    assert steps[1]["timing"]["total_time"] > 0
    assert {name for name, _ in step_costs} == {"planning", "step_1", "step_2", "step_3"}
    assert len(result_files) == 4
