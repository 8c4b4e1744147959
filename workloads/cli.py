"""``skillmine simulate``: realistic CMBAgent-shaped runs into the capture store, ground truth kept apart."""

import argparse

from rich.console import Console

from capture.store.db import StoreError
from skillmine.console import console, fail, table
from workloads.families import FAMILIES, MODES
from workloads.simulate import ENGINES, simulate
from workloads.summary import SimulationSummary


def _names(kind: str, allowed: tuple[str, ...]):
    def parse(text: str) -> tuple[str, ...]:
        values = tuple(v.strip() for v in text.split(",") if v.strip())
        unknown = [v for v in values if v not in allowed]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"unknown {kind} {unknown or text!r}; choose from {', '.join(allowed)}")
        return values
    return parse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``simulate`` subcommand."""
    parser = subparsers.add_parser("simulate", help="simulate realistic multi-agent runs into the capture store",
                                   description=__doc__)
    parser.add_argument("--runs", type=int, default=100, help="number of runs (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same seed gives the same runs")
    parser.add_argument("--engine", choices=ENGINES, default="fast",
                        help="ag2: real AG2 agents, offline scripted models, real code execution; "
                             "fast: the same event streams written straight to the store (default)")
    parser.add_argument("--modes", type=_names("mode", MODES), default=MODES,
                        help=f"comma-separated modes (default all: {','.join(MODES)})")
    parser.add_argument("--families", type=_names("family", tuple(FAMILIES)), default=tuple(FAMILIES),
                        help=f"comma-separated task families (default all: {','.join(FAMILIES)})")
    parser.add_argument("--url", help="capture store URL (default SKILLMINE_DATABASE_URL or the data directory)")
    parser.add_argument("--ground-truth", metavar="PATH",
                        help="ground-truth JSONL (default $SKILLMINE_HOME/ground_truth/simulation-<seed>.jsonl)")
    parser.add_argument("--work-dir", metavar="DIR", help="where the ag2 engine's runs execute code "
                                                          "(default $SKILLMINE_HOME/simulation/<seed>)")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.set_defaults(handler=_handle)


def show_summary(summary: SimulationSummary, out: Console) -> None:
    """Print what a simulation wrote: totals, runs per mode and outcome, where the ground truth went."""
    rate = summary.runs / summary.seconds if summary.seconds else 0.0
    skipped = (f" ({summary.already_stored:,} runs were already stored and were skipped)"
               if summary.already_stored else "")
    out.print(f"simulated {summary.runs:,} runs with the {summary.engine} engine in {summary.seconds:.1f} s "
              f"({rate:,.0f} runs/s) into {summary.url}", markup=False)
    out.print(f"written: {summary.events:,} events, {summary.files:,} files, {summary.messages:,} messages, "
              f"{summary.costs:,} cost records{skipped}", markup=False)
    outcomes = sorted(summary.by_outcome)
    rows = [[mode, runs, *(summary.by_mode_outcome.get((mode, o), 0) for o in outcomes)]
            for mode, runs in sorted(summary.by_mode.items())]
    if rows:
        out.print(table(["mode", "runs", *outcomes], rows))
    out.print(f"ground truth: {summary.ground_truth_path}", markup=False)


def _handle(args: argparse.Namespace) -> int:
    if args.runs < 0:
        fail("simulate", f"--runs must be >= 0, got {args.runs}")
        return 2
    try:
        summary = simulate(runs=args.runs, seed=args.seed, engine=args.engine, modes=args.modes,
                           families=args.families, url=args.url, ground_truth=args.ground_truth,
                           work_dir=args.work_dir, quiet=args.quiet)
    except (ValueError, StoreError) as exc:
        fail("simulate", str(exc))
        return 2
    show_summary(summary, console())
    return 0
