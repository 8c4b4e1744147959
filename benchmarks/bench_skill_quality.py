"""Skill quality against the simulator's ground truth: skill groups, steps, slots, success intervals, baseline.

One command::

    .venv/bin/python benchmarks/bench_skill_quality.py --runs 2000 [--ag2-runs 30] [--seed 1] [--record]

A fast-engine simulation (realistic outcome mix) is written to a temporary SQLite store; the production mining path
(``mining_steps.mine_store``: extraction into DuckDB, tokens, ``mining.compose`` groups, patterns, templates and
statistics, exactly the steps of the Dagster job) mines it; the MARS baseline (``auto_discover_skills``
over ``event_type:agent`` tokens) groups the same runs in the same process. Scores:

* ARI of run -> skill group against the true (mode, template_id);
* step precision / recall of each skill's required steps against the success path of its matched true group,
  derived from the simulator's script (``quality.script_step_tokens``);
* parameter-slot precision / recall / F1 of each run's slot values against its true params;
* Wilson 95% interval coverage of the true success rate (share of completed runs among the group's finished
  runs, per ground truth) and of the generating model's success probability.

``--ag2-runs`` repeats the scoring on real AG2-engine runs (real agents, scripted model clients), the scale at which
``skillmine quickstart`` first showed one_shot task families collapsing into one skill.

The ground truth is read only here and in tests, never by the miner.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capture.store.models import ExecutionEvent, WorkflowRun
from skill_pipeline.lib.mining_steps import mine_store
from skill_pipeline.mining.baseline import auto_discover_skills, baseline_sequences, extract_agent_pattern
from skill_pipeline.mining.quality import (
    adjusted_rand,
    interval_coverage,
    script_step_tokens,
    slot_scores,
    step_precision_recall,
)
from skill_pipeline.mining.skill_groups import labels_of
from workloads.families import ENGINEER, FAMILIES
from workloads.ground_truth import read_ground_truth
from workloads.script import build_run_script
from workloads.simulate import simulate

EVENT_COLUMNS = ("seq", "run_id", "node_id", "event_type", "event_subtype", "agent_name", "status",
                 "execution_order", "inputs", "meta", "duration_ms")
RUN_COLUMNS = ("id", "mode", "status", "task_description", "started_at", "completed_at")
SECTION = "## Mining quality (issue 6)"
# The generating model's failure probability among finished runs (workloads/script.py::_draw_outcome): a rate
# limit ends 6% of engineer-family runs and 8% of the others.
RATE_LIMIT_SHARE = {ENGINEER: 0.06}
DEFAULT_RATE_LIMIT_SHARE = 0.08


def load_store(url: str) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Events per run (messages and llm calls left out: no step comes from them) and run rows, from a store."""
    engine = create_engine(url)
    events: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with engine.connect() as con:
        cols = [getattr(ExecutionEvent, c) for c in EVENT_COLUMNS]
        stmt = (select(*cols).where(ExecutionEvent.event_type.not_in(("message", "llm_call")))
                .order_by(ExecutionEvent.run_id, ExecutionEvent.seq))
        for row in con.execute(stmt):
            events[row.run_id].append(dict(zip(EVENT_COLUMNS, row, strict=True)))
        runs = {r.id: {"run_id": r.id, **{c: getattr(r, c) for c in RUN_COLUMNS[1:]}}
                for r in con.execute(select(*[getattr(WorkflowRun, c) for c in RUN_COLUMNS]))}
    engine.dispose()
    return dict(events), runs


def true_steps(mode: str, family: str, seed: int = 0) -> list[str]:
    """The success path of (mode, family) from the simulator's script of its first successful run."""
    for index in range(500):
        script = build_run_script(seed, index, modes=(mode,), families=(family,))
        if script.outcome == "success":
            return script_step_tokens(script.nodes)
    raise ValueError(f"no successful {mode}/{family} script in 500 draws")


def _majority(values: list[Any]) -> Any:
    return min(Counter(values).items(), key=lambda kv: (-kv[1], str(kv[0])))[0]


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows) if rows else 0.0


def _covered(labels: dict[str, str], template_of: dict[str, Any], groups: list, runs: dict[str, dict]) -> float:
    """Share of successful runs that belong to a published (publishable) skill."""
    published = {g.group_id for g in groups if template_of[g.group_id].publishable}
    good = [r for r, run in runs.items() if str(run.get("status")) == "completed"]
    return sum(labels.get(r) in published for r in good) / len(good) if good else 0.0


def evaluate(url: str, truth_path: Path) -> dict[str, Any]:
    """Mine the store at ``url`` with the pipeline's mining path and score it (and the baseline) against the
    ground truth."""
    events, runs = load_store(url)
    truth = {t.run_id: t for t in read_ground_truth(truth_path)}
    run_ids = sorted(r for r in runs if r in truth)
    true_group = {r: (truth[r].mode, truth[r].family) for r in run_ids}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-warehouse-") as tmp:
        mined, _ = mine_store(url, Path(tmp) / "warehouse.duckdb")
    mine_seconds = time.perf_counter() - started
    groups = mined.groups
    template_of = {t.group_id: t for t in mined.templates}
    labels = labels_of(groups)

    started = time.perf_counter()
    base_seqs = baseline_sequences([e for r in run_ids for e in events.get(r, [])])
    base_runs = [r for r in run_ids if r in base_seqs]
    base = auto_discover_skills([base_seqs[r] for r in base_runs])
    base_seconds = time.perf_counter() - started

    steps, base_steps, intervals, rates, model_rates, pred, gold = [], [], [], [], [], {}, {}
    truth_steps = {g: true_steps(*g) for g in set(true_group.values())}
    skills = []
    for group in groups:
        template = template_of[group.group_id]
        skill = {**template.candidate, "slot_values": template.slot_values}
        skills.append(skill)
        matched = _majority([true_group[r] for r in group.run_ids])
        required = [s.token for s in mined.patterns[group.group_id].steps if not s.optional]
        steps.append(step_precision_recall(required, truth_steps[matched]))
        finished = [truth[r].status == "completed" for r in group.run_ids if truth[r].status in ("completed", "failed")]
        intervals.append(skill["statistics"].get("success_wilson", [0.0, 1.0]))
        skill["successes"] = sum(runs[r]["status"] == "completed" for r in group.run_ids)
        rates.append(sum(finished) / len(finished) if finished else 0.0)
        model_rates.append(1.0 - RATE_LIMIT_SHARE.get(FAMILIES[matched[1]].kind, DEFAULT_RATE_LIMIT_SHARE))
        for r in group.run_ids:
            pred[r], gold[r] = skill["slot_values"].get(r, {}), truth[r].params
    for members in (m for m in base.groups if len(m) >= 3):
        matched = _majority([true_group[base_runs[i]] for i in members])
        clean = [base_seqs[r] for r in run_ids if true_group[r] == matched and truth[r].outcome == "success"]
        base_steps.append(step_precision_recall(extract_agent_pattern([base_seqs[base_runs[i]] for i in members]),
                                                _majority([tuple(s) for s in clean]) if clean else []))
    slots = slot_scores(pred, gold)
    true_labels = [f"{m}/{f}" for m, f in (true_group[r] for r in run_ids)]
    return {
        "runs": len(run_ids), "events": sum(len(v) for v in events.values()),
        "runs_grouped": len(labels), "successful_runs_covered": _covered(labels, template_of, groups, runs),
        "true_groups": len(set(true_group.values())), "groups": len(groups),
        "ari": adjusted_rand(true_labels, [labels[r] for r in run_ids]),
        "baseline_ari": adjusted_rand(true_labels, [base.labels[base_runs.index(r)] for r in run_ids]),
        "baseline_groups": len(base.groups),
        "step_precision": _mean(steps, "precision"), "step_recall": _mean(steps, "recall"),
        "min_step_recall": min(s["recall"] for s in steps),
        "baseline_step_precision": _mean(base_steps, "precision"), "baseline_step_recall": _mean(base_steps, "recall"),
        "slot_precision": slots["precision"], "slot_recall": slots["recall"], "slot_f1": slots["f1"],
        "interval_coverage": interval_coverage(intervals, rates),
        "model_interval_coverage": interval_coverage(intervals, model_rates),
        "mine_s": mine_seconds, "baseline_s": base_seconds,
        "skills": [{"name": s["name"], "title": s["title"], "task_template": s["task_template"],
                    "parameters": {k: p.get("description", "") for k, p in s["parameters"].items()},
                    "values": sorted({str(v) for run in s["slot_values"].values() for v in run.values()}),
                    "runs": s["statistics"]["support"], "successes": s["successes"],
                    "success_ci95": s["statistics"].get("success_wilson"), "step_recall": round(pr["recall"], 3)}
                   for s, pr in zip(skills, steps, strict=True)],
    }


def render(q: dict[str, Any], engine: str) -> str:
    ratio = q["ari"] / q["baseline_ari"] if q["baseline_ari"] > 0 else float("inf")
    lines = [
        (f"{q['runs']:,} {engine}-engine runs ({q['events']:,} step-relevant events), {q['true_groups']} true (mode, "
        f"template) groups; mining (tokens, groups, patterns, templates, statistics) {q['mine_s']:.1f} s, "
        f"baseline {q['baseline_s']:.1f} s."),
        "",
        "| figure | skillmine | MARS baseline (auto_discover_skills) | target |",
        "|---|---|---|---|",
        (f"| ARI run -> skill vs (mode, template_id) | {q['ari']:.3f} ({q['groups']} groups) | "
        f"{q['baseline_ari']:.3f} ({q['baseline_groups']} groups) | >= 0.95 |"),
        (f"| successful runs in a published skill | {q['successful_runs_covered']:.1%} | n/a | >= 90% |"),
        (f"| step precision / recall vs scripted success path | {q['step_precision']:.3f} / {q['step_recall']:.3f} "
        f"(min recall {q['min_step_recall']:.2f}) | {q['baseline_step_precision']:.3f} / "
        f"{q['baseline_step_recall']:.3f} | >= 0.95 |"),
        (f"| parameter slot P / R / F1 | {q['slot_precision']:.3f} / {q['slot_recall']:.3f} / {q['slot_f1']:.3f} | "
        "n/a (no parameters) | F1 >= 0.90 |"),
        (f"| Wilson 95% intervals containing the group's true success share | {q['interval_coverage']:.1%} | n/a | "
        "100% |"),
        (f"| Wilson 95% intervals containing the generating model's success probability | "
        f"{q['model_interval_coverage']:.1%} | n/a | ~95% |"),
        f"| ARI ratio skillmine / baseline | {ratio:.2f}x | | |",
        "",
        "Skills with step recall below 1 (their successful runs / runs): " + ("; ".join(
            f"`{s['name']}` {s['step_recall']:.2f} ({s['successes']}/{s['runs']})"
            for s in q["skills"] if s["step_recall"] < 1) or "none"),
        "",
        "Skills: " + "; ".join(f"`{s['name']}` ({s['runs']})" for s in q["skills"]),
    ]
    return "\n".join(lines)


def record(text: str) -> None:
    """Replace (or append) this benchmark's section of RESULTS.md; other sections are left alone."""
    path = ROOT / "benchmarks" / "RESULTS.md"
    content = path.read_text() if path.exists() else "# Benchmark results\n"
    path.write_text(with_section(content, text))


def with_section(content: str, text: str) -> str:
    """``content`` with this benchmark's section set to ``text`` (appended when absent)."""
    section = f"{SECTION}\n\n{text}\n"
    start = content.find(SECTION)
    if start == -1:
        return content.rstrip("\n") + "\n\n" + section
    end = content.find("\n## ", start + len(SECTION))
    return content[:start] + section + ("\n" + content[end + 1:] if end != -1 else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--ag2-runs", type=int, default=0,
                        help="also score this many real AG2-engine runs (the quickstart's scale; 0 = skip)")
    parser.add_argument("--record", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    command = "python benchmarks/bench_skill_quality.py " + " ".join(sys.argv[1:])
    engines = [("fast", args.runs)] + ([("ag2", args.ag2_runs)] if args.ag2_runs else [])
    parts, figures = [f"`{command}`"], {}
    with tempfile.TemporaryDirectory(prefix="bench-skill-quality-") as tmp:
        for engine, runs in engines:
            url, truth = f"sqlite:///{Path(tmp) / f'{engine}.db'}", Path(tmp) / f"{engine}-truth.jsonl"
            simulate(runs=runs, seed=args.seed, engine=engine, url=url, ground_truth=truth,
                     work_dir=Path(tmp) / "ag2-work")
            figures[engine] = evaluate(url, truth)
            parts.append(render(figures[engine], engine))
    text = "\n\n".join(parts)
    print(text)
    print(json.dumps(figures, indent=1, default=str))
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
