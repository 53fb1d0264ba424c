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
    # libgit2 trims and checks the name and email (Signature's constructor); the line is the one
    # its git_signature__writebuf prints, the time as a 32-bit unsigned number included.
    sign = "-" if sig.offset < 0 else "+"
    hours, minutes = divmod(abs(sig.offset), 60)
    when = sig.time & 0xFFFFFFFF
    return sig.raw_name + b" <" + sig.raw_email + f"> {when} {sign}{hours:02d}{minutes:02d}".encode()


class Objects:
    """Makes this replay's objects and writes each once into its pack (opened with the first).

    Each version of a path is written as a delta against the one before: the caller names that
    one and its bytes (it can make a doc's last Markdown again from the conversion cache), or
    the spool keeps its bytes on disk (`keyed_blob`), so memory does not hold every doc's last
    version."""

    def __init__(self, repo: pygit2.Repository, spool: Spool) -> None:
        self.repo, self.spool = repo, spool
        self.pack: PackWriter | None = None

    def add(self, oid: bytes, kind: int, data: bytes, base: tuple[Stored, bytes] | None = None) -> Stored:
        if self.pack is None:
            self.pack = PackWriter(Path(self.repo.path) / "objects" / "pack", self.spool)
        return self.pack.add(oid, kind, data, base)

    def blob(self, data: bytes, base: tuple[Stored, bytes] | None = None) -> tuple[bytes, Stored]:
        """(id, where) of a blob, written as a delta against `base` (the same path's previous
        version in this pack, with its bytes) when that is smaller."""
        oid = object_id(BLOB, data)
        return oid, self.add(oid, BLOB, data, base)

    def keyed_blob(self, data: bytes, key: str) -> bytes:
        """A blob whose previous version (same `key`) the spool keeps on disk, for what cannot
        be made again cheaply (a comments file depends on the events applied so far)."""
        oid, stored = self.blob(data, self.spool.base(key))
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
    each as a delta against its own previous version in this replay's pack.

    A directory keeps its entries' records (`<mode> <name>\0<id>`) in git's order and remakes
    only those of the names changed since it was last written: a commit changes a file or two,
    and remaking every record of every directory on its path cost time with the folder's size."""

    __slots__ = ("repo", "oid", "objects", "_entries", "_raw", "_stored", "_changed", "_order", "_records", "_pos")

    def __init__(self, repo: pygit2.Repository, oid: bytes | None, objects: Objects) -> None:
        self.repo, self.oid, self.objects = repo, oid, objects
        self._entries: dict[str, Entry | Tree] | None = None if oid else {}
        self._raw: bytes | None = None          # the bytes last written into this replay's pack
        self._stored: Stored | None = None      # and where
        self._changed: set[str] = set()         # names whose record is to be remade
        self._order: list[str] | None = None    # names in git's order; None: to sort again
        self._records: list[bytes] = []         # their records, in that order
        self._pos: dict[str, int] = {}          # name -> its place in that order

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
                node._order = None  # a new name, or a file become a directory: sorts elsewhere
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
        parent = self._walk(dirs, create=True)
        assert parent is not None
        if not isinstance(parent.entries.get(name), tuple):
            parent._order = None
        parent.entries[name] = (oid, mode)
        parent._changed.add(name)
        self._dirty(dirs)

    def remove(self, path: str) -> None:
        """Remove a file or a whole directory; empty parents go too (git keeps no empty dirs)."""
        *dirs, name = path.split("/")
        parent = self._walk(dirs, create=False)
        if parent is None or name not in parent.entries:
            return
        del parent.entries[name]
        parent._order = None
        parent._changed.discard(name)
        self._dirty(dirs)

    def _dirty(self, dirs: list[str]) -> None:
        """Mark every directory from here to `dirs` (which exist) as to be written again."""
        node = self
        node.oid = None
        for part in dirs:
            node._changed.add(part)
            child = node.entries[part]
            assert isinstance(child, Tree)
            node = child
            node.oid = None

    def _record(self, name: str) -> bytes:
        value = self.entries[name]
        if isinstance(value, Tree):
            assert value.oid is not None  # written before its parent
            return b"40000 " + name.encode("utf-8") + b"\0" + value.oid
        return b"%o %s\0%s" % (value[1], name.encode("utf-8"), value[0])

    def write(self) -> bytes | None:
        """The tree's id (None when empty), writing the changed subtrees."""
        if self.oid is not None:
            return self.oid
        entries = self.entries
        for name in sorted(self._changed):  # sorted: the pack's order is the same on every run
            value = entries.get(name)
            if isinstance(value, Tree) and value.write() is None:
                del entries[name]
                self._order = None
        if not entries:
            self._changed.clear()
            return None
        if self._order is None:
            # git orders a directory as if its name ended with "/".
            self._order = sorted(entries, key=lambda n: n.encode("utf-8") + (b"/" if isinstance(entries[n], Tree) else b""))
            self._pos = {name: i for i, name in enumerate(self._order)}
            self._records = [self._record(name) for name in self._order]
        else:
            for name in self._changed:
                self._records[self._pos[name]] = self._record(name)
        self._changed.clear()
        raw = b"".join(self._records)
        self.oid = object_id(TREE, raw)
        base = (self._stored, self._raw) if self._stored is not None and self._raw is not None else None
        self._stored = self.objects.add(self.oid, TREE, raw, base)
        self._raw = raw
        return self.oid
