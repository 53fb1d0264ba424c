"""The content-addressed store (ARCHITECTURE.md, Contract 1): `WORKDIR/store`.

Blobs are immutable and named by the sha256 of their bytes; per-doc metadata and folder.json are
JSON written in one canonical form. Every write is atomic (temp file in the same directory, fsync,
rename, fsync the directory), so a process killed at any instant leaves either the old file or the
new one, never a torn one. Writers put blobs first and a doc's JSON last, so a doc JSON never names
a blob that is not on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import DocpipeError

# Temp files carry this prefix so a run can sweep the ones a killed run left behind.
TMP_PREFIX = ".tmp-"
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# Drive ids are URL-safe base64-ish; anything else must never become a path.
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


def canonical_json(obj: Any) -> bytes:
    """The one byte form of every JSON file in the store."""
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old or the new content, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def valid_file_id(file_id: str) -> bool:
    return bool(_ID_RE.match(file_id))


@dataclass(frozen=True)
class Store:
    """A store rooted at `root` (normally WORKDIR/store)."""

    root: Path

    @classmethod
    def at(cls, workdir: Path) -> "Store":
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
            raise DocpipeError(f"store: {file_id!r} is not a Drive file id")
        return self.root / "docs" / f"{file_id}.json"

    def read_doc(self, file_id: str) -> dict[str, Any] | None:
        return self._read_json(self.doc_path(file_id))

    def write_doc(self, doc: dict[str, Any]) -> None:
        atomic_write(self.doc_path(doc["id"]), canonical_json(doc))

    def doc_ids(self) -> list[str]:
        folder = self.root / "docs"
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.json") if not p.name.startswith(TMP_PREFIX))

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
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            return json.loads(data)
        except ValueError:
            raise DocpipeError(f"store file {path} is not valid JSON; remove it and pull again") from None
