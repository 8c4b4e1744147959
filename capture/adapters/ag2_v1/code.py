"""Code runs of AG2 v1's ``SandboxCodeTool``: its environment's ``run`` is wrapped per instance, so a ``code_exec``
gets the real exit code and output (the tool itself folds them into one result text) and, for a local sandbox, the
files the code created or changed in the sandbox's working directory.

Registering a tool on an agent deep-copies it, but not its ``run_code`` function: the environment that really runs
the code is the one that function closes over, not the copy's ``environment``. When that cannot be found, the
result text's ``[exit code: N]`` suffix still gives the exit code (:func:`parse_result`).
"""

import functools
import inspect
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capture.adapters import patching
from capture.adapters.workdir import changes, scan, script_files


@dataclass
class CodeRun:
    """What one ``environment.run`` returned, and what it changed in a local working directory."""

    exit_code: int
    output: str
    work_dir: str | None
    files: list[tuple[str, str]] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)


EXIT_SUFFIX = re.compile(r"\n?\[exit code: (-?\d+)\]\Z")

_runs: ContextVar[list[CodeRun] | None] = ContextVar("skillmine_v1_code_runs", default=None)


@contextmanager
def code_runs(runs: list[CodeRun]) -> Iterator[list[CodeRun]]:
    """Collect into ``runs`` the code runs made inside the block (by the code tool call it wraps)."""
    token = _runs.set(runs)
    try:
        yield runs
    finally:
        _runs.reset(token)


def host_workdir(environment: Any) -> Path | None:
    """The local directory a code environment runs in (a ``LocalEnvironment`` behind a ``CodeAdapter``), else
    ``None`` (a remote sandbox: its files are not visible here)."""
    factory = getattr(environment, "_factory", environment)
    sandbox = getattr(factory, "sandbox", None)
    path = getattr(sandbox, "host_workdir", None)
    return Path(path) if path is not None else None


def _wrap_run(environment: Any, original: Any) -> Any:
    @functools.wraps(original)
    async def run(code: str, language: Any, *args: Any, **kwargs: Any) -> Any:
        runs = _runs.get()
        if runs is None or not patching.is_active(environment):
            return await original(code, language, *args, **kwargs)
        work_dir = host_workdir(environment)
        before = scan(work_dir)
        result = await original(code, language, *args, **kwargs)
        changed = changes(before, scan(work_dir))
        scripts = script_files(changed)
        runs.append(CodeRun(result.exit_code, result.output, str(work_dir) if work_dir is not None else None,
                            [(path, op) for path, op in changed if path not in scripts], scripts))
        return result

    return run


def parse_result(text: str) -> tuple[int, str]:
    """(exit code, output) from ``run_code``'s result text: the output, then ``[exit code: N]`` when not 0."""
    match = EXIT_SUFFIX.search(text)
    return (int(match.group(1)), text[:match.start()]) if match else (0, text)


def running_environment(tool: Any) -> Any:
    """The environment ``tool``'s ``run_code`` function runs code in (see the module docstring)."""
    call = getattr(getattr(getattr(tool, "_tool", None), "model", None), "call", None)
    if call is not None:
        environment = inspect.getclosurevars(call).nonlocals.get("env")
        if environment is not None and hasattr(environment, "run"):
            return environment
    return tool.environment


def instrument_code_tool(tool: Any) -> Any:
    """Wrap the ``run`` of ``tool``'s running environment (idempotent); returns it (to undo with the agent)."""
    environment = running_environment(tool)
    if patching.activate(environment):
        patching.patch(environment, "run", lambda original: _wrap_run(environment, original))
    return environment
