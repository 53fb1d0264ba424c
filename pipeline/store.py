"""The content-addressed store (ARCHITECTURE.md, Contract 1): `WORKDIR/store`.

Blobs are immutable and named by the sha256 of their bytes; per-doc metadata and folder.json are
JSON written in one canonical form. Every write is atomic (temp file in the same directory, fsync,
rename, fsync the directory), so a process killed at any instant leaves either the old file or the
new one, never a torn one. Writers put blobs first and a doc's JSON last, so a doc JSON never names
a blob that is not on disk.
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.atomic import TMP_PREFIX, atomic_write
from pipeline.errors import BadInput, DocpipeError
from pipeline.hashing import sha256_hex, sha256_parts, tree_digest

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Drive ids are URL-safe base64-ish; anything else must never become a path.
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def canonical_json(obj: Any) -> bytes:
    """The one byte form of every JSON file in the store."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return sha256_hex(data)


# ----------------------------------------------------------------------------- a doc's record


@dataclass(frozen=True)
class Image:
    """An image a revision's HTML shows: its exact `src` attribute and the blob holding it."""

    src: str
    blob: str
    mime_type: str

    def to_json(self) -> dict[str, str]:
        return {"src": self.src, "blob": self.blob, "mimeType": self.mime_type}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Image:
        return cls(str(d["src"]), str(d["blob"]), str(d.get("mimeType") or ""))


@dataclass(frozen=True)
class Revision:
    """One revision of a doc: its export HTML's blob and the images that HTML shows."""

    id: str
    modified_time: str
    user: dict[str, str] | None  # lastModifyingUser: displayName, emailAddress, permissionId, as given
    html: str
    images: tuple[Image, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """What a later listing must match for this download to be reused."""
        return self.id, self.modified_time

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "modifiedTime": self.modified_time, "lastModifyingUser": self.user,
                "html": self.html, "images": [i.to_json() for i in self.images]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Revision:
        user = d.get("lastModifyingUser")
        return cls(str(d["id"]), str(d["modifiedTime"]), dict(user) if isinstance(user, dict) else None,
                   str(d["html"]), tuple(Image.from_json(i) for i in d.get("images") or []))


@dataclass(frozen=True)
class DocRecord:
    """`docs/<fileId>.json` (Contract 1), typed. Comments stay the Drive API's resources, as
    Drive returned them; keys this version does not know are kept as they were (`extra`)."""

    id: str
    name: str
    titles: tuple[dict[str, str], ...]  # {"name", "time"}, oldest first
    folder_path: tuple[str, ...]
    folder_ids: tuple[str, ...]
    version: str
    modified_time: str
    web_view_link: str
    created_time: str = ""  # "" in stores pulled before it was kept
    partial_history: bool = False
    removed: dict[str, str] | None = None  # {"time", "reason": trashed|removed|deleted}
    revisions: tuple[Revision, ...] = ()
    comments: tuple[dict[str, Any], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.extra, "id": self.id, "name": self.name, "titles": [dict(t) for t in self.titles],
                "folder_path": list(self.folder_path), "folder_ids": list(self.folder_ids),
                "version": self.version, "modifiedTime": self.modified_time, "webViewLink": self.web_view_link,
                "createdTime": self.created_time, "partial_history": self.partial_history,
                "removed": self.removed, "revisions": [r.to_json() for r in self.revisions],
                "comments": list(self.comments)}

    @classmethod
    def from_json(cls, d: dict[str, Any], where: str = "") -> DocRecord:
        try:
            return cls(
                id=str(d["id"]), name=str(d.get("name") or ""), titles=tuple(d.get("titles") or ()),
                folder_path=tuple(d.get("folder_path") or ()), folder_ids=tuple(d.get("folder_ids") or ()),
                version=str(d.get("version") or ""), modified_time=str(d.get("modifiedTime") or ""),
                web_view_link=str(d.get("webViewLink") or ""), created_time=str(d.get("createdTime") or ""),
                partial_history=bool(d.get("partial_history")), removed=d.get("removed"),
                revisions=tuple(Revision.from_json(r) for r in d.get("revisions") or ()),
                comments=tuple(d.get("comments") or ()),
                extra={k: v for k, v in d.items() if k not in _RECORD_KEYS})
        except (KeyError, TypeError, AttributeError):
            raise BadInput(f"store file {where or d.get('id')} is not a doc record; remove it and pull again") from None


_RECORD_KEYS = frozenset(DocRecord("", "", (), (), (), "", "", "").to_json())


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

    def read_record(self, file_id: str) -> DocRecord | None:
        doc = self.read_doc(file_id)
        return None if doc is None else DocRecord.from_json(doc, f"docs/{file_id}.json in {self.root}")

    def write_record(self, record: DocRecord) -> None:
        self.write_doc(record.to_json())

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
