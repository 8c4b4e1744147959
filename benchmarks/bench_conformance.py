"""Conformance: skillmine's alignment fitness and precision beside pm4py's on the same logs.

For each public XES log (``--logs-dir``, default ``../shared/data/external/pm4py_logs``) and for a fast-engine
simulation, the same traces (activity names; for the simulation, the steps ``mining.conformance.run_steps``
reads) are:

- mined into skills by skillmine (XES: behaviour clusters and their patterns; simulation: the full mining path's
  skill documents), each trace aligned to its best-fitting skill: mean fitness, share of exactly fitting traces,
  precision (escaping edges) of each skill on the traces it fits best, weighted by traces;
- mined into one Petri net by pm4py's inductive miner: token-based replay fitness, alignment fitness and
  token-based (ETConformance) precision;
- checked against pm4py's own alignments on skillmine's skills (each skill's transition system as a Petri net,
  ``SkillModel.transitions``): the largest per-trace difference of the two alignment fitness figures.

pm4py is AGPL and never a project dependency: it runs in its own interpreter (``--pm4py-python``, a venv built
from ``benchmarks/requirements-pm4py.txt``), which executes this file with ``--pm4py-side`` and talks JSON over
stdin/stdout; that side imports nothing from skillmine.

    python -m venv /tmp/pm4py-venv && /tmp/pm4py-venv/bin/pip install -r benchmarks/requirements-pm4py.txt
    .venv/bin/python benchmarks/bench_conformance.py [--logs running-example.xes ...] [--sim-runs 300]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOGS_DIR = ROOT.parent / "shared" / "data" / "external" / "pm4py_logs"
DEFAULT_LOGS = ("running-example.xes", "04_reviewing.xes.gz", "03_repairExample.xes.gz", "a32f0n00.xes.gz",
                "a32f0n10.xes.gz", "a32f0n50.xes.gz", "08_receipt.xes.gz", "helpdesk.xes.gz",
                "02_teleclaims.xes.gz", "roadtraffic100traces.xes", "13_SEPSIS_1t_per_variant.xes.gz")


# --- skillmine side (project venv) --------------------------------------------------------------------------

def xes_traces(path: Path) -> list[list[str]]:
    """Each trace's activity names (``concept:name``), read by skillmine's XES parser."""
    from capture.importers.xes import iter_traces

    return [[str(e.get("concept:name")) for e in events] for _, events in iter_traces(path)]


def _assess(models: list[Any], variants: Counter[tuple[str, ...]]) -> dict[str, Any]:
    """Best-fit fitness per variant, and each model's precision on the traces it fits best."""
    from skill_pipeline.mining.conformance import RunStep, best_fit, precision

    started = time.perf_counter()
    fitness, exact, assigned = {}, 0, {m.name: [] for m in models}
    for variant, count in variants.items():
        best = best_fit(models, [RunStep(label) for label in variant])
        fitness[variant] = best.fitness
        exact += count * (best.cost == 0)
        assigned[best.skill] += [list(variant)] * count
    align_s = time.perf_counter() - started
    total = sum(variants.values())
    by_name = {m.name: m for m in models}
    weighted = sum(precision(by_name[name], traces) * len(traces) for name, traces in assigned.items() if traces)
    return {"traces": total, "variants": len(variants), "skills": len(models),
            "fitness": sum(fitness[v] * c for v, c in variants.items()) / total, "exact": exact / total,
            "precision": weighted / total, "align_s": align_s,
            "per_variant": {"\x1f".join(v): f for v, f in fitness.items()}}


def _nets(models: list[Any]) -> list[dict[str, Any]]:
    return [{"name": m.name, "final": m.final, "transitions": m.transitions()} for m in models]


def skillmine_xes(traces: list[list[str]]) -> tuple[dict[str, Any], list[Any]]:
    """Cluster the traces and mine one pattern per cluster (skillmine's behaviour mining), then assess."""
    from skill_pipeline.mining.clustering import cluster_sequences
    from skill_pipeline.mining.conformance import SkillModel
    from skill_pipeline.mining.patterns import mine_patterns

    started = time.perf_counter()
    clusters = cluster_sequences(traces, workers=1)
    patterns = mine_patterns(traces, clusters)
    models = [SkillModel.from_pattern(p, name=cid, label=lambda s: s.token) for cid, p in patterns.items()]
    mine_s = time.perf_counter() - started
    return {**_assess(models, Counter(map(tuple, traces))), "mine_s": mine_s}, models


def skillmine_simulated(runs: int, seed: int) -> tuple[list[list[str]], dict[str, Any], list[Any]]:
    """Simulate ``runs`` fast-engine runs, mine them with the pipeline's mining path, assess every run against
    the published skills."""
    from sqlalchemy import create_engine, select

    from capture.store.capture_store import EVENTS
    from skill_pipeline.lib.mining_steps import mine_store
    from skill_pipeline.mining.conformance import SkillModel, run_steps
    from workloads.simulate import simulate

    with tempfile.TemporaryDirectory(prefix="bench-conformance-") as tmp:
        url = f"sqlite:///{tmp}/capture.db"
        simulate(runs=runs, seed=seed, engine="fast", url=url, ground_truth=Path(tmp) / "truth.jsonl")
        started = time.perf_counter()
        mined, _ = mine_store(url, Path(tmp) / "warehouse.duckdb")
        mine_s = time.perf_counter() - started
        engine = create_engine(url)
        events: dict[str, list[dict[str, Any]]] = {}
        with engine.connect() as conn:
            for row in conn.execute(select(EVENTS).order_by(EVENTS.c.seq)).mappings():
                events.setdefault(row["run_id"], []).append(dict(row))
        engine.dispose()
    models = [SkillModel.from_skill(t.candidate) for t in mined.templates if t.publishable]
    traces = [[s.label for s in run_steps(evs)] for _, evs in sorted(events.items())]
    return traces, {**_assess(models, Counter(map(tuple, traces))), "mine_s": mine_s}, models


def run_pm4py(python: str, traces: list[list[str]], models: list[Any], gap_variants: int) -> dict[str, Any]:
    """pm4py's figures, computed in the pm4py interpreter; its alignments on skillmine's skills cover the
    ``gap_variants`` most frequent variants (they are the slow part on noisy logs)."""
    variants = Counter(map(tuple, traces))
    payload = {"variants": [[list(v), c] for v, c in variants.items()], "nets": _nets(models),
               "gap_variants": [list(v) for v, _ in variants.most_common(gap_variants)]}
    done = subprocess.run([python, __file__, "--pm4py-side"], input=json.dumps(payload), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"pm4py side failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


# --- pm4py side (its own interpreter; imports pm4py, never skillmine) ---------------------------------------

def _dataframe(variants: list[tuple[list[str], int]]) -> Any:
    import pandas as pd

    rows, case = [], 0
    for activities, count in variants:
        for _ in range(count):
            case += 1
            rows += [{"case:concept:name": f"{case:09d}", "concept:name": a,
                      "time:timestamp": pd.Timestamp(0, unit="s") + pd.Timedelta(seconds=i)}
                     for i, a in enumerate(activities)]
    return pd.DataFrame(rows)


def _petri_net(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    from pm4py.objects.petri_net.obj import Marking, PetriNet
    from pm4py.objects.petri_net.utils.petri_utils import add_arc_from_to

    net = PetriNet(spec["name"])
    places: dict[int, Any] = {}

    def place(state: int) -> Any:
        if state not in places:
            places[state] = PetriNet.Place(f"s{state}")
            net.places.add(places[state])
        return places[state]

    for k, (source, target, label) in enumerate(spec["transitions"]):
        transition = PetriNet.Transition(f"t{k}", label)
        net.transitions.add(transition)
        add_arc_from_to(place(source), transition, net)
        add_arc_from_to(transition, place(target), net)
    return net, Marking({place(0): 1}), Marking({place(spec["final"]): 1})


def pm4py_side(payload: dict[str, Any]) -> dict[str, Any]:
    """Inductive miner + token replay / alignment fitness + ETC precision; alignments on the skill nets."""
    import pm4py
    from pm4py.algo.conformance.alignments.petri_net import algorithm as alignments

    variants = [(list(v), int(c)) for v, c in payload["variants"]]
    log = _dataframe(variants)
    started = time.perf_counter()
    net, im, fm = pm4py.discover_petri_net_inductive(log)
    mine_s = time.perf_counter() - started
    started = time.perf_counter()
    tbr = pm4py.fitness_token_based_replay(log, net, im, fm)
    tbr_s = time.perf_counter() - started
    started = time.perf_counter()
    aligned = pm4py.fitness_alignments(log, net, im, fm)
    align_s = time.perf_counter() - started
    etc = pm4py.precision_token_based_replay(log, net, im, fm)
    checked = [list(v) for v in payload["gap_variants"]]
    single = _dataframe([(v, 1) for v in checked])
    best: dict[str, float] = {}
    for spec in payload["nets"]:
        snet, sim, sfm = _petri_net(spec)
        for activities, result in zip(checked, alignments.apply(single, snet, sim, sfm), strict=True):
            key = "\x1f".join(activities)
            best[key] = max(best.get(key, 0.0), float(result["fitness"]))
    return {"tbr_fitness": tbr["log_fitness"], "align_fitness": aligned["average_trace_fitness"],
            "etc_precision": etc, "mine_s": mine_s, "tbr_s": tbr_s, "align_s": align_s,
            "skill_fitness_by_pm4py": best, "version": pm4py.__version__}


# --- report -------------------------------------------------------------------------------------------------

def compare(name: str, ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    """One row: both sides' figures and the largest per-variant gap between skillmine's and pm4py's alignment
    fitness on skillmine's skills."""
    checked = theirs["skill_fitness_by_pm4py"]
    gap = max((abs(f - checked[v]) for v, f in ours["per_variant"].items() if v in checked), default=0.0)
    return {"log": name, **{k: v for k, v in ours.items() if k != "per_variant"},
            **{f"pm4py_{k}": v for k, v in theirs.items() if k != "skill_fitness_by_pm4py"}, "max_gap": gap,
            "gap_variants": len(checked)}


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| log | traces | variants | skills | skillmine fitness | exact | skillmine precision | "
            "pm4py IM token-replay fitness | pm4py IM alignment fitness | pm4py IM ETC precision | "
            "max gap vs pm4py alignments on the skills (variants checked) | skillmine align s | pm4py align s |")
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(f"| {r['log']} | {r['traces']} | {r['variants']} | {r['skills']} | {r['fitness']:.3f} | "
                     f"{r['exact']:.3f} | {r['precision']:.3f} | {r['pm4py_tbr_fitness']:.3f} | "
                     f"{r['pm4py_align_fitness']:.3f} | {r['pm4py_etc_precision']:.3f} | {r['max_gap']:.1e} "
                     f"({r['gap_variants']}) | "
                     f"{r['align_s']:.2f} | {r['pm4py_align_s']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pm4py-side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pm4py-python", default="/tmp/pm4py-venv/bin/python")
    parser.add_argument("--logs-dir", type=Path, default=LOGS_DIR)
    parser.add_argument("--logs", nargs="*", default=list(DEFAULT_LOGS))
    parser.add_argument("--sim-runs", type=int, default=300, help="simulated runs (0: none)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--gap-variants", type=int, default=200,
                        help="most frequent variants pm4py also aligns to skillmine's skills (default 200)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.pm4py_side:
        json.dump(pm4py_side(json.load(sys.stdin)), sys.stdout)
        return
    rows = []
    for log in args.logs:
        traces = xes_traces(args.logs_dir / log)
        ours, models = skillmine_xes(traces)
        rows.append(compare(log, ours, run_pm4py(args.pm4py_python, traces, models, args.gap_variants)))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    if args.sim_runs:
        traces, ours, models = skillmine_simulated(args.sim_runs, args.seed)
        rows.append(compare(f"simulated {args.sim_runs} runs (seed {args.seed})", ours,
                            run_pm4py(args.pm4py_python, traces, models, args.gap_variants)))
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
