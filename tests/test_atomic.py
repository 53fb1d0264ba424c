"""Atomic writes: old or new content, never a mix, no temp file left, secrets never world-readable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline.atomic import atomic_write


def test_atomic_write_leaves_old_content_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.json"
    atomic_write(target, b"old\n")

    def boom(fd: int) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError):
        atomic_write(target, b"new\n")
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]  # no temp file left behind


def test_atomic_write_mode_keeps_secrets_owner_only(tmp_path: Path) -> None:
    atomic_write(tmp_path / "a" / "key.pem", b"secret", mode=0o600)
    atomic_write(tmp_path / "a" / "page.html", b"public")
    assert (tmp_path / "a" / "key.pem").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "a" / "page.html").stat().st_mode & 0o777 == 0o644
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp file left
