"""Progress display: rich bars on a terminal, plain log lines elsewhere (CI, pipes)."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


class Progress(Protocol):
    def advance(self, n: int = 1, note: str = "") -> None: ...
    def total(self, n: int) -> None: ...


def is_interactive() -> bool:
    return sys.stderr.isatty()


def log(message: str) -> None:
    """One plain line on stderr (stdout stays free for --json)."""
    print(message, file=sys.stderr, flush=True)


class _Plain:
    def __init__(self, label: str, every: int) -> None:
        self._label, self._every = label, every
        self._done, self._total = 0, 0
        self._lock = threading.Lock()

    def total(self, n: int) -> None:
        with self._lock:
            self._total = n

    def advance(self, n: int = 1, note: str = "") -> None:
        with self._lock:
            self._done += n
            if self._every and self._done % self._every == 0:
                log(f"{self._label}: {self._done}/{self._total or '?'} {note}".rstrip())


class _Rich:
    def __init__(self, bar, task) -> None:  # type: ignore[no-untyped-def]
        self._bar, self._task = bar, task

    def total(self, n: int) -> None:
        self._bar.update(self._task, total=n)

    def advance(self, n: int = 1, note: str = "") -> None:
        self._bar.update(self._task, advance=n)


@contextmanager
def progress(label: str, *, quiet: bool = False, every: int = 0) -> Iterator[Progress]:
    """A progress reporter. `every` is how often (in items) the plain variant logs."""
    if quiet or not is_interactive():
        yield _Plain(label, 0 if quiet else every)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)
        yield _Rich(bar, task)


_STEP = re.compile(r"Step (\d+)/(\d+) : ?(.*)")


@contextmanager
def steps(prefix: str = "docpipe: ", *, console: Console | None = None) -> Iterator[Callable[[str], None]]:
    """Build progress from `Step i/n : ...` lines (the engine's, or a hook's `progress:` lines).

    On a terminal each build gets a live bar with its current step; elsewhere every line is
    logged as it comes, so a CI log shows one line per Dockerfile step. Other lines print as is.
    """
    from rich.console import Console as RichConsole

    out = console or RichConsole(stderr=True)
    if not out.is_terminal:
        yield lambda line: log(f"{prefix}{line}")
        return
    from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress
    from rich.text import Text

    # markup=False: step text comes from a doc's spec and must print as plain words.
    with RichProgress(SpinnerColumn(), TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=out, transient=True) as bar:
        tasks: dict[str, TaskID] = {}
        lock = threading.Lock()

        def on_line(line: str) -> None:
            m = _STEP.search(line)
            with lock:
                if m is None:
                    bar.console.print(Text(f"{prefix}{line}"))  # Text: doc-derived words are not markup
                    return
                key = line[:m.start()].strip() or "build"
                done, total, what = int(m.group(1)) - 1, int(m.group(2)), m.group(3)
                description = f"{key} {what}"[:70]
                if key not in tasks:
                    tasks[key] = bar.add_task(description, total=total)
                bar.update(tasks[key], completed=done, total=total, description=description)

        yield on_line
