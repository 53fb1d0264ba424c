"""Git objects streamed into one pack file per replay, each a delta against the previous version
of the same path when that is smaller, as `git fast-import` writes them (issue #23).

A replay's history is thousands of versions of the same few hundred paths: a doc's Markdown
grows by a paragraph, a folder's tree changes one entry. Packed whole, every version costs its
full compressed size and the archive grows to several times what `git gc` makes of it; as a
delta against the version before, a version costs about what changed. The caller names the base
(it knows which object was the path's previous version, see pipeline.replay.objects); this
module writes it in git's pack format (Documentation/gitformat-pack.txt: pack v2, OFS_DELTA
entries, index v2) and computes the delta: the common head and tail, then the lines of the
middle found in the base's middle. `git fsck --strict` and `git verify-pack` check what it
writes, in the tests.

Memory holds no list of objects: each is compressed and written as it comes, and its index
entry (id, offset, CRC) goes to the replay's spool (SQLite), which gives them back sorted by id
to write the .idx at the end. The pack's header counts its objects and its trailer hashes the
whole file, so both are written last, then .pack and .idx are renamed into place (the .idx
last, so a reader never sees an index without its pack).
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

COMMIT, TREE, BLOB = 1, 2, 3
_OFS_DELTA = 6
# zlib's fastest level: most objects are deltas, where the level changes little; a whole 12 KB
# Markdown compresses 3x faster than at git's default (6) into 10 % more bytes, and on the
# 1,000-doc tree the pack grows by 1 %.
_LEVEL = 1
_LARGE_OFFSET = 0x80000000
# A chain of deltas is read back one step at a time: git's own limit (pack.depth).
MAX_DEPTH = 50
_COPY_MAX = 0x10000      # the largest copy every pack reader accepts in one instruction
_MIN_COPY = 8            # shorter matches cost as much as inserting their bytes
_TMP_PREFIX = "tmp-docpipe-"


@dataclass(frozen=True)
class Stored:
    """Where an object is in the pack being written: its offset and how many deltas deep."""
    offset: int
    depth: int


class Index(Protocol):
    """Where the pack writer keeps its index entries (pipeline.replay.spool.Spool)."""

    def pack_entry(self, oid: bytes) -> Stored | None: ...

    def add_pack_entry(self, oid: bytes, offset: int, crc: int, depth: int) -> bool: ...

    def pack_entries(self) -> Iterator[tuple[bytes, int, int]]: ...


# ---------------------------------------------------------------- deltas

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _common_prefix(a: bytes, b: bytes, limit: int) -> int:
    """Length of the common head of a and b (at most `limit`). The two heads read as big-endian
    integers and XORed have their first difference at the top set bit: three passes in C, where
    a Python loop over bytes (or halving slices) cost more than the rest of the delta."""
    x = int.from_bytes(a[:limit], "big") ^ int.from_bytes(b[:limit], "big")
    return limit - (x.bit_length() + 7) // 8


def _common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """Length of the common tail of a and b (at most `limit`), the same way, little-endian."""
    if not limit:
        return 0
    x = int.from_bytes(a[len(a) - limit:], "little") ^ int.from_bytes(b[len(b) - limit:], "little")
    return limit - (x.bit_length() + 7) // 8


def _copy(out: bytearray, offset: int, size: int) -> None:
    while size:
        n = min(size, _COPY_MAX)
        op, args = 0x80, bytearray()
        for i in range(4):
            if byte := (offset >> (8 * i)) & 0xFF:
                op |= 1 << i
                args.append(byte)
        encoded = 0 if n == _COPY_MAX else n  # a size of 0 means 0x10000
        for i in range(3):
            if byte := (encoded >> (8 * i)) & 0xFF:
                op |= 0x10 << i
                args.append(byte)
        out.append(op)
        out += args
        offset += n
        size -= n


def _insert(out: bytearray, data: bytes) -> None:
    for i in range(0, len(data), 127):
        chunk = data[i: i + 127]
        out.append(len(chunk))
        out += chunk


def _middle_ops(base: bytes, start: int, target: bytes) -> list[tuple[int, int] | bytes]:
    """Copies (offset in the whole base, length) and inserts (bytes) that make `target` from
    `base` (which sits at `start` in the whole base), matching whole lines: a doc edited in two
    places keeps the unchanged paragraphs between them."""
    lines = base.splitlines(keepends=True)
    first: dict[bytes, int] = {}  # a line -> the number of its first occurrence
    offsets = []
    at = start
    for k, line in enumerate(lines):
        offsets.append(at)
        if len(line) >= _MIN_COPY:
            first.setdefault(line, k)
        at += len(line)
    ops: list[tuple[int, int] | bytes] = []
    pending = bytearray()
    new = target.splitlines(keepends=True)
    i = 0
    while i < len(new):
        found = first.get(new[i])
        if found is None:
            pending += new[i]
            i += 1
            continue
        n = found
        offset, size = offsets[n], 0
        while i < len(new) and n < len(lines) and new[i] == lines[n]:
            size += len(new[i])
            i += 1
            n += 1
        if pending:
            ops.append(bytes(pending))
            pending.clear()
        ops.append((offset, size))
    if pending:
        ops.append(bytes(pending))
    return ops


def _shares_lines(base: bytes, target: bytes) -> bool:
    """Whether some of `target`'s longer lines, sampled, are in `base`: a revision rewritten
    throughout shares none, and looking for each of its lines would be time lost."""
    lines = [line for line in target.split(b"\n") if len(line) >= 16]
    step = max(1, len(lines) // 8)
    return any(line in base for line in lines[::step][:8])


def make_delta(base: bytes, target: bytes, limit: int | None = None) -> bytes | None:
    """A git delta (Documentation/gitformat-pack.txt, "Deltified representation") that turns
    `base` into `target`; None when it would be longer than `limit` (then it is not worth it)."""
    out = bytearray(_varint(len(base)) + _varint(len(target)))
    shortest = min(len(base), len(target))
    head = _common_prefix(base, target, shortest)
    tail = _common_suffix(base, target, shortest - head)
    if head:
        _copy(out, 0, head)
    middle = target[head: len(target) - tail]
    rest = base[head: len(base) - tail]
    if limit is not None and len(middle) > limit and not _shares_lines(rest, middle):
        return None
    if middle:
        for op in _middle_ops(rest, head, middle):
            if isinstance(op, bytes):
                _insert(out, op)
            else:
                _copy(out, *op)
            if limit is not None and len(out) > limit:
                return None
    if tail:
        _copy(out, len(base) - tail, tail)
    return bytes(out) if limit is None or len(out) <= limit else None


def apply_delta(base: bytes, delta: bytes) -> bytes:
    """`target` back from `base` and `make_delta(base, target)` (to check the writer; git and
    libgit2 read the packs themselves)."""
    def varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = delta[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value, pos
    size, pos = varint(0)
    if size != len(base):
        raise ValueError("delta made for another base")
    size, pos = varint(pos)
    out = bytearray()
    while pos < len(delta):
        op = delta[pos]
        pos += 1
        if op & 0x80:
            offset = length = 0
            for i in range(4):
                if op & (1 << i):
                    offset |= delta[pos] << (8 * i)
                    pos += 1
            for i in range(3):
                if op & (0x10 << i):
                    length |= delta[pos] << (8 * i)
                    pos += 1
            out += base[offset: offset + (length or _COPY_MAX)]
        elif op:
            out += delta[pos: pos + op]
            pos += op
        else:
            raise ValueError("delta has a reserved instruction")
    if len(out) != size:
        raise ValueError("delta gives the wrong size")
    return bytes(out)


# ---------------------------------------------------------------- the pack

def _deflate(data: bytes) -> bytes:
    """zlib at git's level, its window and hash table sized to the data: most objects are deltas
    of a few dozen bytes, and setting up zlib's full 256 KB state costs ten times compressing
    them. Every inflater reads a stream with a smaller window (its header says which)."""
    wbits = max(9, min(15, len(data).bit_length() + 1))
    z = zlib.compressobj(_LEVEL, zlib.DEFLATED, wbits, max(1, wbits - 7))
    return z.compress(data) + z.flush()


def _object_header(kind: int, size: int) -> bytes:
    out = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        out.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    out.append(byte)
    return bytes(out)


def _ofs(distance: int) -> bytes:
    """The base's distance back, as OFS_DELTA spells it (each continuation adds one)."""
    out = [distance & 0x7F]
    distance >>= 7
    while distance:
        distance -= 1
        out.append(0x80 | (distance & 0x7F))
        distance >>= 7
    return bytes(reversed(out))


def object_id(kind: int, data: bytes) -> bytes:
    """The 20-byte id git gives an object of this type and content."""
    name = {COMMIT: b"commit", TREE: b"tree", BLOB: b"blob"}[kind]
    return hashlib.sha1(b"%s %d\0" % (name, len(data)) + data).digest()


class PackWriter:
    """One pack being written into `pack_dir` (objects/pack of a repository)."""

    def __init__(self, pack_dir: Path, index: Index) -> None:
        self.pack_dir, self.index = pack_dir, index
        self.tmp_pack = pack_dir / f"{_TMP_PREFIX}{os.getpid()}.pack"
        self.tmp_idx = pack_dir / f"{_TMP_PREFIX}{os.getpid()}.idx"
        pack_dir.mkdir(parents=True, exist_ok=True)
        sweep(pack_dir)
        self.fh = open(self.tmp_pack, "wb")  # closed by close() or abort()
        self.fh.write(b"PACK" + struct.pack(">II", 2, 0))  # the count is filled in at close()
        self.offset = 12
        self.count = 0
        self.fanout = [0] * 256
        self.deltas = 0

    def add(self, oid: bytes, kind: int, data: bytes,
            base: tuple[Stored, bytes] | None = None) -> Stored:
        """Write one object (unless this pack has it already), as a delta against `base` (an
        object of this pack and its content) when that is smaller; returns where it is."""
        record = None
        depth = 0
        if base is not None and base[0].depth < MAX_DEPTH:
            # git's own bar: a delta is kept when it is under half the object.
            delta = make_delta(base[1], data, limit=len(data) // 2 - 1)
            if delta is not None:
                depth = base[0].depth + 1
                record = (_object_header(_OFS_DELTA, len(delta)) + _ofs(self.offset - base[0].offset)
                          + _deflate(delta))
        if record is None:
            record = _object_header(kind, len(data)) + _deflate(data)
        # One statement for the usual case, a new object; one written before is not written again.
        if not self.index.add_pack_entry(oid, self.offset, zlib.crc32(record), depth):
            known = self.index.pack_entry(oid)
            assert known is not None
            return known
        stored = Stored(self.offset, depth)
        self.fh.write(record)
        self.fanout[oid[0]] += 1
        self.offset += len(record)
        self.count += 1
        self.deltas += depth > 0
        return stored

    def close(self) -> str | None:
        """Finish the pack and its index and put them in place; returns the pack's name, or
        None when nothing was written."""
        self.fh.flush()
        if not self.count:
            self.abort()
            return None
        self.fh.seek(8)
        self.fh.write(struct.pack(">I", self.count))
        self.fh.close()
        sha = hashlib.sha1()
        with open(self.tmp_pack, "rb") as fh:
            while chunk := fh.read(1 << 16):
                sha.update(chunk)
        pack_sum = sha.digest()
        try:
            with open(self.tmp_pack, "ab") as fh:
                fh.write(pack_sum)
                fh.flush()
                os.fsync(fh.fileno())
            with open(self.tmp_idx, "wb") as fh:
                for part in _index(self.index.pack_entries, self.fanout, pack_sum):
                    fh.write(part)
                fh.flush()
                os.fsync(fh.fileno())
            name = f"pack-{pack_sum.hex()}"
            os.replace(self.tmp_pack, self.pack_dir / f"{name}.pack")
            os.replace(self.tmp_idx, self.pack_dir / f"{name}.idx")
        except BaseException:
            self.abort()
            raise
        return name

    def abort(self) -> None:
        """Drop the unfinished pack (after a failure): nothing names its objects yet."""
        self.fh.close()
        self.tmp_pack.unlink(missing_ok=True)
        self.tmp_idx.unlink(missing_ok=True)


def sweep(pack_dir: Path) -> None:
    """Remove what a killed replay left half-written (its process is gone; a replay running
    beside this one keeps its own)."""
    for path in pack_dir.glob(f"{_TMP_PREFIX}*"):
        pid = path.stem[len(_TMP_PREFIX):]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except (ProcessLookupError, OverflowError):  # none such (or a number no pid can be)
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _index(entries: Callable[[], Iterable[tuple[bytes, int, int]]], fanout: list[int],
           pack_sum: bytes) -> Iterator[bytes]:
    """The .idx (v2) of a pack, in parts: `entries()` gives (oid, crc, offset) sorted by oid,
    each time it is called (three times: ids, CRCs, offsets), so no list of them is needed."""
    sha = hashlib.sha1()

    def column(pick: Callable[[tuple[bytes, int, int]], bytes]) -> Iterator[bytes]:
        part = bytearray()
        for entry in entries():
            part += pick(entry)
            if len(part) >= 1 << 16:
                sha.update(part)
                yield bytes(part)
                part.clear()
        sha.update(part)
        yield bytes(part)

    total, cumulative = 0, []
    for n in fanout:
        total += n
        cumulative.append(total)
    head = b"\377tOc" + struct.pack(">I", 2) + struct.pack(">256I", *cumulative)
    sha.update(head)
    yield head
    yield from column(lambda e: e[0])
    yield from column(lambda e: struct.pack(">I", e[1]))
    large: list[int] = []

    def offset(entry: tuple[bytes, int, int]) -> bytes:
        if entry[2] < _LARGE_OFFSET:
            return struct.pack(">I", entry[2])
        large.append(entry[2])
        return struct.pack(">I", _LARGE_OFFSET | (len(large) - 1))

    yield from column(offset)
    tail = struct.pack(f">{len(large)}Q", *large) + pack_sum
    sha.update(tail)
    yield tail
    yield sha.digest()
