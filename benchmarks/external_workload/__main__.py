"""``python -m benchmarks.external_workload --runs N --seed S --url URL --truth PATH``."""

import argparse
import sys

from . import generate


def main() -> int:
    parser = argparse.ArgumentParser(description="Write an external CMBAgent-shaped workload into a capture store.")
    parser.add_argument("--runs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--url", required=True, help="capture store URL (migrated first), e.g. sqlite:///x.db")
    parser.add_argument("--truth", required=True, help="where to write the ground-truth JSON lines")
    args = parser.parse_args()
    summary = generate(runs=args.runs, seed=args.seed, url=args.url, truth_path=args.truth)
    print(f"{summary.runs} runs, {summary.events} events; outcomes {dict(summary.by_outcome)}; "
          f"truth {summary.truth_path}")
    for skill, n in sorted(summary.by_skill.items()):
        print(f"  {skill:24s} {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
