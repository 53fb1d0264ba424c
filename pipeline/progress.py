"""Progress display: rich bars on a terminal, plain log lines elsewhere (CI, pipes)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol


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
