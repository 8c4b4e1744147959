"""``skillmine import KIND PATH``: bring MARS databases, CMBAgent histories and benchmark trials, AG2 runtime logs
and XES logs into the capture store, with a summary of what was written and what could not be mapped."""

import argparse
import importlib
import sys

from capture.store.db import StoreError

# kind -> (module, function); imported lazily so that one importer's dependency never blocks the others.
IMPORTERS = {
    "cmbagent-db": ("capture.importers.cmbagent_db", "import_cmbagent_db",
                    "a CMBAgent/MARS SQLite database (opened read-only)"),
    "cmbagent-history": ("capture.importers.cmbagent_history", "import_cmbagent_history",
                         "a CMBAgent chat history, a MARS session folder, or a directory of them"),
    "ag2-log": ("capture.importers.ag2_log", "import_ag2_log", "an AG2 runtime-logging SQLite database"),
    "xes": ("capture.importers.xes", "import_xes", "an XES event log (.xes or .xes.gz)"),
    "cmbagent-trials": ("capture.importers.trials", "import_cmbagent_trials",
                        "CMBAgent benchmark trials (benchmarks_cmbagent_trials.jsonl: one trial per line)"),
    "otlp": ("capture.importers.otlp", "import_otlp",
             "OTLP/JSON trace lines, as the OpenTelemetry Collector's file exporter writes them"),
}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount the ``import`` command."""
    command = subparsers.add_parser("import", help="import runs recorded elsewhere into the capture store")
    kinds = command.add_subparsers(dest="import_kind", required=True, metavar="KIND")
    for kind, (_, _, help_text) in IMPORTERS.items():
        sub = kinds.add_parser(kind, help=help_text)
        sub.add_argument("path", metavar="PATH")
        sub.add_argument("--url", help="database URL (default: $SKILLMINE_DATABASE_URL or the SQLite file)")
        sub.add_argument("--session", help="put every imported run into this session")
        sub.add_argument("--quiet", action="store_true", help="no progress line")
        sub.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Open the store, run the chosen importer, print the summary; 1 on bad input, 2 on store problems."""
    from capture.importers.common import Importer, SourceError
    from capture.store.capture_store import CaptureStore

    module, function, _ = IMPORTERS[args.import_kind]
    importer: Importer = getattr(importlib.import_module(module), function)
    from skillmine.console import fail

    try:
        store = CaptureStore.open(args.url)
    except StoreError as exc:
        fail("import", str(exc))
        return 2
    try:
        report = importer(args.path, store, session=args.session, quiet=args.quiet)
    except SourceError as exc:
        if exc.report is not None and (exc.report.runs_written or exc.report.runs_skipped):
            print(exc.report.summary(), file=sys.stderr)  # what stays stored; the cause is the last line
        fail("import", str(exc))
        return 1
    except StoreError as exc:
        fail("import", str(exc))
        return 2
    finally:
        store.close()
    print(report.summary())
    return 0
