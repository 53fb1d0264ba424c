"""What a user would compare between two runs: files by content, processes left behind."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import psutil


def file_digests(root: Path) -> dict[str, str]:
    """Every file under `root` by relative path, as sha256 ({} when `root` is missing)."""
    if not root.is_dir():
        return {}
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def session_members(sid: int) -> list[psutil.Process]:
    """Live (not zombie) processes of session `sid`: a killed run and whatever it started."""
    alive = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError):
            continue
    return alive
