"""Recorder tests under CPU load, repeated: a test that fails in some rounds and passes in others is a flake, and
the count must be zero (issue 16 item 6: no timing-dependent durability test).

Run: ``.venv/bin/python benchmarks/bench_recorder_flakes.py [--rounds 5] [--burners 4] [--paths tests/recorder
tests/faults]``

Each round runs pytest once on ``--paths`` (with ``SKILLMINE_TEST_PG_URL`` passed through, so PostgreSQL cases run
when it is set) while ``--burners`` processes spin on the CPU at the tests' own priority, and reads the per-test
outcomes from pytest's JUnit XML. It prints one line per round and a summary: tests, rounds, failures per test,
flakes (mixed outcomes across rounds), the machine's load average and each round's wall time.
"""

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _burn(stop: "multiprocessing.synchronize.Event") -> None:
    value = 0
    while not stop.is_set():
        for i in range(100_000):
            value ^= i


def _outcomes(junit: Path) -> dict[str, str]:
    """test id -> passed / failed / skipped, from a JUnit XML report."""
    out = {}
    for case in ET.parse(junit).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        if case.find("failure") is not None or case.find("error") is not None:
            out[name] = "failed"
        elif case.find("skipped") is not None:
            out[name] = "skipped"
        else:
            out[name] = "passed"
    return out


def run_round(paths: list[str], junit: Path) -> tuple[dict[str, str], float]:
    """One pytest run of ``paths``; per-test outcomes and wall seconds."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"],
                   cwd=REPO, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return _outcomes(junit), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burners", type=int, default=4, help="CPU-spinning processes during every round")
    parser.add_argument("--paths", nargs="+", default=["tests/recorder", "tests/faults"])
    args = parser.parse_args()

    stop = multiprocessing.Event()
    burners = [multiprocessing.Process(target=_burn, args=(stop,), daemon=True) for _ in range(args.burners)]
    for burner in burners:
        burner.start()
    results: dict[str, list[str]] = defaultdict(list)
    walls, loads = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for number in range(1, args.rounds + 1):
                outcomes, wall = run_round(args.paths, Path(tmp) / f"round{number}.xml")
                load = os.getloadavg()[0]
                walls.append(wall)
                loads.append(load)
                for name, outcome in outcomes.items():
                    results[name].append(outcome)
                failed = sorted(n for n, o in outcomes.items() if o == "failed")
                print(f"round {number}: {sum(o == 'passed' for o in outcomes.values())} passed, {len(failed)} failed, "
                      f"{sum(o == 'skipped' for o in outcomes.values())} skipped in {wall:.0f} s (load {load:.1f})"
                      + (f": {', '.join(failed)}" if failed else ""), flush=True)
    finally:
        stop.set()
        for burner in burners:
            burner.join(5)
    ran = {n: o for n, o in results.items() if "skipped" not in o}
    failures = {n: o.count("failed") for n, o in ran.items() if "failed" in o}
    flakes = sorted(n for n, o in ran.items() if "failed" in o and "passed" in o)
    print(f"\n{len(ran)} tests x {args.rounds} rounds under {args.burners} CPU burners on {os.cpu_count()} CPUs "
          f"(load average {min(loads):.1f}-{max(loads):.1f}; round wall {min(walls):.0f}-{max(walls):.0f} s): "
          f"{sum(failures.values())} failures, {len(flakes)} flakes")
    for name, count in sorted(failures.items()):
        print(f"  {name}: failed {count} of {args.rounds}")


if __name__ == "__main__":
    main()
