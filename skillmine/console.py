"""Terminal output shared by every ``skillmine`` command, on ``rich``: consoles, tables, progress, failure lines.

Commands print through these instead of hand-aligning columns or redrawing ``\\r`` lines:

- :func:`console` gives a console on stdout or stderr (colour and live displays only on a terminal; plain text in
  pipes, files and CI logs, so output stays greppable);
- :func:`table` lays out rows with numbers right-aligned and thousands separated;
- :func:`progress` is a live display that draws only on a terminal and stays silent elsewhere;
- :class:`RunProgress` is that display for runs written to a store (imports, simulations): runs done, events, events
  per second, time left;
- :func:`fail` prints the one line a failing command ends with: the cause, then the fix.
"""

import time
from collections.abc import Iterable, Sequence
from typing import TextIO

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

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
        grid.add_row(*(Text(_cell(v)) for v in row))  # Text: a cell's "[...]" is data, never rich markup
    return grid


def progress(out: Console, *, quiet: bool = False) -> Progress:
    """A live progress display on ``out``: description, bar, done/total, elapsed. Draws only when ``out`` is a
    terminal and not ``quiet``; the finished bars stay on screen. Use it as a context manager."""
    return Progress(TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=out, disable=quiet or not out.is_terminal)


class RunProgress:
    """Runs written to a store of a known (or not yet known) total: a live bar with runs done, events, events per
    second and time left on a terminal (on ``stream``, default stderr); nothing elsewhere or when quiet, where the
    command's own summary line says what was done. Close it to end the display."""

    def __init__(self, total: int | None = None, *, quiet: bool = False, stream: TextIO | None = None,
                 description: str = "runs") -> None:
        out = console(file=stream) if stream is not None else console(stderr=True)
        self.enabled = not quiet and out.is_terminal
        self.started = time.monotonic()
        self._display = Progress(TextColumn("{task.description}"), BarColumn(bar_width=30), MofNCompleteColumn(),
                                 TextColumn("{task.fields[events]:,} events ({task.fields[rate]:,.0f}/s)"),
                                 TimeRemainingColumn(), console=out, disable=not self.enabled)
        self._task = self._display.add_task(description, total=total, events=0, rate=0.0)
        if self.enabled:
            self._display.start()

    def update(self, runs: int, events: int, *, total: int | None = None) -> None:
        """Show ``runs`` finished runs and ``events`` written so far (and the total, once it is known)."""
        if not self.enabled:
            return
        rate = events / max(time.monotonic() - self.started, 1e-9)
        extra = {"total": total} if total is not None else {}
        self._display.update(self._task, completed=runs, events=events, rate=rate, **extra)

    def close(self) -> None:
        """End the display; the last state stays on screen."""
        if self.enabled:
            self._display.refresh()
            self._display.stop()
            self.enabled = False


def fail(command: str, cause: str, fix: str | None = None, *, err: Console | None = None) -> None:
    """Print the last line of a failing command on stderr: ``skillmine <command>: <cause> (fix: <fix>)``."""
    line = f"skillmine {command}: {cause.strip()}" + (f" (fix: {fix.strip()})" if fix else "")
    (err or console(stderr=True)).print(line, style="red", markup=False)

