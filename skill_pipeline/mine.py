"""Running ``mine_skills_job`` in-process: progress while it works, Dagster's log in a file, a short summary.

Dagster's console logger stays silent unless ``verbose``; every event of the run is appended to
``<dagster home>/logs/<run id>.log`` instead, and the summary names that file. A progress display follows the
job's steps on a terminal. Any failure ends with one line naming the cause and the fix: the store problem, the
failed step's error and where it was raised, or the failed check with its measured value, threshold and setting.
"""

import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import dagster as dg
from rich.console import Console
from rich.progress import Progress, TaskID
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from capture.store.capture_store import CaptureStore
from capture.store.db import StoreError, StoreUnreachable
from skillmine.console import console, fail, progress

JOB = "mine_skills_job"
_STEP_DONE = (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE,
              dg.DagsterEventType.STEP_SKIPPED)
_ROOT = Path(__file__).resolve().parents[1]
_OUR_PACKAGES = tuple(_ROOT / name for name in ("capture", "skill_library", "skill_pipeline", "skillmine", "workloads"))
_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+)')
# Errors whose fix is known, by a fragment of their message.
_KNOWN_FIXES = (
    ("Could not set lock on file",
     "another `skillmine mine` or `skillmine ui` holds the warehouse: wait for it or stop it"),
    ("skillmine db upgrade", "run `skillmine db upgrade`"),
)


@dataclass
class MineOptions:
    """What ``skillmine mine`` was asked to use (``None`` = configured default)."""

    url: str | None = None
    warehouse: str | None = None
    library: str | None = None
    min_support: int | None = None
    overlap: int = 1000
    quiet: bool = False
    verbose: bool = False


class _RunLog:
    """Follows the run's events: appends each to the log file and advances the progress display."""

    def __init__(self, path: Path, bar: Progress, steps: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._bar = bar
        self._task: TaskID = bar.add_task("mining", total=steps)

    def __call__(self, entry: Any) -> None:
        when = datetime.fromtimestamp(entry.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        kind = entry.dagster_event.event_type_value if entry.dagster_event is not None else "LOG"
        self._file.write(f"{when} {logging.getLevelName(entry.level):7} {entry.step_key or '-'} {kind}: "
                         f"{entry.message}\n")
        error = _error_of(entry)
        if error is not None:
            self._file.write(error.to_string() + "\n")
        self._file.flush()
        event = entry.dagster_event
        if event is not None and event.event_type == dg.DagsterEventType.STEP_START:
            self._bar.update(self._task, description=f"mining: {entry.step_key}")
        elif event is not None and event.event_type in _STEP_DONE:
            self._bar.advance(self._task)

    def close(self) -> None:
        """Finish the display line and the file."""
        self._bar.update(self._task, description="mining: done")
        self._file.close()


def _error_of(entry: Any) -> Any:
    event = entry.dagster_event
    if event is not None and event.event_type in (dg.DagsterEventType.STEP_FAILURE,
                                                  dg.DagsterEventType.RUN_FAILURE):
        return getattr(event.event_specific_data, "error", None)
    return entry.error_info


def materialisations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    """Asset key -> metadata values of the run's materialisations (what the summary reports)."""
    out = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def summary(result: dg.ExecuteInProcessResult, library_path: Path) -> str:
    """What the run did, in a few lines."""
    meta = materialisations(result)
    events, clusters = meta.get("raw_agent_events", {}), meta.get("sequence_clusters", {})
    templates, release = meta.get("skill_templates", {}), meta.get("skill_library_release", {})
    outcomes = meta.get("run_outcomes", {})
    changes = ", ".join(f"{k.removeprefix('skills_')} {v}" for k, v in sorted(release.items())
                        if k.startswith("skills_")) or "none"
    lines = [
        f"mining run {result.run_id}: {'succeeded' if result.success else 'FAILED'}",
        (f"  events: {events.get('rows_inserted', 0):,} new, {events.get('dagster/row_count', 0):,} in the "
         f"warehouse (HWM {events.get('hwm', 0):,})"),
        (f"  clusters: {clusters.get('n_clusters', 0)} (silhouette {clusters.get('silhouette', 0.0):.3f}, "
         f"coverage {clusters.get('coverage', 0.0):.1%}); overall success rate "
         f"{outcomes.get('success_rate', 0.0):.1%}"),
        (f"  templates: {templates.get('dagster/row_count', 0)} mined, {templates.get('publishable', 0)} "
         f"publishable (support >= {templates.get('min_support', '?')})"),
        (f"  library release {release.get('release', 0)} ({'new' if release.get('created') else 'unchanged'}): "
         f"{changes}"),
        f"  library: {library_path}",
        "  UI: run `skillmine ui` and open http://127.0.0.1:3000 (runs of `skillmine mine` are listed there)",
    ]
    return "\n".join(lines)


def _describe_check(evaluation: Any) -> str:
    """``asset:check``, its description and its metadata (measured value, threshold, setting) on one line."""
    values = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
    shown = ", ".join(f"{k}={str(v).splitlines()[0][:80] if v is not None else ''}" for k, v in values.items())
    name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
    return f"check {name} did not pass" + (f": {evaluation.description}" if evaluation.description else "") + \
        (f" [{shown}]" if shown else "")


def _innermost(error: Any) -> Any:
    while error.cause is not None:
        error = error.cause
    return error


def _step_failure(result: dg.ExecuteInProcessResult) -> tuple[str, str] | None:
    """Cause and place of the first failed step, from the innermost error of its chain."""
    for event in result.all_events:
        if event.is_step_failure:
            error = _innermost(event.event_specific_data.error)
            frames = [m for line in error.stack for m in [_FRAME.search(line)] if m]
            ours = [m for m in frames if any(Path(m["path"]).is_relative_to(p) for p in _OUR_PACKAGES)]
            where = ""
            if ours or frames:
                frame = (ours or frames)[-1]
                path = Path(frame["path"])
                shown = path.relative_to(_ROOT) if path.is_relative_to(_ROOT) else path
                where = f" at {shown}:{frame['line']}"
            return event.step_key or "?", f"{error.message.strip().splitlines()[0]}{where}"
    return None


def _fix_for(cause: str, log: Path) -> str:
    known = next((fix for fragment, fix in _KNOWN_FIXES if fragment in cause), None)
    return f"{known}; details in {log}" if known else f"the traceback is in {log}"


def _report_failure(result: dg.ExecuteInProcessResult, log: Path, err: Console) -> None:
    failed = _step_failure(result)
    blocking = [e for e in result.get_asset_check_evaluations() if not e.passed and e.blocking]
    if blocking and (failed is None or failed[0].endswith(blocking[0].check_name)):
        check = blocking[0]
        setting = check.metadata.get("setting")
        fix = (f"change {getattr(setting, 'value', setting)}" if setting is not None
               else "the check's metadata above says what failed") + f"; details in {log}"
        fail("mine", _describe_check(check), fix, err=err)
    elif failed is not None:
        fail("mine", f"step {failed[0]} failed: {failed[1]}", _fix_for(failed[1], log), err=err)
    else:
        fail("mine", f"the mining run {result.run_id} failed", f"see {log}", err=err)


@contextmanager
def _beside_capture(err: Console) -> Iterator[Console]:
    """A console for the live display that stays visible while Dagster points this process's stdout and stderr
    descriptors at a step's compute log: on a terminal it writes to a duplicate of the terminal's descriptor."""
    try:
        descriptor = err.file.fileno() if err.is_terminal else None
    except (AttributeError, OSError, ValueError):  # a terminal-like stream without a descriptor
        descriptor = None
    if descriptor is None:
        yield err
        return
    with os.fdopen(os.dup(descriptor), "w") as stream:
        yield console(file=stream)


def _store_problem(url: str) -> tuple[str, str | None] | None:
    """Why the store at ``url`` cannot be mined, with the fix; ``None`` when it opens. A SQLite file that does not
    exist yet is reported, not created: mining an empty home must leave nothing behind."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"invalid database URL {url!r}", "pass --url sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:") and not Path(database).exists():
        return (f"no capture store at {database} yet",
                "capture runs first: `skillmine simulate`, `skillmine import ...` or capture.run() in your code")
    try:
        CaptureStore.open(url).close()
    except StoreUnreachable as exc:
        return str(exc), "start the database, or point --url / SKILLMINE_DATABASE_URL at a reachable store"
    except StoreError as exc:
        return str(exc), None  # the message already names the fix (`skillmine db upgrade`, the driver, ...)
    return None


def mine_now(options: MineOptions, *, home: Path | Callable[[], Path], out: Console | TextIO | None = None,
             err: Console | None = None) -> int:
    """Run the job; returns a process exit code (0 ok, 1 run failed, 2 bad configuration). ``home`` is the Dagster
    home, or a function making it: called only once the store is known to be there, so a failure leaves none."""
    from skill_pipeline.definitions import defs
    from skill_pipeline.instance import instance_environment
    from skill_pipeline.resources import (
        EventStoreResource,
        MiningSettings,
        SkillLibraryResource,
        WarehouseResource,
    )

    out = out if isinstance(out, Console) else console(file=out)
    err = err or console(stderr=True)
    store = EventStoreResource(database_url=options.url)
    problem = _store_problem(store.url())
    if problem is not None:
        fail("mine", *problem, err=err)
        return 2
    library = SkillLibraryResource(path=options.library)
    resources = {"event_store": store,
                 "warehouse_db": WarehouseResource(path=options.warehouse),
                 "skill_library": library, "mining_settings": MiningSettings(min_support=options.min_support)}
    run_config = {"ops": {"extracted_tables": {"config": {"overlap": options.overlap}}},
                  "loggers": {"console": {"config": {"log_level": "INFO" if options.verbose else "CRITICAL"}}}}
    job = defs.resolve_job_def(JOB)
    run_id = str(uuid.uuid4())
    dagster_home = home() if callable(home) else home
    os.environ.update(instance_environment(dagster_home))
    with (dg.DagsterInstance.get() as instance, _beside_capture(err) as live,
          progress(live, quiet=options.quiet or options.verbose) as bar):
        run_log = _RunLog(dagster_home / "logs" / f"{run_id}.log", bar, len(job.graph.nodes))
        instance.add_event_listener(run_id, run_log)
        try:
            result = job.execute_in_process(resources=resources, instance=instance, run_config=run_config,
                                            run_id=run_id, raise_on_error=False)
        finally:
            run_log.close()
    out.print(summary(result, library.resolved_path()), markup=False)
    for check in result.get_asset_check_evaluations():
        if not check.passed and not check.blocking:
            out.print(f"  warning: {_describe_check(check)}", markup=False)
    out.print(f"  Dagster log: {run_log.path}", markup=False)
    if not result.success:
        _report_failure(result, run_log.path, err)
        return 1
    return 0
