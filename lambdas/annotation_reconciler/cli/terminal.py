"""What the commands draw on a terminal and only there: tables when they fit, progress bars on stderr.

Piped output, or a terminal narrower than a table, gets one line per row instead: a key is never cut, wrapped or
padded, so it can be copied whole (``grep``, ``cut``, a mouse). A progress bar is drawn only when stderr is a
terminal, and never reaches stdout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def line(console: Console, text: str) -> None:
    """One line as it is: no markup, no highlighting, never wrapped or cut whatever the console's width."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def print_rows(console: Console, table: Table, lines: Iterable[str]) -> None:
    """``table`` when ``console`` is a terminal at least as wide as the table, else ``lines``, one per row."""
    unbounded = console.options.update_width(1_000_000)  # the width the table wants, not the one it is given
    if console.is_terminal and console.measure(table, options=unbounded).maximum <= console.width:
        console.print(table)
        return
    for text in lines:
        line(console, text)


class Bar:
    """A progress bar's handle: :meth:`advance` one step, :meth:`add_total` when more work is found."""

    def __init__(self, progress: Progress | None = None, total: int | None = None, what: str = "") -> None:
        self.progress = progress
        self.task = progress.add_task(what, total=total) if progress is not None else None

    def add_total(self, count: int) -> None:
        if self.progress is not None and self.task is not None:
            total = self.progress.tasks[0].total or 0
            self.progress.update(self.task, total=total + count)

    def advance(self, description: str, steps: int = 1) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, advance=steps, description=description[-60:])

    def __call__(self, description: str) -> None:
        self.advance(description)


def stderr_console() -> Console:
    """The console progress bars draw on: stderr (a seam for tests, which give it a terminal)."""
    return Console(stderr=True)


@contextlib.contextmanager
def progress_bar(what: str, total: int | None = None, console: Console | None = None) -> Iterator[Bar]:
    """A progress bar of ``what`` on stderr (``total`` steps, or as many as :meth:`Bar.add_total` adds), drawn
    only when stderr is a terminal and gone when done; elsewhere a handle that draws nothing."""
    err = console or stderr_console()
    if not err.is_terminal:
        yield Bar()
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        yield Bar(progress, total, what)
