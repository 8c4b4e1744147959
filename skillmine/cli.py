"""Entry point of the ``skillmine`` console script."""

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute subcommands; each has ``register(subparsers) -> None``.
PARTS = (
    "capture.store.cli",
    "capture.importers.cli",
    "capture.read.trace_api.cli",
    "workloads.cli",
    "skill_library.cli",
    "skill_pipeline.cli",
    "skillmine.main_job",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every part's subcommands mounted."""
    parser = argparse.ArgumentParser(prog="skillmine", description=__doc__)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and run the chosen subcommand; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
