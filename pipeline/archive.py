"""The archive (WORKDIR/archive, written by replay): the one place later stages (push, render,
publish, provision, run) open its `main` branch, and the one owner of the two formats in it that
docpipe reads back: the manifest (.docpipe/folder.json and .docpipe/docs/) and the commit trailers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from pipeline.errors import BadInput
from pipeline.hashing import sha256_hex

BRANCH = "refs/heads/main"


def tip(workdir: Path) -> tuple[pygit2.Repository | None, pygit2.Commit | None]:
    """(repository, tip of main), with None for what does not exist yet."""
    path = Path(workdir) / "archive"
    if not path.is_dir():
        return None, None
    try:
        # NO_SEARCH: never fall back to a repository that merely encloses the workdir.
        repo = pygit2.Repository(str(path), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
    except (pygit2.GitError, KeyError):
        return None, None
    ref = repo.references.get(BRANCH)
    return repo, (repo[ref.resolve().target].peel(pygit2.Commit) if ref is not None else None)


def open_main(workdir: Path) -> tuple[pygit2.Repository, pygit2.Commit]:
    """The archive and the tip of main, or a one-line BadInput telling what to run first."""
    path = Path(workdir) / "archive"
    repo, commit = tip(workdir)
    if repo is None:
        raise BadInput(f"no archive at {path}: run `docpipe replay` first")
    if commit is None:
        raise BadInput(f"the archive at {path} has no branch main: run `docpipe replay` first")
    return repo, commit


def head(workdir: Path) -> str | None:
    """The SHA of main, or None."""
    _, commit = tip(workdir)
    return str(commit.id) if commit is not None else None


# ------------------------------------------------------------------ the manifest
# Which Drive doc lives at which path, on main. Written by replay only, read by render, push,
# provision and run through `read_manifest`, so a corrupt one reads the same way (BadInput, exit 2)
# in every stage.
#
#   .docpipe/folder.json                 {"id", "name", "webViewLink"} of the Drive folder
#   .docpipe/docs/<xx>/<fileId>.json     {"path", "comments", "title", "webViewLink"} of one doc,
#                                        xx = the first two hex digits of sha256(fileId)
#
# One small file per doc, so adding, moving or retitling a doc writes that file and the trees above
# it; none of them grows with the folder (the 256 shards keep each tree to fileIds/256 entries).
# Archives replayed before kept it all in one .docpipe/manifest.json (LEGACY_MANIFEST), rewritten
# whole for every doc added: replay moves it in one commit, and read_manifest still reads it.

MANIFEST = ".docpipe/folder.json"
MANIFEST_DOCS = ".docpipe/docs"
LEGACY_MANIFEST = ".docpipe/manifest.json"
_FOLDER_KEYS = ("id", "name", "webViewLink")


def canonical(data: Any) -> bytes:
    """The one byte form of the manifest's files (sorted keys), so the same entry is the same blob."""
    return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def doc_entry_path(file_id: str) -> str:
    """Where the manifest entry of `file_id` lives (ids are store-checked: letters, digits, - and _)."""
    return f"{MANIFEST_DOCS}/{sha256_hex(file_id)[:2]}/{file_id}.json"


def checked_entry(file_id: str, entry: Any, where: str) -> dict[str, Any]:
    path = entry.get("path") if isinstance(entry, dict) else None
    comments = entry.get("comments") if isinstance(entry, dict) else None
    if not isinstance(path, str) or not path.endswith(".md") or not isinstance(comments, (str, type(None))):
        raise BadInput(f"{where} in the archive's main has an invalid entry for doc {file_id}")
    assert isinstance(entry, dict)
    return entry


@dataclass
class Manifest:
    """folder: the Drive folder's id, name and webViewLink; docs: fileId -> {path, comments, title,
    webViewLink} with `path` the doc's Markdown file and `comments` its comments file or None."""

    folder: dict[str, str] = field(default_factory=dict)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The legacy one-file form (LEGACY_MANIFEST), as replay wrote it before the split."""
        return canonical({"docs": self.docs, "folder": self.folder})

    @classmethod
    def from_bytes(cls, data: bytes, where: str = LEGACY_MANIFEST) -> Manifest:
        """A legacy one-file manifest."""
        loaded = _json(data, where)
        folder = loaded.get("folder") if isinstance(loaded, dict) else None
        docs = loaded.get("docs") if isinstance(loaded, dict) else None
        if not isinstance(docs, dict) or not isinstance(folder, (dict, type(None))):
            raise BadInput(f"{where} in the archive's main is not a valid manifest")
        for file_id, entry in docs.items():
            checked_entry(file_id, entry, where)
        return cls({str(k): str(v) for k, v in (folder or {}).items()}, dict(docs))


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except ValueError:  # also UnicodeDecodeError
        raise BadInput(f"{where} in the archive's main is not valid JSON") from None


def _blob(repo: pygit2.Repository, entry: pygit2.Object, where: str) -> bytes:
    blob = repo[entry.id]
    if not isinstance(blob, pygit2.Blob):
        raise BadInput(f"{where} in the archive's main is not a file")
    return blob.data


def read_folder(data: bytes, where: str = MANIFEST) -> dict[str, str]:
    loaded = _json(data, where)
    if not isinstance(loaded, dict):
        raise BadInput(f"{where} in the archive's main is not a valid manifest")
    return {str(k): str(v) for k, v in loaded.items()}


def read_doc_entry(name: str, data: bytes, where: str) -> tuple[str, dict[str, Any]]:
    """(fileId, entry) of one manifest file named `<fileId>.json`."""
    file_id = name[: -len(".json")] if name.endswith(".json") else ""
    if not file_id or where != doc_entry_path(file_id):
        raise BadInput(f"{where} in the archive's main is not where the manifest keeps a doc")
    return file_id, checked_entry(file_id, _json(data, where), where)


def folder_bytes(folder: Mapping[str, str]) -> bytes:
    return canonical({k: str(folder.get(k) or "") for k in _FOLDER_KEYS})


def read_manifest(repo: pygit2.Repository, commit: pygit2.Commit | None) -> Manifest | None:
    """The manifest of `commit`, None when it has none (an empty archive); BadInput when corrupt."""
    if commit is None:
        return None
    tree = commit.tree
    if MANIFEST not in tree and MANIFEST_DOCS not in tree:
        if LEGACY_MANIFEST not in tree:
            return None
        return Manifest.from_bytes(_blob(repo, tree[LEGACY_MANIFEST], LEGACY_MANIFEST))
    folder = read_folder(_blob(repo, tree[MANIFEST], MANIFEST)) if MANIFEST in tree else {}
    docs: dict[str, dict[str, Any]] = {}
    shards = repo[tree[MANIFEST_DOCS].id] if MANIFEST_DOCS in tree else None
    if shards is not None and not isinstance(shards, pygit2.Tree):
        raise BadInput(f"{MANIFEST_DOCS} in the archive's main is not a directory")
    for shard in shards or []:
        files = repo[shard.id]
        where = f"{MANIFEST_DOCS}/{shard.name}"
        if not isinstance(files, pygit2.Tree):
            raise BadInput(f"{where} in the archive's main is not a directory")
        for item in files:
            name = str(item.name)
            file_id, entry = read_doc_entry(name, _blob(repo, item, f"{where}/{name}"), f"{where}/{name}")
            docs[file_id] = entry
    return Manifest(folder, docs)


# ------------------------------------------------------------------ commit trailers
# Every replay commit ends with trailers naming its event; replay reads them back to know what is
# already in the archive, render to count each doc's revisions and authors.

EVENT_KINDS = frozenset({"title", "revision", "comment", "reply", "resolve", "reopen", "delete", "removed"})
# (kind, fileId, revision or comment id, reply id, event time): what the trailers record.
Key = tuple[str, str, str, str, str]


def format_trailers(kind: str, file_id: str, *, revision: str = "", comment: str = "", reply: str = "",
                    stamp: str = "") -> str:
    """The trailer block of a commit for one event (ids were checked to hold no newline)."""
    out = [("Drive-File-Id", file_id)]
    if revision:
        out.append(("Drive-Revision-Id", revision))
    if comment:
        out.append(("Drive-Comment-Id", comment))
    if reply:
        out.append(("Drive-Reply-Id", reply))
    out.append(("Drive-Event", kind))
    if stamp:
        out.append(("Drive-Event-Time", stamp))
    return "\n".join(f"{k}: {v}" for k, v in out)


def key_from_trailers(trailers: Mapping[str, str]) -> Key | None:
    """The event a commit records, or None for a commit docpipe did not write."""
    kind = trailers.get("Drive-Event")
    file_id = trailers.get("Drive-File-Id")
    if not kind or not file_id or kind not in EVENT_KINDS:
        return None
    first = trailers.get("Drive-Revision-Id") or trailers.get("Drive-Comment-Id") or ""
    return (kind, file_id, first, trailers.get("Drive-Reply-Id", ""), trailers.get("Drive-Event-Time", ""))


def revision_of(trailers: Mapping[str, str]) -> tuple[str, str] | None:
    """(fileId, revision id) of a revision commit, else None."""
    file_id, rev_id = trailers.get("Drive-File-Id"), trailers.get("Drive-Revision-Id")
    return (file_id, rev_id) if file_id and rev_id else None
