"""``skillmine db ...``: create, upgrade, downgrade and inspect the capture store."""

import argparse
import functools
from collections.abc import Callable

from capture.store.db import StoreError, make_engine, safe_url


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount the ``db`` command."""
    db = subparsers.add_parser("db", help="manage the capture store schema")
    db.add_argument("--url", help="database URL (default: $SKILLMINE_DATABASE_URL or the SQLite file)")
    actions = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    up = actions.add_parser("upgrade", help="migrate the store to a revision (default: head)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(handler=_upgrade)
    down = actions.add_parser("downgrade", help="migrate the store down to a revision (`base` drops it)")
    down.add_argument("revision")
    down.set_defaults(handler=_downgrade)
    actions.add_parser("current", help="print the store's revision").set_defaults(handler=_current)
    actions.add_parser("status", help="print what the store holds").set_defaults(handler=_status)


def _store_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn a :class:`StoreError` (unreachable store, bad URL, old schema) into one ``skillmine db:`` line and
    exit code 2, in one place for every ``db`` action."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except StoreError as exc:
            from skillmine.console import fail

            fail("db", str(exc))
            return 2
    return run


@_store_errors
def _upgrade(args: argparse.Namespace) -> int:
    from capture.store import migrate

    migrate.upgrade(args.url, args.revision)
    print(f"capture store at {safe_url(make_engine(args.url).url.render_as_string(False))} "
          f"is at revision {args.revision if args.revision != 'head' else migrate.head_revision()}")
    return 0


@_store_errors
def _downgrade(args: argparse.Namespace) -> int:
    from capture.store import migrate

    migrate.downgrade(args.revision, args.url)
    print(f"capture store downgraded to {args.revision}")
    return 0


@_store_errors
def _current(args: argparse.Namespace) -> int:
    from capture.store.db import current_revision, ping

    engine = make_engine(args.url)
    ping(engine)
    print(current_revision(engine) or "(no skillmine schema)")
    return 0


@_store_errors
def _status(args: argparse.Namespace) -> int:
    from capture.read.queries import store_overview
    from capture.store.capture_store import CaptureStore

    store = CaptureStore.open(args.url)
    from skillmine.console import console, table

    overview = store_overview(store.engine)
    out = console()
    out.print(f"capture store: {safe_url(store.engine.url.render_as_string(False))}", markup=False)
    out.print(table(["table", "rows"], overview["tables"].items()))
    if overview["runs_by_mode"]:
        out.print(table(["mode", "runs"], overview["runs_by_mode"].items(), title="runs by mode"))
    return 0
