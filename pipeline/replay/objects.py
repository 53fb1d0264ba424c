"""Git objects in bulk: an in-memory tree and a buffer that writes new objects as one pack."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2

from pipeline.errors import DocpipeError

BLOB, TREE = pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.TREE


# ---------------------------------------------------------------- writing objects in bulk

class ObjectBuffer:
    """Keeps new git objects in libgit2's in-memory ODB backend (mempack) and writes them as
    one pack (pipeline.replay.packwriter), instead of one loose file per object.

    A replay makes ~5 objects per commit; as loose files that is ~5 file creations per commit,
    which was most of its time. pygit2 does not wrap `git_mempack_new`, so it is reached through
    ctypes on the libgit2 pygit2 itself links; without it, objects are written loose as usual.
    A batch is packed once it reaches BATCH_OBJECTS or BATCH_BYTES, so memory stays bounded.
    The mempack costs about twice its objects' bytes in memory (index, allocations), and a
    thousand docs' history is ~0.5 GB of objects, so batches are small: a pack per 32 MB costs
    a replay little (libgit2 looks an object up in a handful of pack indexes), a larger batch
    costs hundreds of MB of peak memory.
    """

    BATCH_OBJECTS, BATCH_BYTES = 200_000, 32 << 20

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.oids: list[pygit2.Oid] = []
        self.bytes = 0
        self._lib: Any = None
        self._odb: Any = None
        self._backend: Any = None
        import ctypes

        self._ctypes = ctypes
        try:
            lib = ctypes.CDLL(pygit2._pygit2.__file__)  # its dependencies' symbols (libgit2) resolve too
            for name in ("git_repository_odb", "git_mempack_new", "git_odb_add_backend", "git_mempack_reset", "git_odb_free",
                         "git_odb_read", "git_odb_object_type"):
                getattr(lib, name).restype = ctypes.c_int
            lib.git_odb_object_data.restype = ctypes.c_void_p
            lib.git_odb_object_size.restype = ctypes.c_size_t
            lib.git_odb_object_free.restype = None
            odb, backend = ctypes.c_void_p(), ctypes.c_void_p()
            if lib.git_repository_odb(ctypes.byref(odb), ctypes.c_void_p.from_buffer_copy(repo._pointer)) != 0:
                return
            # The highest-priority backend gets every write.
            if lib.git_mempack_new(ctypes.byref(backend)) != 0 or \
                    lib.git_odb_add_backend(odb, backend, ctypes.c_int(1000)) != 0:
                lib.git_odb_free(odb)
                return
            self._lib, self._odb, self._backend = lib, odb, backend
        except (OSError, AttributeError, TypeError, ValueError):
            self._lib = None

    def added(self, oid: pygit2.Oid, size: int = 0) -> pygit2.Oid:
        if self._lib is not None:
            self.oids.append(oid)
            self.bytes += size
            if len(self.oids) >= self.BATCH_OBJECTS or self.bytes >= self.BATCH_BYTES:
                self.flush()
        return oid

    def flush(self) -> None:
        """Write the buffered objects as one pack (with its index) and empty the buffer."""
        if self._lib is None or not self.oids:
            return
        from pipeline.replay.packwriter import write_pack

        unique = list(dict.fromkeys(self.oids))  # an object written twice is packed once

        def objects() -> Iterator[tuple[bytes, int, bytes]]:
            for oid in unique:
                kind, data = self._read(oid)
                yield oid.raw, kind, data

        # git_odb_read keeps every commit and tree it reads in the repository's object cache (up to
        # 256 MB), which would keep the whole history in memory by the end of a large replay; these
        # objects are read once, here, so caching is off while they are.
        pygit2.settings.enable_caching(False)
        try:
            write_pack(Path(self.repo.path) / "objects" / "pack", objects(), len(unique))
        finally:
            pygit2.settings.enable_caching(True)
        self._lib.git_mempack_reset(self._backend)
        self.oids, self.bytes = [], 0

    def _read(self, oid: pygit2.Oid) -> tuple[int, bytes]:
        """(type, raw content) from the ODB that holds the mempack (pygit2's readers do not
        reach it)."""
        ctypes, lib = self._ctypes, self._lib
        obj = ctypes.c_void_p()
        if lib.git_odb_read(ctypes.byref(obj), self._odb, oid.raw) != 0:  # bytes pass as the git_oid's 20 bytes
            raise DocpipeError(f"replay lost object {oid} before writing it; nothing was changed")
        try:
            return lib.git_odb_object_type(obj), ctypes.string_at(lib.git_odb_object_data(obj), lib.git_odb_object_size(obj))
        finally:
            lib.git_odb_object_free(obj)

    def close(self, *, keep: bool = True) -> None:
        """Write what is buffered (or drop it, after a failure) and release the ODB reference.

        libgit2 cannot remove a backend, so the (now empty) mempack stays the write target of
        this Repository object: replay drops the object afterwards and never writes through it."""
        if self._lib is None:
            return
        try:
            if keep:
                self.flush()
        finally:
            self._lib.git_mempack_reset(self._backend)
            self._lib.git_odb_free(self._odb)
            self._lib = None


# ---------------------------------------------------------------- the in-memory tree

class Tree:
    """A directory of the archive, loaded lazily from git; only changed directories are rewritten."""

    def __init__(self, repo: pygit2.Repository, oid: pygit2.Oid | None = None,
                 sink: ObjectBuffer | None = None) -> None:
        self.repo, self.oid, self.sink = repo, oid, sink
        self._entries: dict[str, tuple[pygit2.Oid, int] | Tree] | None = None if oid else {}

    @property
    def entries(self) -> dict[str, tuple[pygit2.Oid, int] | Tree]:
        if self._entries is None:
            self._entries = {}
            assert self.oid is not None  # entries start empty ({}) for a new tree
            for entry in self.repo[self.oid].peel(pygit2.Tree):
                name = str(entry.name)  # entries of a stored tree always have a name
                if entry.filemode == TREE:
                    self._entries[name] = Tree(self.repo, entry.id, self.sink)
                else:
                    self._entries[name] = (entry.id, entry.filemode)
        return self._entries

    def _walk(self, parts: list[str], create: bool) -> Tree | None:
        node: Tree = self
        for part in parts:
            child = node.entries.get(part)
            if not isinstance(child, Tree):
                if not create:
                    return None
                child = node.entries[part] = Tree(self.repo, None, self.sink)
            node = child
        return node

    def get(self, path: str) -> tuple[pygit2.Oid, int] | Tree | None:
        *dirs, name = path.split("/")
        parent = self._walk(dirs, create=False)
        return parent.entries.get(name) if parent else None

    def set(self, path: str, oid: pygit2.Oid, mode: int = BLOB) -> None:
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

    def write(self) -> pygit2.Oid | None:
        """The tree's oid (None when empty), writing the changed subtrees."""
        if self.oid is not None:
            return self.oid
        builder = self.repo.TreeBuilder()
        for name in list(self.entries):
            value = self.entries[name]
            if isinstance(value, Tree):
                sub = value.write()
                if sub is None:
                    del self.entries[name]
                    continue
                builder.insert(name, sub, TREE)
            else:
                builder.insert(name, value[0], value[1])
        if not len(builder):
            return None
        self.oid = builder.write()
        if self.sink is not None:
            # A tree entry is its mode, name and 20-byte id: about this many bytes.
            self.sink.added(self.oid, 48 * len(builder))
        return self.oid
