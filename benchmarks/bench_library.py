"""Skill-library latency benchmark (issue 5).

Builds a 1,000-skill library in a temporary directory, then measures ``open_library``,
``Library.search`` and ``Library.instantiate`` (median and p95 over repeats) against the targets
(open < 200 ms, search < 20 ms), and a naive baseline measured in the same run: a linear scan that
re-reads, re-parses and re-hashes every skill file for each open/search. Then the two exports of the same release,
each into a fresh destination (``--export-repeats`` times): the ``.zip`` bundle and the Agent Skills tree (one
``SKILL.md`` folder per skill), and the verification of each.

Run: ``.venv/bin/python benchmarks/bench_library.py [--skills 1000] [--repeats 50] [--export-repeats 5]``
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skill_library import content_hash, open_library, publish, verify
from skill_library.agent_skills import verify_export
from skill_library.query import query_groups, stem, words
from skill_library.semver import parse

DOMAINS = [  # (verb, object, output type, format, tool)
    ("plot", "power spectrum", "plot", "png", "matplotlib"),
    ("fit", "regression model", "table", "csv", "sklearn"),
    ("summarise", "dataset columns", "table", "csv", "pandas"),
    ("search", "literature", "text", "md", "arxiv"),
    ("simulate", "n-body system", "file", "hdf5", "python"),
    ("render", "sky map", "plot", "svg", "healpy"),
    ("clean", "time series", "file", "parquet", "pandas"),
    ("debug", "failing test", "text", "log", "bash"),
]
AGENTS = ["planner", "engineer", "executor", "researcher", "reviewer"]
ACTIONS = ["plan", "load_data", "write_code", "execute", "analyse", "review", "report"]
QUERIES = ["plotting workflows", "csv table", "literature search", "simulate system", "sky map svg",
           "debug failing test", "regression", "time series cleaning"]


def candidate(i: int, rng: random.Random) -> dict[str, Any]:
    verb, obj, out_type, fmt, tool = DOMAINS[i % len(DOMAINS)]
    steps = [{"agent": rng.choice(AGENTS), "action": rng.choice(ACTIONS), "tool": rng.choice([tool, None])}
             for _ in range(rng.randint(3, 7))]
    steps[-1]["expected_outputs"] = [{"type": out_type, "format": fmt}]
    return {
        "name": f"{verb} {obj} {i}",
        "description": f"{verb.capitalize()} the {obj} of a {rng.choice(['small', 'large', 'noisy'])} input, "
                       f"variant {i}.",
        "category": verb,
        "tags": [tool, obj.split()[0], f"group{i % 37}"],
        "task_template": f"{verb.capitalize()} {{target}} {obj} with {{method}} (case {i})",
        "steps": steps,
        "parameters": {"target": {"type": "string", "required": True},
                       "method": {"type": "string", "required": False, "default": "auto",
                                  "enum": ["auto", "fast", "exact"]},
                       "tolerance": {"type": "number", "required": False, "default": 0.01}},
        "statistics": {"support": rng.randint(5, 200), "success_rate": round(rng.uniform(0.5, 1), 3),
                       "duration_s": {"p50": 30.0, "p95": 90.0}, "cost_usd": {"p50": 0.1, "p95": 0.3}},
        "provenance": {"source_runs": [f"run-{i}-{k}" for k in range(5)], "cluster_id": i},
    }


def timed(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def naive_scan(root: Path, query: str) -> list[str]:
    """Baseline: read, parse and re-hash every current skill file, then match words linearly."""
    wanted = [stems for _, stems in query_groups(query)]
    latest: dict[str, Path] = {}
    for path in (root / "skills").glob("*/*.json"):
        current = latest.get(path.parent.name)
        if current is None or parse(path.name.split("-")[0]) > parse(current.name.split("-")[0]):
            latest[path.parent.name] = path
    hits = []
    for name, path in latest.items():
        doc = json.loads(path.read_bytes())
        assert content_hash(doc) == doc["content_hash"]
        text = " ".join([name, doc["title"], doc["description"], doc["task_template"], " ".join(doc["tags"]),
                         " ".join(o["type"] + " " + o.get("format", "") for s in doc["steps"]
                                  for o in s.get("expected_outputs", []))])
        terms = {stem(w) for w in words(text)}
        if all(stems & terms for stems in wanted):
            hits.append(name)
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skills", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--export-repeats", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(5)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "library"
        start = time.perf_counter()
        candidates = [candidate(i, rng) for i in range(args.skills)]
        result = publish(root, candidates, pipeline_run_id="bench")
        build_s = time.perf_counter() - start
        assert len(result.outcomes) == args.skills
        start = time.perf_counter()
        assert not publish(root, candidates, pipeline_run_id="bench-2").created
        noop_s = time.perf_counter() - start
        library = open_library(root)
        names = [s["name"] for s in library.skills()]

        open_ms = summary(timed(lambda: open_library(root), args.repeats))
        start = time.perf_counter()
        library.search("warm up")
        first_search_ms = (time.perf_counter() - start) * 1000
        queries = iter(QUERIES * args.repeats)
        search_ms = summary(timed(lambda: library.search(next(queries)), args.repeats * 4))
        picks = iter(rng.sample(names, min(len(names), args.repeats)))
        instantiate_cold_ms = summary(timed(
            lambda: library.instantiate(next(picks), {"target": "the data", "method": "fast"}), args.repeats))
        instantiate_warm_ms = summary(timed(
            lambda: library.instantiate(names[0], {"target": "the data"}), args.repeats))
        naive_repeats = max(5, args.repeats // 10)
        queries = iter(QUERIES * naive_repeats)
        naive_ms = summary(timed(lambda: naive_scan(root, next(queries)), naive_repeats))
        for query in QUERIES:  # both methods agree on what matches
            assert sorted(h.name for h in library.search(query, limit=10_000)) == sorted(naive_scan(root, query))
        plot_hits = library.search("plotting workflows", limit=10_000)
        manifest_kb = (root / "releases" / "0001.json").stat().st_size / 1024
        exports = export_rows(library, Path(tmp), args.export_repeats)

    rows = [
        ("open_library (LATEST + manifest, verified)", open_ms, 200.0),
        ("search (indexed; index built on first search)", search_ms, 20.0),
        ("instantiate, skill file not yet read", instantiate_cold_ms, None),
        ("instantiate, cached document", instantiate_warm_ms, None),
        ("baseline: naive scan re-reading + re-hashing all files", naive_ms, 20.0),
    ]
    print(f"skills: {args.skills}  repeats: {args.repeats}  build (publish of all): {build_s:.1f} s  "
          f"no-op re-publish: {noop_s:.1f} s  "
          f"manifest: {manifest_kb:.0f} KiB  first search (builds index): {first_search_ms:.1f} ms  "
          f"'plotting workflows' hits: {len(plot_hits)}")
    print()
    print("| operation | median ms | p95 ms | target ms | p95 / target |")
    print("|---|---:|---:|---:|---:|")
    for label, (median, p95), target in rows:
        ratio = f"{p95 / target:.3f}" if target else "-"
        print(f"| {label} | {median:.2f} | {p95:.2f} | {target or '-'} | {ratio} |")
    print()
    print(f"search speed-up over the naive scan (median): {naive_ms[0] / search_ms[0]:.0f}x")
    print()
    print(f"exports of the same release ({args.export_repeats} runs each, fresh destination every run)")
    print()
    print("| export | median ms | p95 ms | CPU ms (mean) | files | size KiB | verify median ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, (median, p95), cpu_ms, files, size_kib, (verify_median, _) in exports:
        print(f"| {label} | {median:.0f} | {p95:.0f} | {cpu_ms:.0f} | {files} | {size_kib:.0f} | {verify_median:.0f} |")
    print()
    print(f"agent-skills export / zip export: median {exports[1][1][0] / exports[0][1][0]:.2f}x, "
          f"CPU {exports[1][2] / exports[0][2]:.2f}x")


def _size(path: Path) -> tuple[int, float]:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files) / 1024


ExportRow = tuple[str, tuple[float, float], float, int, float, tuple[float, float]]


def _time_export(label: str, export: Callable[[Path], Path], check: Callable[[Path], Any], tmp: Path,
                 repeats: int) -> ExportRow:
    """One export timed over ``repeats`` fresh destinations, then verifying what it wrote."""
    written: list[Path] = []
    destinations = iter(tmp / f"export-{label[:3]}-{n}" for n in range(repeats))
    cpu = time.process_time()
    times = timed(lambda: written.append(export(next(destinations))), repeats)
    cpu_ms = (time.process_time() - cpu) * 1000 / repeats
    assert all(check(path).ok for path in written)
    files, size_kib = _size(written[-1])
    return label, summary(times), cpu_ms, files, size_kib, summary(timed(lambda: check(written[-1]), repeats))


def export_rows(library: Any, tmp: Path, repeats: int) -> list[ExportRow]:
    """The zip bundle and the Agent Skills tree of the same release, each timed and verified."""
    return [_time_export("zip bundle (whole history)", lambda dest: library.export(dest.with_suffix(".zip")),
                         verify, tmp, repeats),
            _time_export("agent-skills tree (active skills)", lambda dest: library.export_agent_skills(dest).path,
                         verify_export, tmp, repeats)]


if __name__ == "__main__":
    main()
