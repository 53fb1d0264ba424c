"""The pack writer: what it writes, git itself reads, verifies and checks."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pygit2

from pipeline.replay.packwriter import _index, write_pack


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def test_pack_of_a_commit_passes_fsck_and_verify_pack(tmp_path: Path) -> None:
    # Objects made by libgit2 as loose files in one repository...
    src = pygit2.init_repository(str(tmp_path / "src"), bare=True)
    big = bytes(range(256)) * 400  # a size that needs several header bytes
    blobs = {"a.md": src.create_blob(b"# A\n"), "b.bin": src.create_blob(big)}
    tb = src.TreeBuilder()
    for name, oid in sorted(blobs.items()):
        tb.insert(name, oid, pygit2.GIT_FILEMODE_BLOB)
    tree = tb.write()
    sig = pygit2.Signature("Ada", "ada@example.org", 1_700_000_000, 0)
    commit = src.create_commit(None, sig, sig, "first\n", tree, [])
    objects = [(oid.raw, int(src.get(oid).type), src.get(oid).read_raw()) for oid in [*blobs.values(), tree, commit]]
    # ...written as one pack into another: git reads it as any pack.
    dst = pygit2.init_repository(str(tmp_path / "dst"), bare=True)
    name = write_pack(Path(dst.path) / "objects" / "pack", objects)
    assert name and (Path(dst.path) / "objects" / "pack" / f"{name}.idx").is_file()
    git(tmp_path / "dst", "update-ref", "refs/heads/main", str(commit))
    git(tmp_path / "dst", "fsck", "--strict", "--no-dangling")
    verify = git(tmp_path / "dst", "verify-pack", "-v", str(Path(dst.path) / "objects" / "pack" / f"{name}.idx"))
    assert f"{commit} commit" in verify and "non delta: 4 objects" in verify
    assert git(tmp_path / "dst", "cat-file", "-s", f"{commit}:b.bin").strip() == str(len(big))
    assert pygit2.Repository(dst.path)[blobs["b.bin"]].data == big
    assert not list((Path(dst.path) / "objects" / "pack").glob("tmp-*"))


def test_nothing_to_write_leaves_nothing(tmp_path: Path) -> None:
    assert write_pack(tmp_path, []) is None
    assert list(tmp_path.iterdir()) == []


def test_offsets_past_2_gib_go_to_the_large_offset_table() -> None:
    entries = [(bytes([1]) + b"\0" * 19, 7, 12), (bytes([2]) + b"\0" * 19, 8, (1 << 31) + 5)]
    idx = _index(entries, b"\x11" * 20)
    n = 2
    body = idx[8 + 256 * 4:]
    offsets = struct.unpack(">2I", body[n * 20 + n * 4: n * 20 + n * 8])
    assert offsets == (12, 0x80000000)
    (large,) = struct.unpack(">Q", body[n * 28: n * 28 + 8])
    assert large == (1 << 31) + 5


def test_a_failed_write_leaves_no_temp_files(tmp_path: Path, monkeypatch) -> None:
    import os

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    try:
        write_pack(tmp_path, [(b"\1" * 20, 3, b"data")])
    except OSError as exc:
        assert exc.errno == 28
    else:
        raise AssertionError("the write should have failed")
    assert list(tmp_path.iterdir()) == []


def test_objects_streamed_with_their_count_make_the_same_pack(tmp_path: Path) -> None:
    objects = [(bytes([i]) * 20, 3, f"blob {i}\n".encode() * 100) for i in range(1, 6)]
    listed = write_pack(tmp_path / "listed", objects)
    streamed = write_pack(tmp_path / "streamed", iter(objects), len(objects))
    assert listed is not None and listed == streamed
    assert (tmp_path / "listed" / f"{listed}.pack").read_bytes() == (tmp_path / "streamed" / f"{listed}.pack").read_bytes()
    try:
        write_pack(tmp_path / "short", iter(objects[:2]), 3)
    except ValueError as exc:
        assert "told 3 objects, given 2" in str(exc)
    else:
        raise AssertionError("a pack whose header count is wrong was written")
    assert not list((tmp_path / "short").iterdir())
