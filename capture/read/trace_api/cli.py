"""``skillmine trace serve`` (the trace API and timeline page) and ``skillmine trace show RUN_ID``."""

import argparse
import sys

from capture.store.db import StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount the ``trace`` command."""
    trace = subparsers.add_parser("trace", help="browse captured runs: HTTP trace API, timeline page, terminal tree")
    actions = trace.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the trace API, live event streams and the timeline page")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8321)
    serve.add_argument("--url", help="database URL (default: $SKILLMINE_DATABASE_URL or the SQLite file)")
    serve.add_argument("--verbose", action="store_true", help="log every request")
    serve.set_defaults(handler=_serve)
    show = actions.add_parser("show", help="print a run's event tree with durations, agents, status and files")
    show.add_argument("run_id")
    show.add_argument("--url", help="database URL (default: $SKILLMINE_DATABASE_URL or the SQLite file)")
    show.add_argument("--session-id", help="look the run up in this session only")
    show.add_argument("--json", action="store_true", help="print the run and its nested events as JSON")
    show.set_defaults(handler=_show)


def _fail(message: object) -> int:
    print(f"skillmine trace: {message}", file=sys.stderr)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from capture.read.trace_api.reader import open_read_only
    from capture.read.trace_api.server import TraceServer

    try:
        engine = open_read_only(args.url)
    except StoreError as exc:
        return _fail(exc)
    try:
        server = TraceServer(engine, args.host, args.port, verbose=args.verbose)
    except OSError as exc:
        engine.dispose()
        return _fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    print(f"trace API and timeline at {server.url}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.stopping.set()
        server.server_close()
        engine.dispose()
    return 0


def _show(args: argparse.Namespace) -> int:
    from capture.core.payload import dumps
    from capture.read.trace_api.reader import NotFound, TraceReader, open_read_only
    from capture.read.trace_api.tree_text import render_tree, run_tree

    try:
        engine = open_read_only(args.url)
    except StoreError as exc:
        return _fail(exc)
    try:
        tree = run_tree(TraceReader(engine), args.run_id, args.session_id)
    except NotFound as exc:
        return _fail(exc)
    finally:
        engine.dispose()
    print(dumps(tree) if args.json else render_tree(tree))
    return 0
