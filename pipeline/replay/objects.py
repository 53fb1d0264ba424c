"""Git objects made by replay: their bytes and ids computed here, streamed into one pack per replay
(pipeline.replay.packwriter), each version of a path a delta against the one before.

Why not pygit2's create_blob / TreeBuilder / create_commit: libgit2 writes each object loose (a
file per object, most of a replay's time) or, through its in-memory backend, keeps them all in
memory until they are packed; and it does not tell which object was the previous version of
the same path, which is what makes a small delta. The formats are git's own (a blob is its
bytes; a tree is `<mode> <name>\\0<id>` entries in git's name order; a commit is its header
lines, a blank line and the message), so the ids are the ones libgit2 gives the same objects: the
tests check both against libgit2 and `git fsck --strict`. Objects of the archive before this
replay are read through pygit2.
"""

from __future__ import annotations

from pathlib import Path

import pygit2

from pipeline.replay.packwriter import BLOB, COMMIT, TREE, PackWriter, Stored, object_id
from pipeline.replay.spool import Spool

BLOB_MODE, TREE_MODE = int(pygit2.enums.FileMode.BLOB), int(pygit2.enums.FileMode.TREE)
Entry = tuple[bytes, int]  # (20-byte object id, file mode)


def _signature(sig: pygit2.Signature) -> bytes:
    # libgit2 trims and checks the name and email (Signature's constructor); they are written
    # as it would write them.
    sign = "-" if sig.offset < 0 else "+"
    hours, minutes = divmod(abs(sig.offset), 60)
    return sig.raw_name + b" <" + sig.raw_email + f"> {sig.time} {sign}{hours:02d}{minutes:02d}".encode()


class Objects:
    """Makes this replay's objects and writes each once into its pack (opened with the first).

    `key` names a path whose versions follow one another (a doc's Markdown, its comments file):
    each version is written as a delta against the one before, whose bytes the spool keeps on
    disk, so memory does not hold every doc's last version."""

    def __init__(self, repo: pygit2.Repository, spool: Spool) -> None:
        self.repo, self.spool = repo, spool
        self.pack: PackWriter | None = None

    def add(self, oid: bytes, kind: int, data: bytes, base: tuple[Stored, bytes] | None = None) -> Stored:
        if self.pack is None:
            self.pack = PackWriter(Path(self.repo.path) / "objects" / "pack", self.spool)
        return self.pack.add(oid, kind, data, base)

    def blob(self, data: bytes, key: str | None = None) -> bytes:
        oid = object_id(BLOB, data)
        stored = self.add(oid, BLOB, data, self.spool.base(key) if key else None)
        if key:
            self.spool.set_base(key, stored, data)
        return oid

    def commit(self, tree: bytes, parent: bytes | None, author: pygit2.Signature, committer: pygit2.Signature,
               message: str) -> bytes:
        head = b"tree " + tree.hex().encode() + b"\n"
        if parent is not None:
            head += b"parent " + parent.hex().encode() + b"\n"
        data = (head + b"author " + _signature(author) + b"\ncommitter " + _signature(committer) + b"\n\n"
                + message.encode("utf-8"))
        oid = object_id(COMMIT, data)
        self.add(oid, COMMIT, data)
        return oid

    def close(self) -> None:
        """Finish the pack: its objects reach disk before main may point at them."""
        if self.pack is not None:
            self.pack.close()
            self.pack = None

    def abort(self) -> None:
        if self.pack is not None:
            self.pack.abort()
            self.pack = None


# ---------------------------------------------------------------- the in-memory tree

class Tree:
    """A directory of the archive, loaded lazily from git; only changed directories are rewritten,
    each as a delta against its own previous version in this replay's pack."""

    __slots__ = ("repo", "oid", "objects", "_entries", "_raw", "_stored")

    def __init__(self, repo: pygit2.Repository, oid: bytes | None, objects: Objects) -> None:
        self.repo, self.oid, self.objects = repo, oid, objects
        self._entries: dict[str, Entry | Tree] | None = None if oid else {}
        self._raw: bytes | None = None          # the bytes last written into this replay's pack
        self._stored: Stored | None = None      # and where

    @property
    def entries(self) -> dict[str, Entry | Tree]:
        if self._entries is None:
            self._entries = {}
            assert self.oid is not None  # entries start empty ({}) for a new tree
            for entry in self.repo[pygit2.Oid(raw=self.oid)].peel(pygit2.Tree):
                name = str(entry.name)  # entries of a stored tree always have a name
                if entry.filemode == TREE_MODE:
                    self._entries[name] = Tree(self.repo, entry.id.raw, self.objects)
                else:
                    self._entries[name] = (entry.id.raw, int(entry.filemode))
        return self._entries

    def _walk(self, parts: list[str], create: bool) -> Tree | None:
        node: Tree = self
        for part in parts:
            child = node.entries.get(part)
            if not isinstance(child, Tree):
                if not create:
                    return None
                child = node.entries[part] = Tree(self.repo, None, self.objects)
            node = child
        return node

    def get(self, path: str) -> Entry | Tree | None:
        *dirs, name = path.split("/")
        parent = self._walk(dirs, create=False)
        return parent.entries.get(name) if parent else None

    def set(self, path: str, oid: bytes, mode: int = BLOB_MODE) -> None:
        *dirs, name = path.split("/")
        if self.get(path) == (oid, mode):
            return
        self._dirty(dirs)
        parent = self._walk(dirs, create=True)
        assert parent is not None
        parent.entries[name] = (oid, mode)

    def remove(self, path: str) -> None:
        """Remove a file or a whole directory; empty parents go too (git keeps no empty dirs)."""
        if self.get(path) is None:
            return
        *dirs, name = path.split("/")
        self._dirty(dirs)
        parent = self._walk(dirs, create=False)
        assert parent is not None
        del parent.entries[name]

    def _dirty(self, dirs: list[str]) -> None:
        node: Tree | None = self
        self.oid = None
        for part in dirs:
            child = node.entries.get(part) if node else None
            if not isinstance(child, Tree):
                return
            child.oid = None
            node = child

    def write(self) -> bytes | None:
        """The tree's id (None when empty), writing the changed subtrees."""
        if self.oid is not None:
            return self.oid
        records: list[tuple[bytes, bytes]] = []
        for name, value in list(self.entries.items()):
            raw_name = name.encode("utf-8")
            if isinstance(value, Tree):
                sub = value.write()
                if sub is None:
                    del self.entries[name]
                    continue
                # git orders a directory as if its name ended with "/".
                records.append((raw_name + b"/", b"40000 " + raw_name + b"\0" + sub))
            else:
                records.append((raw_name, b"%o %s\0%s" % (value[1], raw_name, value[0])))
        if not records:
            return None
        records.sort()
        raw = b"".join(record for _, record in records)
        self.oid = object_id(TREE, raw)
        base = (self._stored, self._raw) if self._stored is not None and self._raw is not None else None
        self._stored = self.objects.add(self.oid, TREE, raw, base)
        self._raw = raw
        return self.oid
