"""Write git objects as one pack file with its index (pack format v2, index v2), without deltas.

Why not libgit2's packbuilder: it searches for deltas and then re-reads the whole pack through an
indexer to make the .idx, which was half of a replay's time. A replay's objects are small and
written once; git repacks them with deltas whenever it gcs. The format is git's documented one
(Documentation/gitformat-pack.txt) and `git fsck --strict` checks what this writes in the tests.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path

# Objects are compressed fast: the pack is rewritten with deltas by git's own gc later.
_LEVEL = 1
_LARGE_OFFSET = 0x80000000


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


def write_pack(pack_dir: Path, objects: Iterable[tuple[bytes, int, bytes]], count: int | None = None) -> str | None:
    """Write (20-byte object id, git type number, raw content) as pack-<sha>.pack/.idx in
    pack_dir; returns the pack's name, or None when there was nothing to write.

    Given `count` (how many objects `objects` yields), each object is compressed and written as
    it comes, so memory holds one object, not the pack; without it the objects are listed first.
    The .idx is renamed into place last, so a reader never sees an index without its pack."""
    if count is None:
        listed = list(objects)
        objects, count = listed, len(listed)
    if not count:
        return None
    pack_dir.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[bytes, int, int]] = []  # (oid, crc32, offset)
    sha = hashlib.sha1()
    tmp_pack = pack_dir / f"tmp-docpipe-{os.getpid()}.pack"
    tmp_idx = pack_dir / f"tmp-docpipe-{os.getpid()}.idx"
    try:
        with open(tmp_pack, "wb") as fh:
            # The header carries the object count; the trailer is the SHA-1 of everything before it.
            header = b"PACK" + struct.pack(">II", 2, count)
            sha.update(header)
            fh.write(header)
            offset = len(header)
            for oid, kind, data in objects:
                record = _object_header(kind, len(data)) + zlib.compress(data, _LEVEL)
                entries.append((oid, zlib.crc32(record), offset))
                sha.update(record)
                fh.write(record)
                offset += len(record)
            if len(entries) != count:
                raise ValueError(f"write_pack: told {count} objects, given {len(entries)}")
            pack_sum = sha.digest()
            fh.write(pack_sum)
            fh.flush()
            os.fsync(fh.fileno())
        name = f"pack-{pack_sum.hex()}"
        with open(tmp_idx, "wb") as fh:
            fh.write(_index(entries, pack_sum))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp_pack, pack_dir / f"{name}.pack")
        os.replace(tmp_idx, pack_dir / f"{name}.idx")
    except BaseException:  # a full disk or a kill: leave no half-written temp files behind
        tmp_pack.unlink(missing_ok=True)
        tmp_idx.unlink(missing_ok=True)
        raise
    return name


def _index(entries: list[tuple[bytes, int, int]], pack_sum: bytes) -> bytes:
    entries = sorted(entries)
    fanout = [0] * 256
    for oid, _, _ in entries:
        fanout[oid[0]] += 1
    total = 0
    for i in range(256):
        total += fanout[i]
        fanout[i] = total
    small: list[int] = []
    large: list[int] = []
    for _, _, off in entries:
        if off < _LARGE_OFFSET:
            small.append(off)
        else:
            small.append(_LARGE_OFFSET | len(large))
            large.append(off)
    parts = [
        b"\377tOc", struct.pack(">I", 2), struct.pack(">256I", *fanout),
        b"".join(oid for oid, _, _ in entries),
        struct.pack(f">{len(entries)}I", *(crc for _, crc, _ in entries)),
        struct.pack(f">{len(small)}I", *small),
        struct.pack(f">{len(large)}Q", *large),
        pack_sum,
    ]
    body = b"".join(parts)
    return body + hashlib.sha1(body).digest()
