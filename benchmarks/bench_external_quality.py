"""Skill quality on a workload written apart from the miner: the production mining path scored against the truth.

One command::

    .venv/bin/python benchmarks/bench_external_quality.py --runs 3000 --seed 7 [--record]

``benchmarks/external_workload`` writes CMBAgent-shaped runs into a temporary SQLite capture store (its README says
what they are); ``skillmine mine`` mines them exactly as a user would (the Dagster job with its real resources);
the score is read from what production leaves behind: the published library and the warehouse's run membership
and slot values. Figures:

* ARI of run -> skill group against the true skill (and with runs outside published skills as singletons);
* coverage: share of truly successful runs that belong to a published skill (and to one whose majority true skill
  is the run's own, so that one skill swallowing everything does not count as coverage);
* step precision / recall of each published skill's required steps against its majority true skill's success path
  (longest common subsequence of ``agent[.tool]`` keys);
* slot precision / recall / F1 of each member run's slot values against its true parameter values;
* the MARS baseline (``auto_discover_skills`` over ``event_type:agent`` tokens) on the same runs: ARI and step P/R;
* every published skill's title, task template and parameter descriptions, flagging type names and literals
  quoted from one member run.

The ground truth is read only here, never by the miner.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.external_workload import generate, read_truth
from benchmarks.external_workload.examine import (
    group_of_skill,
    members_by_skill,
    mine,
    published_skills,
    run_memberships,
    run_slot_values,
    step_events,
)
from benchmarks.external_workload.scoring import (
    ari,
    readability_flags,
    required_steps,
    slot_scores,
    step_precision_recall,
)
from skill_pipeline.mining.baseline import auto_discover_skills, baseline_sequences, extract_agent_pattern

SECTION = "## External workload quality (issue 11)"


def _majority(values: list[Any]) -> Any:
    return min(Counter(values).items(), key=lambda kv: (-kv[1], str(kv[0])))[0]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def score_skills(skills: list[dict[str, Any]], members: dict[str, list[str]], truth: dict[str, dict[str, Any]],
                 slots: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per published skill: matched true skill, purity, step P/R, readability flags; plus slot scores."""
    rows, predicted, gold = [], {}, {}
    for skill in skills:
        runs = [r for r in members[skill["name"]] if r in truth]
        if not runs:
            rows.append({"name": skill["name"], "runs": 0, "matched": None, "purity": 0.0, "precision": 0.0,
                         "recall": 0.0, "flags": ["no member run found in the warehouse membership"],
                         "skill": skill})
            continue
        matched = _majority([truth[r]["skill_id"] for r in runs])
        success_path = truth[next(r for r in runs if truth[r]["skill_id"] == matched)]["success_path"]
        precision, recall = step_precision_recall(required_steps(skill), success_path)
        purity = sum(truth[r]["skill_id"] == matched for r in runs) / len(runs)
        rows.append({"name": skill["name"], "runs": len(runs), "matched": matched, "purity": purity,
                     "precision": precision, "recall": recall,
                     "flags": readability_flags(skill, [truth[r]["params"] for r in runs]), "skill": skill})
        for r in runs:
            predicted[r], gold[r] = slots.get(r, {}), truth[r]["params"]
    return {"skills": rows, "slots": slot_scores(predicted, gold)}


def score_baseline(url: str, truth: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The MARS baseline on the same runs: its grouping's ARI and its patterns' step P/R against the majority
    event sequence of clean successful runs of the matched true skill (both in ``event_type:agent`` tokens)."""
    started = time.perf_counter()
    sequences = baseline_sequences(step_events(url))
    run_ids = [r for r in sorted(truth) if r in sequences]
    result = auto_discover_skills([sequences[r] for r in run_ids])
    seconds = time.perf_counter() - started
    steps = []
    for members in (m for m in result.groups if len(m) >= 3):
        matched = _majority([truth[run_ids[i]]["skill_id"] for i in members])
        clean = [tuple(sequences[r]) for r in run_ids if truth[r]["skill_id"] == matched
                 and truth[r]["outcome"] == "success" and not truth[r]["noise"] and not truth[r]["retries"]]
        steps.append(step_precision_recall(extract_agent_pattern([sequences[run_ids[i]] for i in members]),
                                           list(_majority(clean)) if clean else []))
    return {"ari": ari([truth[r]["skill_id"] for r in run_ids], [str(x) for x in result.labels]),
            "groups": len(result.groups), "skills": len(result.skills), "seconds": seconds,
            "precision": _mean([p for p, _ in steps]), "recall": _mean([r for _, r in steps])}


def evaluate(home: Path, url: str, truth_path: Path) -> dict[str, Any]:
    """Mine the store at ``url`` with ``skillmine mine`` into ``home`` and score the result against the truth."""
    truth = {t["run_id"]: t for t in read_truth(truth_path)}
    mine_seconds = mine(home, url)
    skills = published_skills(home / "library")
    membership = run_memberships(home / "warehouse.duckdb")
    members = members_by_skill(skills, membership)
    run_ids = sorted(truth)
    skill_name = {group_of_skill(s): s["name"] for s in skills}
    true_labels = [truth[r]["skill_id"] for r in run_ids]
    grouped = [membership.get(r, f"ungrouped:{r}") for r in run_ids]
    published = [skill_name.get(membership.get(r), f"unpublished:{r}") for r in run_ids]
    successes = [r for r in run_ids if truth[r]["outcome"] == "success"]
    in_published = {r for runs in members.values() for r in runs}
    scored = score_skills(skills, members, truth, run_slot_values(home / "warehouse.duckdb"))
    rows = scored["skills"]
    matched_of = {r: row["matched"] for row in rows for r in members[row["name"]]}
    return {
        "runs": len(run_ids), "true_skills": len(set(true_labels)), "groups": len(set(membership.values())),
        "published": len(skills), "mine_s": mine_seconds,
        "ari": ari(true_labels, grouped), "ari_published": ari(true_labels, published),
        "coverage": sum(r in in_published for r in successes) / len(successes) if successes else 0.0,
        "coverage_matched": (sum(matched_of.get(r) == truth[r]["skill_id"] for r in successes) / len(successes)
                             if successes else 0.0),
        "step_precision": _mean([s["precision"] for s in rows]), "step_recall": _mean([s["recall"] for s in rows]),
        "min_step_recall": min((s["recall"] for s in rows), default=0.0),
        "slot_precision": scored["slots"]["precision"], "slot_recall": scored["slots"]["recall"],
        "slot_f1": scored["slots"]["f1"], "flagged_skills": sum(bool(s["flags"]) for s in rows),
        "baseline": score_baseline(url, truth), "skills": rows, "commit": miner_commit(),
    }


def render_skills(rows: list[dict[str, Any]]) -> str:
    """Every published skill as a reader meets it, with what reads badly."""
    out = []
    for row in rows:
        s = row["skill"]
        out.append(f"- `{s['name']}` ({row['runs']} runs, true skill `{row['matched']}` purity {row['purity']:.2f}, "
                   f"steps P/R {row['precision']:.2f}/{row['recall']:.2f}): title \"{s['title']}\"; "
                   f"template `{s['task_template']}`")
        for name, p in sorted(s.get("parameters", {}).items()):
            out.append(f"  - `{name}` ({p.get('type')}{', enum' if 'enum' in p else ''}): {p.get('description')!r}")
        out += [f"  - FLAG {flag}" for flag in row["flags"]]
    return "\n".join(out)


def miner_commit() -> str:
    """The checkout's commit (and whether it had local changes): which miner the figures describe."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    return (git("rev-parse", "--short", "HEAD") or "unknown") + (" + local changes" if git("status", "--porcelain",
                                                                                         "--", "skill_pipeline") else "")


def render(q: dict[str, Any], command: str) -> str:
    b = q["baseline"]
    return "\n".join([
        f"`{command}` (miner at commit {q['commit']})",
        "",
        (f"{q['runs']:,} external-workload runs, {q['true_skills']} true skills; `skillmine mine` "
         f"{q['mine_s']:.1f} s: {q['groups']} skill groups, {q['published']} published skills "
         f"({q['flagged_skills']} with a flagged title or parameter description)."),
        "",
        "| figure | skillmine (production `skillmine mine`) | MARS baseline (auto_discover_skills) | target |",
        "|---|---|---|---|",
        (f"| ARI run -> skill group vs true skill | {q['ari']:.3f} | {b['ari']:.3f} ({b['groups']} groups) | "
         ">= 0.95 |"),
        f"| ARI run -> published skill (others singletons) | {q['ari_published']:.3f} | | |",
        f"| successful runs covered by a published skill | {q['coverage']:.1%} | | >= 90% |",
        (f"| ... by a published skill whose majority true skill is the run's own | {q['coverage_matched']:.1%} | "
         "| |"),
        (f"| step precision / recall vs true success path | {q['step_precision']:.3f} / {q['step_recall']:.3f} "
         f"(min recall {q['min_step_recall']:.2f}) | {b['precision']:.3f} / {b['recall']:.3f} | |"),
        (f"| slot P / R / F1 vs true parameters | {q['slot_precision']:.3f} / {q['slot_recall']:.3f} / "
         f"{q['slot_f1']:.3f} | n/a | |"),
        "",
        "Published skills:",
        "",
        render_skills(q["skills"]),
    ])


def record(text: str) -> None:
    """Set this benchmark's section of RESULTS.md to ``text`` (appended when absent); other sections stay."""
    path = ROOT / "benchmarks" / "RESULTS.md"
    content = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{SECTION}\n\n{text}\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    if pattern.search(content):
        content = pattern.sub(lambda _: section, content, count=1)
    else:
        content = content.rstrip("\n") + "\n\n" + section
    path.write_text(content.rstrip("\n") + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--record", action="store_true", help="write the figures into benchmarks/RESULTS.md")
    parser.add_argument("--keep", type=Path, help="generate and mine into this directory and keep it")
    args = parser.parse_args()
    command = "python benchmarks/bench_external_quality.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="bench-external-") as tmp:
        home = args.keep or Path(tmp)
        home.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{home / 'capture.db'}"
        started = time.perf_counter()
        summary = generate(runs=args.runs, seed=args.seed, url=url, truth_path=home / "truth.jsonl")
        print(f"generated {summary.runs} runs, {summary.events:,} events in {time.perf_counter() - started:.1f} s; "
              f"outcomes {dict(summary.by_outcome)}", file=sys.stderr)
        figures = evaluate(home, url, home / "truth.jsonl")
    text = render(figures, command)
    print(text)
    print(json.dumps({k: v for k, v in figures.items() if k != "skills"}, indent=1, default=str))
    if args.record:
        record(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
