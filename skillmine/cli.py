"""Entry point of the ``skillmine`` console script."""

import argparse
import importlib
import sqlite3
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from capture.core import config
from skillmine.console import fail

# Optional dependencies some commands need -> the extra that installs them.
OPTIONAL_MODULES = {"autogen": "ag2", "starlette": "trace", "uvicorn": "trace"}
# Modules that contribute subcommands; each has ``register(subparsers) -> None``.
PARTS = (
    "capture.store.cli",
    "capture.importers.cli",
    "capture.read.trace_api.cli",
    "workloads.cli",
    "skill_library.cli",
    "skill_pipeline.cli",
    "skill_pipeline.verification.cli",
    "skillmine.trace",
    "skillmine.main_job",
    "skillmine.otel",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every part's subcommands mounted."""
    parser = argparse.ArgumentParser(prog="skillmine", description=__doc__)
    parser.add_argument("--version", action="version", version=f"skillmine {version('skillmine')}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in PARTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (module_name + ".").startswith(exc.name + "."):
                raise  # a part's own dependency is missing: that is a real error
            continue
        module.register(subparsers)
    return parser


def _holds_no_run(store: Path) -> bool:
    try:
        with sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT count(*) FROM workflow_runs").fetchone()[0] == 0
    except sqlite3.Error:  # no skillmine schema in it: nothing was written either
        return True


def _tidy_after_failure(home: Path, existed: set[Path]) -> None:
    """A failed command leaves nothing half-made in the data directory: a store it created goes if it holds no
    run, and, when it created the directory itself, so do empty files and every folder left empty. Data (runs,
    spooled events, anything that was there before) stays."""
    store = home / "capture.db"
    if store not in existed and store.is_file() and _holds_no_run(store):
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{store}{suffix}").unlink(missing_ok=True)
    if home in existed or not home.is_dir():
        return
    for empty in [p for p in home.rglob("*") if p.is_file() and p.stat().st_size == 0]:
        empty.unlink()
    for folder in sorted((p for p in home.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    if not any(home.iterdir()):
        home.rmdir()


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen subcommand; return its exit code. A failed command takes back what it
    made in the data directory without data in it (see :func:`_tidy_after_failure`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    home = config.home()
    existed = {path for path in (home, home / "capture.db") if path.exists()}
    result = 1
    try:
        result = int(args.handler(args) or 0)
    except KeyboardInterrupt:
        result = 130
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in OPTIONAL_MODULES:
            raise
        fail(args.command, f"{missing} is not installed", f"pip install 'skillmine[{OPTIONAL_MODULES[missing]}]'")
    except Exception as exc:  # noqa: BLE001 - the last resort: an unexpected error ends with one line too
        traceback.print_exc()
        fail(args.command, f"unexpected {type(exc).__name__}: {exc}",
             "this is a bug in skillmine; please report it with the traceback above")
    finally:
        if result:
            _tidy_after_failure(home, existed)
    return result


if __name__ == "__main__":
    sys.exit(main())
