"""``skillmine conform RUN_ID``: how one captured run conforms to the library's skills."""

import argparse

from skill_pipeline.verification.runs import DEFAULT_MIN_FITNESS

MAX_ROWS = 25  # deviations printed as a table; --json has them all


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount ``conform`` (its handler imports the store and the library lazily)."""
    conform = subparsers.add_parser("conform", help="align one run to the library's skills: best skill, fitness "
                                                    "and deviations")
    conform.add_argument("run_id", help="run id or a unique prefix of it (at least 4 characters)")
    conform.add_argument("--url", help="capture store URL with driver (default $SKILLMINE_DATABASE_URL)")
    conform.add_argument("--library", help="skill library directory (default $SKILLMINE_LIBRARY or "
                                           "$SKILLMINE_HOME/library)")
    conform.add_argument("--min-fitness", type=float, default=DEFAULT_MIN_FITNESS,
                         help=f"fitness a run needs to fit a skill (default {DEFAULT_MIN_FITNESS})")
    conform.add_argument("--json", action="store_true", help="print the answer as JSON (as the trace API does)")
    conform.set_defaults(handler=_conform)


def _conform(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from capture.core import config
    from capture.read.questions import resolve_run
    from capture.read.trace_api.reader import NotFound, open_read_only
    from capture.store.db import StoreError
    from skill_pipeline.verification.runs import store_report
    from skillmine.console import fail

    library = Path(args.library or config.env("LIBRARY") or config.home() / "library").expanduser()
    try:
        engine = open_read_only(args.url)
    except StoreError as exc:
        fail("conform", str(exc))
        return 2
    try:
        run = resolve_run(engine, args.run_id)
        answer = store_report(engine, run["id"], library, min_fitness=args.min_fitness)
    except NotFound as exc:
        fail("conform", str(exc))
        return 2
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(answer, indent=1))
    else:
        _print(answer, library)
    return 0


def _print(answer: dict, library: object) -> None:
    from skillmine.console import console, table

    out = console()
    best = answer["best"]
    out.print(f"run {answer['run_id']} ({answer['status']}): {answer['steps']} steps, "
              f"{answer['skills_compared']} skills compared")
    if best is None:
        out.print(f"no active skill in {library} to compare with")
        return
    verdict = "fits" if answer["fits"] else f"fits no skill (fitness below {answer['min_fitness']})"
    out.print(f"best skill {best['skill']} {best['version'] or ''}: fitness {best['fitness']:.3f}, "
              f"{len(best['deviations'])} deviations — {verdict}")
    shown = best["deviations"][:MAX_ROWS]
    if shown:
        out.print(table(["deviation", "agent", "action", "tool", "skill step", "run step", "events"],
                        [(d["kind"], d["agent"], d["action"], d["tool"], d["step"], d["position"],
                          ", ".join(d["event_ids"])) for d in shown]))
    if len(best["deviations"]) > MAX_ROWS:
        out.print(f"... {len(best['deviations']) - MAX_ROWS} more (--json lists every deviation)")
    if answer["alternatives"]:
        out.print("next best: " + ", ".join(f"{a['skill']} {a['fitness']:.3f}" for a in answer["alternatives"]))
