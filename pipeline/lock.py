"""The workdir lock: one module for `docpipe run` (WORKDIR/.lock) and pull (WORKDIR/.pull.lock).

An flock on a file in the workdir: the kernel drops it with the descriptor, also on kill -9, so a
crashed run never blocks the next one. The file is removed on the way out (a failed stage leaves
nothing behind); a waiter that locked a file removed meanwhile notices by its inode and retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import EXIT_LOCKED, DocpipeError


class LockBusy(DocpipeError):
    """Another docpipe process holds the workdir: its own exit status (EXIT_LOCKED)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, exit_code=EXIT_LOCKED)


@contextlib.contextmanager
def workdir_lock(workdir: Path, *, name: str = ".lock", what: str = "run", wait: bool = False) -> Iterator[None]:
    """Hold WORKDIR/`name` for the block; LockBusy at once when another holds it (unless `wait`)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            hint = "; wait for it or pass --wait" if what == "run" else ""
            raise LockBusy(f"another docpipe {what} is using {workdir} (pid {holder}){hint}") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file while we waited: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)
