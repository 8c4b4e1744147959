"""Mining pipeline benchmark: quality against the simulator's ground truth, the MARS baseline, and scale.

One command::

    .venv/bin/python benchmarks/bench_mining.py --runs 2000 [--scale-runs 100000] [--record]

* **Quality** (``--runs``): a fast-engine simulation (realistic outcome mix) is mined end to end by the real
  Dagster job (store -> DuckDB -> templates -> release). Scored with ``skill_pipeline.mining.quality``: clustering
  ARI against the true (mode, task template) groups, template step precision/recall against the clean path of the
  matched group, parameter-slot F1 against the true parameter values, and Wilson-interval coverage of the
  generating model's success rate. The MARS stage-4 baseline (contiguous n-gram tokens + greedy 0.8 Levenshtein
  grouping) runs on the same events in the same process.
* **Incremental**: 1% more runs are simulated and the job re-runs; its time is compared with the full run.
* **Scale** (``--scale-runs``, or ``--scale-store`` for a store simulated beforehand): the same job on a large
  simulation, wall time and peak RSS; then 1% more runs are simulated into that store and the job re-runs.
  ``--runs 0`` skips the quality part.

The ground truth is read only here, never by the miner. Simulations run in a child process so that the peak RSS
reported (``resource.getrusage``) is the pipeline's own.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from capture.store.capture_store import CaptureStore
from capture.store.migrate import upgrade
from skill_pipeline.definitions import defs
from skill_pipeline.lib import loaders
from skill_pipeline.mining.baseline import auto_discover_skills, baseline_sequences, extract_agent_pattern
from skill_pipeline.mining.clustering import reduce_sequence
from skill_pipeline.mining.quality import (
    clustering_scores,
    interval_coverage,
    slot_scores,
    step_precision_recall,
)
from skill_pipeline.resources import (
    EventStoreResource,
    MiningSettings,
    SkillLibraryResource,
    WarehouseResource,
)
from workloads.families import FAMILIES
from workloads.ground_truth import read_ground_truth

# The generating model's failure probability (workloads/script.py::_draw_outcome): a rate-limit failure ends
# 6% of engineer-family runs and 8% of the others; every other finished run completes.
RATE_LIMIT_SHARE = {"engineer": 0.06}
DEFAULT_RATE_LIMIT_SHARE = 0.08


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def simulate(url: str, runs: int, seed: int, truth: Path) -> float:
    """Run ``skillmine simulate`` in a child process; returns its wall time."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skillmine.cli", "simulate", "--runs", str(runs), "--seed", str(seed),
                    "--engine", "fast", "--url", url, "--ground-truth", str(truth), "--quiet"],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def run_job(url: str, work: Path, granularity: str) -> tuple[float, dict[str, dict[str, Any]]]:
    """Run the mining job in-process; returns wall seconds and, per asset, its metadata (plus ``steps``:
    seconds per step, ``cpu_s``: the process's CPU seconds, DuckDB's threads included, and ``load``: the load
    average when it ended; on a shared machine CPU seconds compare runs, wall seconds do not)."""
    resources = {"event_store": EventStoreResource(database_url=url),
                 "warehouse_db": WarehouseResource(path=str(work / "warehouse.duckdb")),
                 "skill_library": SkillLibraryResource(path=str(work / "library")),
                 "mining_settings": MiningSettings(granularity=granularity)}
    started, cpu = time.perf_counter(), time.process_time()
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("mine_skills_job").execute_in_process(
            resources=resources, instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
    elapsed = time.perf_counter() - started
    meta: dict[str, Any] = {"cpu_s": time.process_time() - cpu, "load": os.getloadavg()[0]}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        meta[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    meta["steps"] = {e.step_key: round(e.event_specific_data.duration_ms / 1000, 2)
                     for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    return elapsed, meta


def _majority(labels: list[str]) -> str:
    return min(Counter(labels).items(), key=lambda kv: (-kv[1], kv[0]))[0]


def _gold_steps(group_runs: list[str], truth: dict, sequences: dict[str, list[str]]) -> list[str]:
    """The clean path of a true group: the most common reduced sequence of its first-try successful runs."""
    clean = [tuple(reduce_sequence(sequences[r])) for r in group_runs
             if r in sequences and truth[r].outcome == "success" and truth[r].n_attempts == 1]
    return list(_majority([" ".join(c) for c in clean]).split(" ")) if clean else []


def true_rate(group: str) -> float:
    family = group.split("/", 1)[1].rsplit(".", 1)[0]
    kind = FAMILIES[family].kind
    return 1.0 - RATE_LIMIT_SHARE.get(kind, DEFAULT_RATE_LIMIT_SHARE)


def score(work: Path, truth_path: Path) -> dict[str, Any]:
    truth = {t.run_id: t for t in read_ground_truth(truth_path)}
    group = {r: f"{t.mode}/{t.template_id}" for r, t in truth.items()}
    con = duckdb.connect(str(work / "warehouse.duckdb"), read_only=True)
    try:
        assigned = dict(con.execute("SELECT run_id, cluster_id FROM run_clusters").fetchall())
        sequences = {r: json.loads(t) for r, t in con.execute("SELECT run_id, tokens FROM run_sequences").fetchall()}
        patterns = {c: json.loads(p) for c, p in con.execute("SELECT cluster_id, pattern FROM patterns").fetchall()}
        templates = con.execute("SELECT cluster_id, candidate, slot_values FROM skill_templates WHERE publishable"
                                ).fetchall()
        started = time.perf_counter()
        base_events = [e for _, evs in loaders.events_by_run(con) for e in evs]
    finally:
        con.close()
    runs = sorted(r for r in assigned if r in group)
    ours = clustering_scores([group[r] for r in runs], [assigned[r] for r in runs])
    ours_family = clustering_scores([truth[r].template_id for r in runs], [assigned[r] for r in runs])

    base_seqs = baseline_sequences(base_events)
    base_runs = sorted(r for r in base_seqs if r in group)
    base = auto_discover_skills([base_seqs[r] for r in base_runs])
    baseline_seconds = time.perf_counter() - started
    base_scores = clustering_scores([group[r] for r in base_runs], base.labels)

    members_by_group = defaultdict(list)
    for r in runs:
        members_by_group[group[r]].append(r)
    steps, slots, intervals, rates = [], {"pred": {}, "true": {}}, [], []
    for cluster_id, candidate_text, slot_text in templates:
        candidate, slot_values = json.loads(candidate_text), json.loads(slot_text)
        members = [r for r in runs if assigned[r] == cluster_id]
        matched = _majority([group[r] for r in members])
        predicted = [s["token"] for s in patterns[cluster_id]["steps"] if not s["optional"]]
        steps.append(step_precision_recall(predicted, _gold_steps(members_by_group[matched], truth, sequences)))
        for r in members:
            slots["pred"][r] = slot_values.get(r, {})
            slots["true"][r] = truth[r].params
        intervals.append(candidate["statistics"].get("success_wilson", [0.0, 1.0]))
        rates.append(true_rate(matched))
    base_steps = []
    for g_members in (grp for grp in base.groups if len(grp) >= 3):
        matched = _majority([group[base_runs[i]] for i in g_members])
        gold_clean = [base_seqs[r] for r in members_by_group[matched]
                      if truth[r].outcome == "success" and truth[r].n_attempts == 1]
        gold = list(_majority([" ".join(s) for s in gold_clean]).split(" ")) if gold_clean else []
        base_steps.append(step_precision_recall(extract_agent_pattern([base_seqs[base_runs[i]] for i in g_members]),
                                                gold))
    slot = slot_scores(slots["pred"], slots["true"])

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return sum(r[key] for r in rows) / len(rows) if rows else 0.0

    return {
        "true_groups": len(set(group.values())), "clusters": len(set(assigned.values())),
        "ari": ours["ari"], "ari_template_only": ours_family["ari"], "ami": ours["ami"],
        "baseline_ari": base_scores["ari"], "baseline_groups": len(base.groups), "baseline_seconds": baseline_seconds,
        "templates": len(templates), "step_precision": mean(steps, "precision"), "step_recall": mean(steps, "recall"),
        "baseline_step_precision": mean(base_steps, "precision"), "baseline_step_recall": mean(base_steps, "recall"),
        "slot_precision": slot["precision"], "slot_recall": slot["recall"], "slot_f1": slot["f1"],
        "wilson_coverage": interval_coverage(intervals, rates),
    }


def quality_and_incremental(runs: int, seed: int, granularity: str, work: Path) -> dict[str, Any]:
    url = f"sqlite:///{work / 'capture.db'}"
    truth = work / "truth.jsonl"
    sim_seconds = simulate(url, runs, seed, truth)
    full_seconds, meta = run_job(url, work, granularity)
    figures = {"runs": runs, "events": meta["raw_agent_events"]["dagster/row_count"], "simulate_s": sim_seconds,
               "full_s": full_seconds, "silhouette": meta["sequence_clusters"]["silhouette"],
               "published": meta["skill_library_release"]["dagster/row_count"], "full_steps": meta["steps"]}
    figures.update(score(work, truth))
    extra = max(1, runs // 100)
    simulate(url, extra, seed + 1000, work / "truth-extra.jsonl")
    store = CaptureStore.open(url)
    total_events = store.max_seq()
    store.close()
    inc_seconds, inc_meta = run_job(url, work, granularity)
    figures.update({"incremental_runs": extra, "incremental_events": inc_meta["raw_agent_events"]["rows_inserted"],
                    "incremental_s": inc_seconds, "incremental_ratio": inc_seconds / full_seconds,
                    "incremental_steps": inc_meta["steps"],
                    "events_after": total_events})
    return figures


def scale(runs: int, seed: int, granularity: str, work: Path, store_url: str | None = None) -> dict[str, Any]:
    """Mine a large simulation end to end, then add 1% more runs and mine again (``store_url``: an existing
    simulated store, not simulated again; the 1% is appended to it)."""
    url = store_url or f"sqlite:///{work / 'capture.db'}"
    sim_seconds = 0.0 if store_url else simulate(url, runs, seed, work / "truth.jsonl")
    if store_url:
        upgrade(url)  # a store simulated by an older version: this code's schema first (not timed)
    before = peak_rss_mb()
    seconds, meta = run_job(url, work, granularity)
    figures = {"runs": meta["raw_workflow_runs"]["dagster/row_count"],
               "events": meta["raw_agent_events"]["dagster/row_count"], "simulate_s": sim_seconds,
               "pipeline_s": seconds, "pipeline_cpu_s": meta["cpu_s"], "load": meta["load"],
               "events_per_s": meta["raw_agent_events"]["dagster/row_count"] / seconds,
               "peak_rss_mb": peak_rss_mb(), "rss_before_mb": before, "steps": meta["steps"],
               "clusters": meta["sequence_clusters"]["n_clusters"],
               "published": meta["skill_library_release"]["dagster/row_count"]}
    extra = max(1, figures["runs"] // 100)
    simulate(url, extra, seed + 2000 + figures["runs"], work / "truth-extra.jsonl")
    inc_seconds, inc_meta = run_job(url, work, granularity)
    figures.update({"incremental_runs": extra, "incremental_events": inc_meta["raw_agent_events"]["rows_inserted"],
                    "incremental_s": inc_seconds, "incremental_ratio": inc_seconds / seconds,
                    "incremental_cpu_s": inc_meta["cpu_s"], "incremental_cpu_ratio": inc_meta["cpu_s"] / meta["cpu_s"],
                    "incremental_load": inc_meta["load"], "incremental_steps": inc_meta["steps"],
                    "peak_rss_mb": peak_rss_mb()})
    return figures


def render_quality(q: dict[str, Any]) -> list[str]:
    ratio = q["ari"] / q["baseline_ari"] if q["baseline_ari"] else float("inf")
    rows = [
        ("clustering ARI vs (mode, template)", f"{q['ari']:.3f} ({q['clusters']} clusters)",
         f"{q['baseline_ari']:.3f} ({q['baseline_groups']} groups)", ">= 0.95"),
        ("clustering ARI vs template only", f"{q['ari_template_only']:.3f}", "", ""),
        ("template step precision / recall",
         f"{q['step_precision']:.3f} / {q['step_recall']:.3f} ({q['templates']} templates)",
         f"{q['baseline_step_precision']:.3f} / {q['baseline_step_recall']:.3f}", ">= 0.95"),
        ("parameter slot P / R / F1", f"{q['slot_precision']:.3f} / {q['slot_recall']:.3f} / {q['slot_f1']:.3f}",
         "n/a (no per-run values)", "F1 >= 0.90"),
        ("Wilson 95% interval covers the true success rate", f"{q['wilson_coverage']:.1%}", "n/a (fixed 1.0)", ""),
        ("ratio ARI skillmine / baseline", f"{ratio:.2f}x", "", ""),
    ]
    return [(f"Quality: {q['runs']:,} simulated runs ({q['events']:,} events), {q['true_groups']} true "
             f"(mode, template) groups; job {q['full_s']:.1f} s end to end."), "",
            "| figure | skillmine | MARS baseline | target |", "|---|---|---|---|",
            *(f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows), "",
            (f"Incremental: +{q['incremental_runs']} runs ({q['incremental_events']:,} new events) re-mined in "
             f"{q['incremental_s']:.1f} s = {q['incremental_ratio']:.1%} of the full run (target <= 10%)."),
            "", f"Step seconds, full run: {q['full_steps']}", "",
            f"Step seconds, incremental run: {q['incremental_steps']}"]


def render_scale(big: dict[str, Any]) -> list[str]:
    return [(f"Scale: {big['runs']:,} runs ({big['events']:,} events) extracted and mined end to end in "
             f"{big['pipeline_s']:.1f} s ({big['pipeline_cpu_s']:.1f} CPU s; {big['events_per_s']:,.0f} events/s; "
             f"load average {big['load']:.1f}), peak RSS {big['peak_rss_mb']:,.0f} MB (targets: <= 300 s for "
             f"100,000 runs, <= 4096 MB); {big['clusters']} clusters, {big['published']} skills published."), "",
            (f"Incremental at scale: +{big['incremental_runs']:,} runs ({big['incremental_events']:,} new events) "
             f"re-mined in {big['incremental_s']:.1f} s = {big['incremental_ratio']:.1%} of the full run "
             f"({big['incremental_cpu_s']:.1f} CPU s = {big['incremental_cpu_ratio']:.1%} of its CPU seconds; "
             f"load average {big['incremental_load']:.1f}) (target <= 10%)."), "",
            f"Step seconds, full run: {big['steps']}", "",
            f"Step seconds, incremental run: {big['incremental_steps']}"]


def render(quality: dict[str, Any] | None, big: dict[str, Any] | None, command: str) -> str:
    lines = [f"`{command}`"]
    for part in ([render_quality(quality)] if quality else []) + ([render_scale(big)] if big else []):
        lines += ["", *part]
    return "\n".join(lines)


NOTES = "Notes (Mining pipeline"


def record(text: str) -> None:
    """Replace the figures of the '## Mining pipeline (issue 6)' section of RESULTS.md; its hand-written
    'Notes (Mining pipeline ...' paragraph and the other sections are left alone."""
    path = ROOT / "benchmarks" / "RESULTS.md"
    heading = "## Mining pipeline (issue 6)"
    content = path.read_text() if path.exists() else "# Benchmark results\n"
    start = content.find(heading)
    if start == -1:
        path.write_text(content.rstrip("\n") + f"\n\n{heading}\n\n{text}\n")
        return
    end = content.find("\n## ", start + len(heading))
    old = content[start:end if end != -1 else len(content)]
    notes = old[old.find(NOTES):].rstrip("\n") + "\n" if NOTES in old else ""
    section = f"{heading}\n\n{text}\n" + (f"\n{notes}" if notes else "")
    path.write_text(content[:start] + section + ("\n" + content[end + 1:] if end != -1 else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000,
                        help="runs in the quality simulation (default 2000; 0 = scale figures only)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--scale-runs", type=int, default=0, help="runs in the scale simulation (0 = skip)")
    parser.add_argument("--scale-store", help="mine this existing simulated store for the scale figures instead")
    parser.add_argument("--granularity", default="standard", choices=("coarse", "standard", "fine"))
    parser.add_argument("--workdir", help="where databases go (default: a temporary directory)")
    parser.add_argument("--record", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    args = parser.parse_args()
    command = "python benchmarks/bench_mining.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-mining-", dir=args.workdir) as tmp:
        work = Path(tmp)
        quality = big = None
        if args.runs:
            (work / "quality").mkdir()
            quality = quality_and_incremental(args.runs, args.seed, args.granularity, work / "quality")
        if args.scale_runs or args.scale_store:
            (work / "scale").mkdir()
            big = scale(args.scale_runs, args.seed + 7, args.granularity, work / "scale", args.scale_store)
    text = render(quality, big, command)
    print(text)
    print(json.dumps({"quality": quality, "scale": big}, indent=1, default=str))
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
