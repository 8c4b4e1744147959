"""Small, realistic CMBAgent-shaped runs written through the real CaptureStore, for pipeline tests.

Three task families with the reference system's agents (planner, engineer, executor, control, researcher,
terminator), a parameterised task per run, nested LLM calls, files, costs, and outcomes: success, a retry loop
(failed code execution then a fix) and a failed run. Deterministic for a given seed.
"""

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from capture.store.capture_store import Batch, CaptureStore

# family -> (task template, parameter generator, steps [(event_type, agent, tool or None)])
FAMILIES: dict[str, tuple[str, Any, list[tuple[str, str, str | None]]]] = {
    "plot": ("Plot {function} over [{x_min}, {x_max}] and save the figure as {file_name}",
             lambda r: {"function": r.choice(["sin(x)", "cos(x)", "x**2", "exp(-x)"]), "x_min": r.randint(-5, 0),
                        "x_max": r.randint(1, 10), "file_name": f"plot_{r.randint(1, 99)}.png"},
             [("agent_call", "planner", None), ("agent_call", "engineer", None), ("code_exec", "executor", None),
              ("file_gen", "executor", None), ("tool_call", "control", "record_status"),
              ("agent_call", "terminator", None)]),
    "fit": ("Fit a {model} model to {data_file}",
            lambda r: {"model": r.choice(["linear", "quadratic", "gaussian"]),
                       "data_file": f"data_{r.randint(1, 50)}.csv"},
            [("agent_call", "planner", None), ("agent_call", "plan_reviewer", None),
             ("agent_call", "engineer", None), ("code_exec", "executor", None),
             ("agent_call", "engineer_response_formatter", None), ("tool_call", "control", "record_status"),
             ("agent_call", "engineer", None), ("code_exec", "executor", None),
             ("agent_call", "terminator", None)]),
    "papers": ("Summarise recent papers on {topic}",
               lambda r: {"topic": r.choice(["dark energy", "CMB lensing", "galaxy clustering"])},
               [("agent_call", "researcher", None), ("tool_call", "researcher", "search_arxiv"),
                ("tool_call", "researcher", "read_pdf"), ("agent_call", "researcher_response_formatter", None),
                ("file_gen", "researcher", None), ("agent_call", "terminator", None)]),
}
START = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class PlannedRun:
    """Ground truth of one generated run (kept by the test, never written to the store)."""

    run_id: str
    family: str
    params: dict[str, Any]
    outcome: str


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128)))


def run_batch(rng: random.Random, family: str, outcome: str, index: int) -> tuple[Batch, PlannedRun]:
    """All rows of one run: run, one node per step, events (with nested LLM calls), files and costs."""
    template, params_of, steps = FAMILIES[family]
    params = params_of(rng)
    run_id = _uid(rng)
    t0 = START + timedelta(minutes=index)
    batch = Batch(runs=[{"id": run_id, "session_id": "tests", "mode": "planning_and_control",
                         "agent": "planner", "model": "gpt-4o", "status": "executing", "started_at": t0,
                         "task_description": template.format(**params)}])
    order = 0
    plan = list(steps)
    if outcome == "retry":
        at = next(i for i, s in enumerate(plan) if s[0] == "code_exec") if any(
            s[0] == "code_exec" for s in plan) else 1
        plan[at:at] = [("code_exec_fail", "executor", None), ("agent_call", "engineer", None)]
    failed_at = len(plan) - 2 if outcome == "failed" else None
    for step_no, (etype, agent, tool) in enumerate(plan):
        node_id = _uid(rng)
        batch.nodes.append({"id": node_id, "run_id": run_id, "session_id": "tests", "agent": agent,
                            "node_type": "agent", "order_index": step_no, "status": "completed"})
        event_id = _uid(rng)
        order += 1
        status, meta, outputs = "completed", {}, {"content": f"{agent} done"}
        real_type = "code_exec" if etype == "code_exec_fail" else etype
        if etype == "code_exec_fail" or step_no == failed_at:
            status = "failed"
            meta["exit_code"] = 1
            outputs = {"stderr": "Traceback (most recent call last): ValueError", "exit_code": 1}
        elif real_type == "code_exec":
            meta["exit_code"] = 0
            outputs = {"stdout": "ok", "exit_code": 0}
        if tool:
            meta["tool_name"] = tool
        if real_type == "file_gen":
            meta["file_type"] = "plot" if family == "plot" else "report"
        ts = t0 + timedelta(seconds=10 * order)
        batch.events.append({"id": event_id, "run_id": run_id, "node_id": node_id, "session_id": "tests",
                             "event_type": real_type, "event_subtype": "complete" if real_type != "file_gen"
                             else "create", "agent_name": agent, "timestamp": ts, "started_at": ts,
                             "completed_at": ts + timedelta(seconds=5), "duration_ms": 5000 + 100 * step_no,
                             "inputs": {"task": template.format(**params), **({"args": params} if tool else {})},
                             "outputs": outputs, "meta": meta, "execution_order": order, "status": status})
        if real_type == "agent_call":
            order += 1
            llm_id = _uid(rng)
            batch.events.append({"id": llm_id, "run_id": run_id, "node_id": node_id, "session_id": "tests",
                                 "parent_event_id": event_id, "event_type": "llm_call", "event_subtype": "complete",
                                 "agent_name": agent, "timestamp": ts, "execution_order": order, "depth": 1,
                                 "inputs": {"messages": [{"role": "user", "content": template.format(**params)}]},
                                 "outputs": {"content": "ok"}, "status": "completed"})
            batch.costs.append({"run_id": run_id, "session_id": "tests", "event_id": llm_id, "node_id": node_id,
                                "agent_name": agent, "model": "gpt-4o", "prompt_tokens": 900,
                                "completion_tokens": 100, "total_tokens": 1000, "cost_usd": 0.01})
        if real_type == "file_gen":
            name = params.get("file_name", "summary.md")
            batch.files.append({"id": _uid(rng), "run_id": run_id, "session_id": "tests", "event_id": event_id,
                                "node_id": node_id, "file_path": f"/work/{run_id[:8]}/{name}",
                                "file_type": meta["file_type"], "size_bytes": 2048,
                                "generating_agent": agent})
        if step_no == failed_at:
            order += 1
            batch.events.append({"id": _uid(rng), "run_id": run_id, "node_id": node_id, "session_id": "tests",
                                 "event_type": "error", "event_subtype": "exception", "agent_name": agent,
                                 "timestamp": ts, "execution_order": order, "status": "failed",
                                 "error_message": "RateLimitError: 429 Too Many Requests"})
            break
    batch.runs[0].update(status="failed" if outcome == "failed" else "completed",
                         completed_at=t0 + timedelta(seconds=10 * order + 5))
    return batch, PlannedRun(run_id, family, params, outcome)


def write_runs(store: CaptureStore, n_runs: int, *, seed: int = 0, start_index: int = 0,
               families: tuple[str, ...] = tuple(FAMILIES)) -> list[PlannedRun]:
    """Write ``n_runs`` runs (families round-robin; ~15% retry, ~10% failed) and return their ground truth."""
    rng = random.Random(seed)
    planned = []
    for i in range(n_runs):
        family = families[i % len(families)]
        roll = rng.random()
        outcome = "failed" if roll < 0.10 else "retry" if roll < 0.25 else "success"
        batch, run = run_batch(rng, family, outcome, start_index + i)
        store.write_batch(batch)
        planned.append(run)
    return planned
