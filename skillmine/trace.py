"""``skillmine trace serve`` with the skill library: mounts ``GET /api/runs/{id}/conformance`` on the trace server.

``capture`` must not import the pipeline, so the trace server takes extra run answers from its caller
(``capture.read.trace_api.server.RunAnswer``); this module, which may import both, passes the conformance answer:
exactly what ``skillmine conform RUN_ID --json`` prints (``store_report`` with the default minimum fitness).
"""

import argparse
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine


def library_path(explicit: str | None) -> Path:
    """The library ``skillmine conform`` reads: ``--library``, else ``$SKILLMINE_LIBRARY``, else
    ``$SKILLMINE_HOME/library``."""
    from capture.core import config

    return Path(explicit or config.env("LIBRARY") or config.home() / "library").expanduser()


def conformance_answer(library: Path) -> Any:
    """The run answer ``conformance``: the run's best skill, fitness and deviations against ``library``."""
    def conformance(engine: Engine, run: dict[str, Any]) -> dict[str, Any]:
        from skill_pipeline.verification.runs import store_report

        return store_report(engine, run["id"], library)
    return conformance


def register(subparsers: argparse._SubParsersAction) -> None:
    """Give ``trace serve`` (mounted by ``capture.read.trace_api.cli``) a ``--library`` and the conformance route."""
    trace = subparsers.choices.get("trace")
    if trace is None:  # the trace extra is not installed
        return
    actions = next(a for a in trace._actions if isinstance(a, argparse._SubParsersAction))
    serve = actions.choices["serve"]
    serve.add_argument("--library", help="skill library the conformance answer compares runs with (default "
                                         "$SKILLMINE_LIBRARY or $SKILLMINE_HOME/library)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from capture.read.trace_api.cli import serve_command

    return serve_command(args, run_answers={"conformance": conformance_answer(library_path(args.library))})
