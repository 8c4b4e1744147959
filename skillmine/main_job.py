"""``skillmine quickstart``: the main job on the embedded defaults, end to end.

It captures a workload of real AG2 Classic agents (offline, scripted models, real code execution) through
``capture.instrument`` into the capture store (created and migrated on first use), mines it with the Dagster job
in-process, publishes the skill library, and prints what each stage produced and where to look. The workload is
seeded, so running it again captures nothing new and publishes nothing new.
"""

import argparse

from skillmine.console import console, fail


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount ``quickstart``."""
    parser = subparsers.add_parser("quickstart", help="capture an offline AG2 workload, mine it, publish skills",
                                   description=__doc__)
    parser.add_argument("--runs", type=int, default=60, help="AG2 runs to capture (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    parser.add_argument("--verbose", action="store_true", help="print Dagster's log on the console too")
    parser.set_defaults(handler=_quickstart)


def _quickstart(args: argparse.Namespace) -> int:
    from capture.core import config
    from capture.store.db import StoreError, safe_url
    from skill_pipeline.instance import dagster_home
    from skill_pipeline.mine import MineOptions, mine_now
    from skill_pipeline.verification.cli import verify_quickstart
    from workloads.cli import show_summary
    from workloads.simulate import simulate

    out = console()
    url = config.database_url()
    out.print(f"[bold]1/4 capture[/] {args.runs} CMBAgent-shaped runs of real AG2 agents (offline, scripted models)"
              f" into {safe_url(url)}")
    try:
        summary = simulate(runs=args.runs, seed=args.seed, engine="ag2", url=url, quiet=args.quiet)
    except (StoreError, ValueError) as exc:
        fail("quickstart", str(exc))
        return 2
    show_summary(summary, out)
    out.print("[bold]2/4 mine[/] with Dagster: extract -> sequences -> clusters -> patterns -> templates -> release")
    code = mine_now(MineOptions(quiet=args.quiet, verbose=args.verbose), home=dagster_home(), out=out)
    if code:
        return code
    out.print("[bold]3/4 verify[/] replay each new skill version on held-out tasks of its family; promote those "
              "that pass")
    out.print(verify_quickstart(), markup=False)
    out.print("[bold]4/4 where to look[/]")
    out.print(f"  skills:   skillmine skills list          (library {config.home() / 'library'})", markup=False)
    out.print('  search:   skillmine skills search "plotting workflows"', markup=False)
    out.print("  traces:   skillmine trace serve          (timeline at http://127.0.0.1:8321/)", markup=False)
    out.print("  pipeline: skillmine ui                   (Dagster UI at http://127.0.0.1:3000/)", markup=False)
    return 0
