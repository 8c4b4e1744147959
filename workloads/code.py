"""The code blocks the scripted engineer, researcher and installer write, and what running them writes.

The python blocks embed a producer from :mod:`workloads.artefacts` verbatim, so executing them (AG2 engine) and
calling the producer in-process (fast engine) write the same bytes. Faulty attempts contain a real bug that
raises a real exception when executed; a missing-module attempt imports a module the installer then provides.
"""

import inspect
from dataclasses import dataclass, field
from functools import cache

from workloads import artefacts

BUGS: dict[str, tuple[str, str]] = {
    # kind: (the faulty line, the exception it raises)
    "KeyError": ('print("output:", PARAMS["output_path"])', "KeyError: 'output_path'"),
    "NameError": ('print("rows loaded:", n_rows_loaded)', "NameError: name 'n_rows_loaded' is not defined"),
    "ZeroDivisionError": ("scale = 1.0 / (len(PARAMS) - len(PARAMS))", "ZeroDivisionError: float division by zero"),
    "TypeError": ('label = "entries: " + len(PARAMS)',
                  'TypeError: can only concatenate str (not "int") to str'),
}
MISSING_MODULES = ("astro_units", "cosmo_tools", "specfit", "lightcurve_utils", "catalog_io")

WRITE_LOOP = """import os
for path, content in {producer}(PARAMS).items():
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(content)
    print(f"saved {{path}} ({{len(content)}} bytes)")"""


@dataclass(frozen=True)
class CodeRun:
    """One code execution: the block, how it ends and what it writes (path -> bytes, in write order)."""

    language: str
    code: str
    exit_code: int
    output: str
    duration_ms: int
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        """The path the executor saves the block to (its ``# filename:`` line)."""
        return self.code.split("\n", 1)[0].removeprefix("# filename: ").strip()


@cache
def _source(producer: str) -> str:
    function = artefacts.PRODUCERS[producer]
    helpers = inspect.getsource(artefacts.png_bytes) + "\n\n" if producer == "plot_function" else ""
    return helpers + inspect.getsource(function)


def python_run(producer: str, params: dict, filename: str, duration_ms: int, *, bug: str | None = None,
               missing_module: str | None = None) -> CodeRun:
    """A python block running ``producer`` on ``params``; ``bug`` or ``missing_module`` make it fail for real."""
    name = artefacts.PRODUCERS[producer].__name__
    lines = [f"# filename: {filename}"]
    if missing_module:
        lines.append(f"import {missing_module}")
    lines += ["", _source(producer), f"PARAMS = {params!r}"]
    if bug:
        lines.append(BUGS[bug][0])
    lines.append(WRITE_LOOP.format(producer=name))
    code = "\n".join(lines)
    written = {filename: code.encode()}
    if missing_module:
        error = f"ModuleNotFoundError: No module named '{missing_module}'"
        return CodeRun("python", code, 1, _traceback(filename, 2, f"import {missing_module}", error), duration_ms,
                       written)
    if bug:
        line = code.split("\n").index(BUGS[bug][0]) + 1
        return CodeRun("python", code, 1, _traceback(filename, line, BUGS[bug][0], BUGS[bug][1]), duration_ms,
                       written)
    outputs = artefacts.PRODUCERS[producer](params)
    log = "".join(f"saved {path} ({len(content)} bytes)\n" for path, content in outputs.items())
    return CodeRun("python", code, 0, log, duration_ms, {**written, **outputs})


def install_run(module: str, duration_ms: int) -> CodeRun:
    """The installer's bash block: provides ``module`` next to the engineer's code (offline, no network)."""
    filename = f"codebase/install_{module}.sh"
    content = f'"""{module} 1.0, provided by the installer."""\nVERSION = "1.0"\n'
    code = "\n".join([f"# filename: {filename}", f"cat > codebase/{module}.py <<'PYEOF'", content.rstrip("\n"),
                      "PYEOF", f'echo "Successfully installed {module}-1.0"'])
    return CodeRun("bash", code, 0, f"Successfully installed {module}-1.0\n", duration_ms,
                   {filename: code.encode(), f"codebase/{module}.py": content.encode()})


def _traceback(filename: str, line: int, source: str, error: str) -> str:
    return (f'Traceback (most recent call last):\n  File "{filename}", line {line}, in <module>\n    {source}\n'
            f"{error}\n")
