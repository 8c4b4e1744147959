"""``skillmine trace ...`` (the trace questions, the trace server) and ``skillmine runs search``.

Every question answers in text or, with ``--json``, with exactly the JSON the trace API serves for it (both call
:class:`~capture.read.trace_api.reader.TraceReader`). Runs are named by id or unique id prefix, steps by name
(``step_2``), number or node id.
"""

import argparse
from collections.abc import Callable, Mapping
from typing import Any

from capture.store.db import StoreError

URL_HELP = "database URL (default: $SKILLMINE_DATABASE_URL or the SQLite file)"


def _question(actions: argparse._SubParsersAction, name: str, help_text: str, handler: Callable,
              *positionals: tuple[str, str]) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=help_text)
    for arg, arg_help in positionals:
        parser.add_argument(arg, help=arg_help)
    parser.add_argument("--url", help=URL_HELP)
    parser.add_argument("--session-id", help="look up in this session only")
    parser.add_argument("--json", action="store_true", help="print the answer as the trace API's JSON")
    parser.set_defaults(handler=handler)
    return parser


def register(subparsers: argparse._SubParsersAction) -> None:
    """Mount the ``trace`` and ``runs`` commands."""
    trace = subparsers.add_parser("trace", help="the trace questions, the trace API server and timeline page")
    actions = trace.add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="serve the trace API, live event streams and the timeline page")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind; anything but loopback requires $SKILLMINE_TRACE_TOKEN")
    serve.add_argument("--port", type=int, default=8321)
    serve.add_argument("--url", help=URL_HELP)
    serve.add_argument("--verbose", action="store_true", help="log every request (never the token)")
    serve.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                       help="allow this browser origin to call the API (repeatable; default: no CORS)")
    serve.set_defaults(handler=serve_command)
    run_id = ("run_id", "run id or a unique prefix of it")
    _question(actions, "show", "print a run's event tree with durations, agents, status and files", _show, run_id)
    _question(actions, "file", "which agent, event, step and run wrote a file (and its content hash)", _file,
              ("path", "stored path, an ending of it (plot.png), or a sha256"))
    _question(actions, "node", "the execution flow within one step: events, tools, files, tokens, cost", _node,
              run_id, ("step", "step name (step_2, planning), step number or node id"))
    _question(actions, "agents", "how many times each agent was called (agent_call invocations)", _agents, run_id)
    _question(actions, "failure", "the events that led to a run's failure, or the step judged failed", _failure,
              run_id)
    runs = subparsers.add_parser("runs", help="find captured runs")
    runs_actions = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    search = _question(runs_actions, "search", "runs by task text, mode, outcome, agent and file type", _search)
    search.add_argument("text", nargs="?", help='words of the task ("plotting" also finds "plot")')
    search.add_argument("--mode", help="one_shot, planning_and_control, ...")
    search.add_argument("--outcome", help="run status: completed, failed, running, ...")
    search.add_argument("--agent", help="an agent that took part")
    search.add_argument("--file-type", help="a type of file the run produced (plot, code, ...)")
    search.add_argument("--limit", type=int, default=50)


def _fail(command: str, message: object) -> int:
    from skillmine.console import fail

    fail(command, str(message))
    return 2


def serve_command(args: argparse.Namespace, run_answers: Mapping[str, Any] | None = None) -> int:
    """``skillmine trace serve`` with the parsed ``args``; ``run_answers`` (name -> ``RunAnswer``) are extra routes
    ``/api/runs/{id}/<name>`` that the caller, which may import more than ``capture``, mounts."""
    from capture.read.trace_api.server import ServerRefused, serve

    try:
        return serve(args.url, args.host, args.port, verbose=args.verbose, cors_origins=tuple(args.cors_origin),
                     run_answers=run_answers)
    except (ServerRefused, StoreError) as exc:
        return _fail("trace serve", exc)


def _answer(args: argparse.Namespace, command: str, ask: Callable[[Any], dict[str, Any]],
            render: Callable[[dict[str, Any]], None]) -> int:
    """Open the store read-only, ask, print the answer (text or JSON); 2 naming what is missing."""
    from capture.core.payload import dumps
    from capture.read.trace_api.reader import NotFound, TraceReader, open_read_only

    try:
        engine = open_read_only(args.url)
    except StoreError as exc:
        return _fail(command, exc)
    try:
        answer = ask(TraceReader(engine))
    except NotFound as exc:
        return _fail(command, exc)
    finally:
        engine.dispose()
    if args.json:
        print(dumps(answer))
    else:
        render(answer)
    return 0


def _show(args: argparse.Namespace) -> int:
    from capture.read.trace_api.tree_text import render_tree, run_tree

    return _answer(args, "trace show", lambda r: run_tree(r, args.run_id, args.session_id),
                   lambda tree: print(render_tree(tree)))


def _file(args: argparse.Namespace) -> int:
    from capture.read.trace_api.answers_text import print_file

    return _answer(args, "trace file", lambda r: r.provenance(args.path, args.session_id), print_file)


def _node(args: argparse.Namespace) -> int:
    from capture.read.trace_api.answers_text import print_step

    return _answer(args, "trace node", lambda r: r.step(args.run_id, args.step, args.session_id), print_step)


def _agents(args: argparse.Namespace) -> int:
    from capture.read.trace_api.answers_text import print_agents

    return _answer(args, "trace agents", lambda r: r.agents(args.run_id, args.session_id), print_agents)


def _failure(args: argparse.Namespace) -> int:
    from capture.read.trace_api.answers_text import print_failure

    return _answer(args, "trace failure", lambda r: r.failure(args.run_id, args.session_id), print_failure)


def _search(args: argparse.Namespace) -> int:
    from capture.read.trace_api.answers_text import print_runs

    if args.limit < 1:
        return _fail("runs search", f"--limit {args.limit}: expected a positive number")
    return _answer(args, "runs search", lambda r: r.search(
        args.text, args.session_id, mode=args.mode, outcome=args.outcome, agent=args.agent,
        file_type=args.file_type, limit=args.limit), print_runs)
