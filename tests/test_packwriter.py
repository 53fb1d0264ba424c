"""The pack writer: what it writes, git itself reads, verifies and checks; its deltas give back
exactly the object they stand for."""

from __future__ import annotations

import random
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest

from pipeline.replay.packwriter import BLOB, COMMIT, TREE, PackWriter, Stored, _index, apply_delta, make_delta, object_id
from pipeline.replay.spool import Spool


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture
def spool() -> Iterator[Spool]:
    s = Spool()
    yield s
    s.close()


def _tree(entries: dict[str, bytes]) -> bytes:
    return b"".join(b"100644 %s\0%s" % (name.encode(), oid) for name, oid in sorted(entries.items()))


def _commit(tree: bytes, parent: bytes | None, n: int) -> bytes:
    head = b"tree %s\n" % tree.hex().encode() + (b"parent %s\n" % parent.hex().encode() if parent else b"")
    who = b"Ada <ada@example.org> %d +0000" % (1_700_000_000 + n)
    return head + b"author " + who + b"\ncommitter " + who + b"\n\nversion %d\n" % n


def test_versions_packed_as_deltas_pass_fsck_and_read_back(tmp_path: Path, spool: Spool) -> None:
    """Twenty versions of a growing file, its tree and commits, each version a delta against the
    one before: git verifies the pack and reads every version back byte for byte."""
    repo = pygit2.init_repository(str(tmp_path / "repo"), bare=True)
    writer = PackWriter(Path(repo.path) / "objects" / "pack", spool)
    rng = random.Random(5)
    words = [bytes(rng.choice(b"abcdefghij") for _ in range(rng.randint(2, 9))) for _ in range(50)]
    text = b"# Notes\n\n"
    big = bytes(range(256)) * 400  # a size that needs several header bytes
    blob_base = tree_base = None
    parent = None
    versions = {}
    for n in range(20):
        text += b" ".join(rng.choice(words) for _ in range(60)) + b"\n\n"
        if n % 5 == 4:  # an edit in the middle, not only at the end
            cut = len(text) // 2
            text = text[:cut] + b"EDITED " + text[cut:]
        blob = object_id(BLOB, text)
        blob_at = writer.add(blob, BLOB, text, blob_base)
        blob_base = (blob_at, text)
        versions[blob] = text
        raw_tree = _tree({"big.bin": object_id(BLOB, big), "notes.md": blob})
        writer.add(object_id(BLOB, big), BLOB, big)
        tree = object_id(TREE, raw_tree)
        tree_at = writer.add(tree, TREE, raw_tree, tree_base)
        tree_base = (tree_at, raw_tree)
        raw_commit = _commit(tree, parent, n)
        parent = object_id(COMMIT, raw_commit)
        writer.add(parent, COMMIT, raw_commit)
    name = writer.close()
    assert name and writer.deltas >= 30  # blobs and trees after the first
    assert not list((Path(repo.path) / "objects" / "pack").glob("tmp-*"))
    assert parent is not None
    git(tmp_path / "repo", "update-ref", "refs/heads/main", parent.hex())
    git(tmp_path / "repo", "fsck", "--strict", "--no-dangling")
    verify = git(tmp_path / "repo", "verify-pack", "-v", str(Path(repo.path) / "objects" / "pack" / f"{name}.idx"))
    assert "chain length = 19: 1 object" in verify  # the last version of notes.md
    fresh = pygit2.Repository(repo.path)
    for blob, data in versions.items():
        assert fresh[pygit2.Oid(raw=blob)].data == data
    assert git(tmp_path / "repo", "cat-file", "-s", "main:big.bin").strip() == str(len(big))


def test_an_object_added_twice_is_packed_once(tmp_path: Path, spool: Spool) -> None:
    writer = PackWriter(tmp_path, spool)
    first = writer.add(object_id(BLOB, b"same\n"), BLOB, b"same\n")
    assert writer.add(object_id(BLOB, b"same\n"), BLOB, b"same\n") == first
    assert writer.count == 1
    writer.close()


def test_chains_stop_at_git_s_depth(tmp_path: Path, spool: Spool) -> None:
    writer = PackWriter(tmp_path, spool)
    base: tuple[Stored, bytes] | None = None
    depths = []
    text = b"x" * 2000
    for n in range(60):
        text += b"line %d\n" % n
        at = writer.add(object_id(BLOB, text), BLOB, text, base)
        base = (at, text)
        depths.append(at.depth)
    writer.close()
    assert max(depths) == 50 and depths[51] == 0 and depths[52] == 1


def test_nothing_written_leaves_nothing(tmp_path: Path, spool: Spool) -> None:
    assert PackWriter(tmp_path, spool).close() is None
    assert list(tmp_path.iterdir()) == []


def test_a_failed_close_leaves_no_temp_files(tmp_path: Path, spool: Spool, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    writer = PackWriter(tmp_path, spool)
    writer.add(b"\1" * 20, BLOB, b"data")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError) as exc:
        writer.close()
    assert exc.value.errno == 28
    assert list(tmp_path.iterdir()) == []


def test_a_killed_writer_s_temp_files_are_swept(tmp_path: Path, spool: Spool) -> None:
    dead = subprocess.run(["true"], check=True)  # a process that has exited: its pid is free
    assert dead.returncode == 0
    stale = [tmp_path / "tmp-docpipe-999999999.pack", tmp_path / "tmp-docpipe-999999999.idx"]
    for path in stale:
        path.write_bytes(b"half")
    PackWriter(tmp_path, spool).abort()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seed", range(30))
def test_deltas_give_back_the_target(seed: int) -> None:
    rng = random.Random(seed)
    lines = [bytes(rng.choice(b"abc \n") for _ in range(rng.randint(0, 40))) for _ in range(rng.randint(0, 60))]
    base = b"".join(lines)
    edited = list(lines)
    for _ in range(rng.randint(0, 6)):
        at = rng.randint(0, len(edited))
        kind = rng.random()
        if kind < 0.4:
            edited.insert(at, bytes(rng.choice(b"xyz\n") for _ in range(rng.randint(1, 300))))
        elif kind < 0.7 and edited:
            del edited[min(at, len(edited) - 1)]
        elif edited:
            edited[min(at, len(edited) - 1)] += b"!"
    target = b"".join(edited)
    if seed == 0:
        base, target = b"", b"new\n"
    elif seed == 1:
        target = b""
    elif seed == 2:
        base, target = b"y" * 70_000, b"y" * 200_000  # copies longer than one instruction can say
    delta = make_delta(base, target)
    assert delta is not None and apply_delta(base, delta) == target


def test_a_small_edit_makes_a_small_delta() -> None:
    paragraphs = [f"paragraph {n} ".encode() * 20 + b"\n\n" for n in range(40)]
    base = b"".join(paragraphs)
    paragraphs[3] = b"reworded\n\n"
    paragraphs[30] = b"and this one\n\n"
    target = b"".join(paragraphs) + b"a new ending\n"
    delta = make_delta(base, target)
    # Three copies, two inserts: the new words and a few bytes per instruction, not the text.
    assert delta is not None and apply_delta(base, delta) == target and len(delta) < 80
    assert make_delta(base, target, limit=len(delta)) == delta and make_delta(base, target, limit=len(delta) - 1) is None


def test_a_rewritten_text_is_given_up_early() -> None:
    """A revision that shares no line with the one before makes no delta: not worth one."""
    base = b"".join(b"line %d of the first text, long enough\n" % n for n in range(300))
    target = b"".join(b"row %d of another text, long enough too\n" % n for n in range(300))
    assert make_delta(base, target, limit=len(target) // 2) is None
    delta = make_delta(base, target)
    assert delta is not None and apply_delta(base, delta) == target


def test_offsets_past_2_gib_go_to_the_large_offset_table() -> None:
    entries = [(bytes([1]) + b"\0" * 19, 7, 12), (bytes([2]) + b"\0" * 19, 8, (1 << 31) + 5)]
    fanout = [0] * 256
    fanout[1] = fanout[2] = 1
    idx = b"".join(_index(lambda: iter(entries), fanout, b"\x11" * 20))
    n = 2
    body = idx[8 + 256 * 4:]
    offsets = struct.unpack(">2I", body[n * 20 + n * 4: n * 20 + n * 8])
    assert offsets == (12, 0x80000000)
    (large,) = struct.unpack(">Q", body[n * 28: n * 28 + 8])
    assert large == (1 << 31) + 5
