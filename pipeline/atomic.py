"""Atomic file writes: a reader sees the old content or the new, never a mix, even after kill -9.

One temp file in the target's directory (named with TMP_PREFIX, so a sweep can find one a killed
writer left), fsync, rename, fsync the directory. Every file docpipe writes whole goes through
here: the store, run-state.json, the changes-feed state, roster CSVs, keys, `docpipe init`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# Temp files carry this prefix so a run can sweep the ones a killed run left behind.
TMP_PREFIX = ".tmp-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` so that readers see the old or the new content, never a mix.
    `mode` 0o600 for secrets: the file is never readable by others, not even for a moment."""
    with atomic_file(path, mode=mode) as fh:
        fh.write(data)


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file written in pieces (a stream too large to hold), then put in place as atomic_write
    does; an exception inside the block leaves the old file (or none) and no temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as fh:  # readable too: a writer may check what it wrote
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
