"""The one sha256 helper: content addresses, cache keys and change detection all hash this way."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def sha256_hex(data: bytes | str) -> str:
    """The hex sha256 of `data` (text is hashed as UTF-8)."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def sha256_parts(parts: Iterable[bytes]) -> str:
    """The hex sha256 of the concatenation of `parts`, without building it in memory."""
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
    return h.hexdigest()


def tree_digest(root: Path) -> str:
    """A digest of a directory's files (names and bytes), to notice whether it changed."""
    def parts() -> Iterable[bytes]:
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                yield path.relative_to(root).as_posix().encode() + b"\0"
                yield hashlib.sha256(path.read_bytes()).digest()
    return sha256_parts(parts())
