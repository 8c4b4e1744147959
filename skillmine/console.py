"""Terminal output shared by every ``skillmine`` command, on ``rich``: consoles, tables, progress, failure lines.

Commands print through these instead of hand-aligning columns or redrawing ``\\r`` lines:

- :func:`console` gives a console on stdout or stderr (colour and live displays only on a terminal; plain text in
  pipes, files and CI logs, so output stays greppable);
- :func:`table` lays out rows with numbers right-aligned and thousands separated;
- :func:`progress` is a live display that draws only on a terminal and stays silent elsewhere;
- :func:`fail` prints the one line a failing command ends with: the cause, then the fix.
"""

from collections.abc import Iterable, Sequence
from typing import TextIO

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PLAIN_WIDTH = 160


def console(*, stderr: bool = False, file: TextIO | None = None) -> Console:
    """A console on stdout (``stderr=True``: stderr; or ``file``) that never re-wraps long lines and does not
    colour numbers and paths on its own. It resolves ``sys.stdout`` at print time, so captured output works.
    Off a terminal it lays tables out on PLAIN_WIDTH columns instead of rich's 80, so cells are not cut."""
    out = Console(file=file, stderr=stderr, highlight=False, soft_wrap=True)
    if not out.is_terminal:
        out.width = PLAIN_WIDTH
    return out


def _cell(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    return str(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[object]], *, title: str | None = None) -> Table:
    """A compact table; columns whose values are all numbers are right-aligned and printed with separators."""
    materialised = [list(r) for r in rows]
    grid = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for index, name in enumerate(columns):
        values = [r[index] for r in materialised if r[index] is not None]
        numeric = bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        grid.add_column(name, justify="right" if numeric else "left")
    for row in materialised:
        grid.add_row(*(_cell(v) for v in row))
    return grid


def progress(out: Console, *, quiet: bool = False) -> Progress:
    """A live progress display on ``out``: description, bar, done/total, elapsed. Draws only when ``out`` is a
    terminal and not ``quiet``; the finished bars stay on screen. Use it as a context manager."""
    return Progress(TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=out, disable=quiet or not out.is_terminal)


def fail(command: str, cause: str, fix: str | None = None, *, err: Console | None = None) -> None:
    """Print the last line of a failing command on stderr: ``skillmine <command>: <cause> (fix: <fix>)``."""
    line = f"skillmine {command}: {cause.strip()}" + (f" (fix: {fix.strip()})" if fix else "")
    (err or console(stderr=True)).print(line, style="red", markup=False)

