"""``skillmine ui`` (Dagster webserver + daemon) and ``skillmine mine`` (the whole mining job, in-process).

Both share one Dagster home, ``$SKILLMINE_HOME/dagster`` (absolute, with ``deploy/dagster.yaml`` copied in), so
runs started by ``mine`` show up in the UI and sensor cursors and run-queue limits are shared. ``mine`` needs no
daemon: it executes the job in this process against the configured store, warehouse and library. With
``SKILLMINE_DAGSTER_PG_URL`` set, the instance keeps its runs, events and schedules in that PostgreSQL database
(``deploy/postgres_storage.yaml`` is appended to the settings) instead of files under the home.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from skill_pipeline.instance import PACKAGE_DIR, dagster_home, instance_environment

STOP_TIMEOUT_S = 20


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount ``ui`` and ``mine``."""
    ui = subparsers.add_parser("ui", help="start the Dagster UI and daemon for the mining pipeline")
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=3000, help="port (default 3000)")
    ui.set_defaults(handler=_ui)
    mine = subparsers.add_parser("mine", help="run the whole mining job now (no daemon needed)")
    mine.add_argument("--url", help="capture store URL with driver (default $SKILLMINE_DATABASE_URL)")
    mine.add_argument("--warehouse", help="DuckDB file (default $SKILLMINE_HOME/warehouse.duckdb)")
    mine.add_argument("--library", help="skill library directory (default $SKILLMINE_HOME/library)")
    mine.add_argument("--min-support", type=int, help="runs a template needs to be published (default 5)")
    mine.add_argument("--overlap", type=int, default=1000, help="seqs re-read below the HWM (default 1000)")
    mine.add_argument("--quiet", action="store_true", help="print only the summary (no progress display)")
    mine.add_argument("--verbose", action="store_true", help="print Dagster's log on the console too (it always "
                                                              "goes to a file named in the summary)")
    mine.set_defaults(handler=_mine)


def _code_target() -> list[str]:
    workspace = PACKAGE_DIR.parent / "workspace.yaml"
    return ["-w", str(workspace)] if workspace.exists() else ["-m", "skill_pipeline.definitions"]


def _dagster_executable() -> str:
    local = Path(sys.executable).parent / "dagster"
    return str(local) if local.exists() else "dagster"


def _restore_sigint() -> None:
    """Runs in the child before exec: a background shell leaves SIGINT ignored, and Dagster copies that
    disposition onto SIGTERM, which would make the server unstoppable (dagster.md §8)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(proc: subprocess.Popen) -> int:
    """Signal the process group we started, then wait; kill it if it does not stop in time."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return proc.wait()
    try:
        return proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()


def _ui(args: argparse.Namespace) -> int:
    home = dagster_home()
    env = {**os.environ, **instance_environment(home)}
    cmd = [_dagster_executable(), "dev", *_code_target(), "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (DAGSTER_HOME={home}); Ctrl-C stops it", flush=True)
    # preexec_fn must run between fork and exec to reset the inherited signal dispositions (dagster.md §8).
    proc = subprocess.Popen(cmd, env=env, cwd=PACKAGE_DIR.parent, start_new_session=True,
                            preexec_fn=_restore_sigint)  # noqa: PLW1509

    def _terminate(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        code = _stop(proc)
        print("Dagster UI stopped", flush=True)
        return 0 if code in (0, -signal.SIGTERM, 128 + signal.SIGTERM) else code
    finally:
        signal.signal(signal.SIGTERM, previous)


def _mine(args: argparse.Namespace) -> int:
    from skill_pipeline.mine import MineOptions, mine_now

    options = MineOptions(url=args.url, warehouse=args.warehouse, library=args.library,
                          min_support=args.min_support, overlap=args.overlap, quiet=args.quiet,
                          verbose=args.verbose)
    return mine_now(options, home=dagster_home)
