"""``skillmine quickstart``: the main job on the embedded defaults, end to end.

It migrates the capture store, captures a workload of real AG2 Classic agents (offline, scripted models, real
code execution) through ``capture.instrument``, mines it with the Dagster job in-process, publishes the skill
library, and prints what each stage produced and where to look. The workload is seeded, so running it again
captures nothing new and publishes nothing new.
"""

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount ``quickstart``."""
    parser = subparsers.add_parser("quickstart", help="capture an offline AG2 workload, mine it, publish skills",
                                   description=__doc__)
    parser.add_argument("--runs", type=int, default=60, help="AG2 runs to capture (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    parser.set_defaults(handler=_quickstart)


def _banner(text: str) -> None:
    print(f"\n== {text}", flush=True)


def _quickstart(args: argparse.Namespace) -> int:
    from capture.core import config
    from capture.read.queries import store_overview
    from capture.store import migrate
    from capture.store.capture_store import CaptureStore
    from capture.store.db import StoreError, safe_url
    from skill_pipeline.cli import dagster_home
    from skill_pipeline.mine import MineOptions, mine_now
    from workloads.simulate import simulate

    url = config.database_url()
    try:
        _banner(f"1/3 capture store {safe_url(url)}")
        migrate.upgrade(url)
        print(f"schema at revision {migrate.head_revision()}")
        _banner(f"capturing {args.runs} CMBAgent-shaped runs of real AG2 agents (offline, scripted models)")
        summary = simulate(runs=args.runs, seed=args.seed, engine="ag2", url=url, quiet=args.quiet,
                           migrate=False)
        print(summary.render())
        store = CaptureStore.open(url)
        overview = store_overview(store.engine)
        store.close()
        print("the store now holds: " + ", ".join(f"{n:,} {t}" for t, n in overview["tables"].items()))
    except (StoreError, ValueError) as exc:
        print(f"skillmine quickstart: {exc}", file=sys.stderr)
        return 2
    _banner("2/3 mining with Dagster (extract -> sequences -> clusters -> patterns -> templates -> release)")
    code = mine_now(MineOptions(quiet=args.quiet), home=dagster_home())
    if code:
        return code
    _banner("3/3 where to look")
    print(f"  skills:   skillmine skills list          (library {config.home() / 'library'})")
    print("  search:   skillmine skills search \"plotting workflows\"")
    print("  traces:   skillmine trace serve          (timeline at http://127.0.0.1:8321/)")
    print("  pipeline: skillmine ui                   (Dagster UI at http://127.0.0.1:3000/)")
    return 0
