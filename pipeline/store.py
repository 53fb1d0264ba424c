"""The content-addressed store (ARCHITECTURE.md, Contract 1): `WORKDIR/store`.

Blobs are immutable and named by the sha256 of their bytes; per-doc metadata and folder.json are
JSON written in one canonical form. Every write is atomic (temp file in the same directory, fsync,
rename, fsync the directory), so a process killed at any instant leaves either the old file or the
new one, never a torn one. Writers put blobs first and a doc's JSON last, so a doc JSON never names
a blob that is not on disk.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import BadInput, DocpipeError
from pipeline.hashing import sha256_hex, sha256_parts, tree_digest

# Temp files carry this prefix so a run can sweep the ones a killed run left behind.
TMP_PREFIX = ".tmp-"
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Drive ids are URL-safe base64-ish; anything else must never become a path.
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def canonical_json(obj: Any) -> bytes:
    """The one byte form of every JSON file in the store."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return sha256_hex(data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` so that readers see the old or the new content, never a mix.
    `mode` 0o600 for secrets: the file is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def valid_file_id(file_id: object) -> bool:
    """The one doc-id rule of the store (pull, replay and every reader): a Drive id, never a path."""
    return isinstance(file_id, str) and bool(_ID_RE.match(file_id))


class Snapshot:
    """What replay needs of a store: folder.json, the doc ids, and each doc read when asked.

    Docs are read one at a time and only the last few are kept, so memory holds what replay
    keeps of each doc plus a few whole docs, not the whole folder (issue #12). A doc read again
    must be the file read the first time: a pull writing the store meanwhile is refused, not mixed in."""

    KEEP = 32  # whole docs kept: replay rereads a doc for each of its comment events

    def __init__(self, store: Store, folder: dict[str, Any], ids: list[str]) -> None:
        self.store, self.folder, self.ids = store, folder, ids
        self._kept: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._stamps: dict[str, tuple[int, int, int]] = {}

    def docs(self) -> Iterator[dict[str, Any]]:
        """Every doc, in fileId order, each read from disk as it is reached and not kept."""
        for file_id in self.ids:
            doc = self._read(file_id)
            if doc is not None:
                yield doc

    def doc(self, file_id: str) -> dict[str, Any]:
        """One doc that docs() yielded, from the last few kept or read again."""
        doc = self._kept.get(file_id)
        if doc is not None:
            self._kept.move_to_end(file_id)
            return doc
        doc = self._read(file_id)
        if doc is None:
            raise DocpipeError(f"store: docs/{file_id}.json went missing during this replay (a pull running?); "
                               "run docpipe replay again")
        self._kept[file_id] = doc
        if len(self._kept) > self.KEEP:
            self._kept.popitem(last=False)
        return doc

    def _read(self, file_id: str) -> dict[str, Any] | None:
        path = self.store.doc_path(file_id)
        try:
            st = path.stat()
        except FileNotFoundError:  # removed after listing: only a concurrent pull does that
            return None
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._stamps.setdefault(file_id, stamp) != stamp:
            raise DocpipeError(f"store: docs/{file_id}.json changed during this replay (a pull running?); "
                               "run docpipe replay again")
        doc = self.store.read_doc(file_id)
        if doc is None:
            return None
        if doc.get("id") != file_id:
            raise BadInput(f"store: docs/{file_id}.json holds another doc; remove it and pull again")
        return doc

    def blob_path(self, digest: str) -> Path:
        return self.store.blob_path(digest)

    def read_blob(self, digest: str, where: str) -> bytes:
        """A blob a doc names; `where` says which doc and revision for the error."""
        if not isinstance(digest, str) or not _SHA_RE.match(digest):
            raise BadInput(f"store: {where} names an invalid blob")
        try:
            return self.store.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise DocpipeError(f"store is incomplete: blob {digest[:12]} of {where} is missing; "
                               "run docpipe pull") from None


@dataclass(frozen=True)
class Store:
    """A store rooted at `root` (normally WORKDIR/store)."""

    root: Path

    @classmethod
    def at(cls, workdir: Path) -> Store:
        return cls(Path(workdir) / "store")

    # ------------------------------------------------------------- blobs
    def blob_path(self, digest: str) -> Path:
        if not _SHA_RE.match(digest):
            raise DocpipeError(f"store: {digest!r} is not a sha256 digest")
        return self.root / "blobs" / digest[:2] / digest

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def put_blob(self, data: bytes) -> str:
        """Store `data` (once) and return its sha256."""
        digest = sha256(data)
        path = self.blob_path(digest)
        if not path.is_file():
            atomic_write(path, data)
        return digest

    def read_blob(self, digest: str) -> bytes:
        try:
            return self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise DocpipeError(f"store {self.root}: blob {digest} is missing") from None

    # ------------------------------------------------------------- docs
    def doc_path(self, file_id: str) -> Path:
        if not valid_file_id(file_id):
            raise BadInput(f"store: {file_id!r} is not a Drive file id")
        return self.root / "docs" / f"{file_id}.json"

    def read_doc(self, file_id: str) -> dict[str, Any] | None:
        return self._read_json(self.doc_path(file_id))

    def write_doc(self, doc: dict[str, Any]) -> None:
        atomic_write(self.doc_path(doc["id"]), canonical_json(doc))

    def doc_ids(self) -> list[str]:
        """Every doc in the store; a docs/ file not named by a valid id is refused, not skipped."""
        folder = self.root / "docs"
        if not folder.is_dir():
            return []
        # Sorted by file name (not id) as replay always did, so event and manifest order stay put.
        names = sorted(p.name for p in folder.glob("*.json") if not p.name.startswith(TMP_PREFIX))
        ids = [name[: -len(".json")] for name in names]
        for file_id in ids:
            if not valid_file_id(file_id):
                raise BadInput(f"store: docs/{file_id}.json is not named by a Drive file id; remove it and pull again")
        return ids

    # ------------------------------------------------------------- whole-store views
    def snapshot(self) -> Snapshot:
        """folder.json and the doc ids; each doc is read (and checked to be the doc its file name
        says) when the snapshot reaches it."""
        folder = self.read_folder()
        if folder is None:
            raise BadInput(f"no store at {self.root} (folder.json missing); run docpipe pull first")
        return Snapshot(self, folder, self.doc_ids())

    def digest(self) -> str:
        """Changes whenever a pull changed anything (blobs are only ever added with a doc's JSON)."""
        folder = self.folder_path
        return sha256_parts([tree_digest(self.root / "docs").encode(),
                             folder.read_bytes() if folder.exists() else b""])

    # ------------------------------------------------------------- folder
    @property
    def folder_path(self) -> Path:
        return self.root / "folder.json"

    def read_folder(self) -> dict[str, Any] | None:
        return self._read_json(self.folder_path)

    def write_folder(self, folder: dict[str, Any]) -> None:
        atomic_write(self.folder_path, canonical_json(folder))

    # ------------------------------------------------------------- upkeep
    def sweep_temp_files(self) -> int:
        """Remove temp files a killed writer left behind; call only while holding the pull lock."""
        removed = 0
        if not self.root.is_dir():
            return 0
        for path in self.root.rglob(f"{TMP_PREFIX}*"):
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:
                pass
        return removed

    def _read_json(self, path: Path) -> dict[str, Any] | None:
        """The one reader of the store's JSON: every stage refuses a corrupt file with these words."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            loaded = json.loads(data)
        except ValueError:  # UnicodeDecodeError is a ValueError too
            loaded = None
        if not isinstance(loaded, dict):
            rel = path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) else str(path)
            raise BadInput(f"store file {rel} in {self.root} is not valid JSON (one object); remove it and pull again")
        return loaded
