"""``skillmine conform RUN_ID`` (how one captured run conforms to the library's skills) and ``skillmine skills
replay NAME`` (replay verification of a skill version, promoting it when it passes)."""

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
    skills = subparsers.choices.get("skills")
    if skills is not None:  # mounted by skill_library.cli, which must not import the pipeline
        actions = [a for a in skills._actions if isinstance(a, argparse._SubParsersAction)]
        _register_replay(actions[0])


def _register_replay(sub: argparse._SubParsersAction) -> None:
    replay = sub.add_parser("replay", help="replay a skill version on held-out tasks of its family as AG2 chats "
                                           "it steers; promote it to active when it passes")
    target = replay.add_mutually_exclusive_group(required=True)
    target.add_argument("name", nargs="?", help="skill name")
    target.add_argument("--all", action="store_true", help="every skill whose current version was not replayed")
    replay.add_argument("--version", default="latest", help="version or range (default latest)")
    replay.add_argument("--tasks", type=int, help="tasks to replay (default 10)")
    replay.add_argument("--library", help="skill library directory (default $SKILLMINE_LIBRARY or "
                                          "$SKILLMINE_HOME/library)")
    replay.add_argument("--warehouse", help="DuckDB file with the mined runs (default $SKILLMINE_WAREHOUSE or "
                                            "$SKILLMINE_HOME/warehouse.duckdb)")
    replay.add_argument("--replay-url", help="capture store for the replays (default $SKILLMINE_REPLAY_DATABASE_URL "
                                             "or sqlite:///$SKILLMINE_HOME/replays.db)")
    replay.add_argument("--threshold", type=float, help="Wilson lower bound of the pass rate that promotes "
                                                        "(default $SKILLMINE_PROMOTION_THRESHOLD or 0.4)")
    replay.add_argument("--json", action="store_true", help="print results and statistics as JSON")
    replay.set_defaults(handler=_replay)


def _conform(args: argparse.Namespace) -> int:
    import json

    from capture.read.questions import resolve_run
    from capture.read.trace_api.reader import NotFound, open_read_only
    from capture.store.db import StoreError
    from skill_pipeline.verification.runs import store_report
    from skillmine.console import fail
    from skillmine.trace import library_path

    library = library_path(args.library)
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
        out.print("the run has no steps to align" if answer["skills_compared"]
                  else f"no active skill in {library} to compare with")
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


def _replay(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from skill_library.errors import SkillLibraryError
    from skill_pipeline.defs.conformance.settings import ConformanceSettings, ReplayResource
    from skill_pipeline.lib import warehouse
    from skill_pipeline.resources import SkillLibraryResource, WarehouseResource
    from skill_pipeline.verification.replay import replay_store, shutdown_capture, unreplayed, verify_skill
    from skillmine.console import console, fail, table

    library = SkillLibraryResource(path=args.library).resolved_path()
    db = WarehouseResource(path=args.warehouse).resolved_path()
    settings = ReplayResource(store_url=args.replay_url, threshold=args.threshold).settings(
        ConformanceSettings().fitness_threshold())
    if args.tasks is not None:
        settings = dataclasses.replace(settings, tasks=args.tasks)
    if not db.is_file():
        fail("skills replay", f"no warehouse at {db}", "run `skillmine mine` first")
        return 2
    targets = unreplayed(library) if args.all else [(args.name, args.version)]
    answers, out = [], console()
    try:
        replay_store(settings)
        with warehouse.connect(db) as con:
            for name, version in targets:
                results, stats, status = verify_skill(con, library, name, settings, version)
                answers.append({"skill": name, "status": status, "statistics": stats,
                                "replays": [r.as_dict() for r in results]})
    except (SkillLibraryError, ValueError) as exc:
        fail("skills replay", str(exc))
        return 2
    finally:
        shutdown_capture()
    if args.json:
        print(json.dumps(answers, indent=1))
        return 0
    for answer in answers:
        stats = answer["statistics"]
        out.print(f"{answer['skill']}: {stats['passed']} of {stats['tried']} replays passed "
                  f"({stats['held_out']} held-out tasks), pass rate lower bound {stats['pass_wilson'][0]:.3f} "
                  f"(threshold {settings.threshold}) -> {answer['status']}")
        out.print(table(["source run", "replay run", "passed", "fitness", "reason"],
                        [(r["source_run"][:8], r["run_id"][:8], r["passed"], r["fitness"], r["reason"] or "")
                         for r in answer["replays"]]))
    promoted = sum(a["status"] == "active" for a in answers)
    out.print(f"{len(answers)} skill versions replayed: {promoted} promoted, {len(answers) - promoted} left candidate")
    return 0


def verify_quickstart(tasks: int = 8) -> str:
    """Replay the configured library's unreplayed skill versions (``tasks`` each) and say what was promoted."""
    import dataclasses

    from skill_pipeline.defs.conformance.settings import ConformanceSettings, ReplayResource
    from skill_pipeline.resources import SkillLibraryResource, WarehouseResource
    from skill_pipeline.verification.replay import outcome_line, verify_library

    settings = dataclasses.replace(ReplayResource().settings(ConformanceSettings().fitness_threshold()), tasks=tasks)
    library = SkillLibraryResource().resolved_path()
    db = WarehouseResource().resolved_path()
    try:
        return outcome_line(verify_library(library, db, settings))
    except ValueError as exc:  # the replay store is the mined store: say so, the mined library stands
        return f"no replay: {exc}"
