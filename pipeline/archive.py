"""The archive (WORKDIR/archive, written by replay): the one place later stages (push, render,
publish, provision, run) open its `main` branch, and the one owner of the two formats in it that
docpipe reads back: the manifest (.docpipe/manifest.json) and the commit trailers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from pipeline.errors import BadInput

BRANCH = "refs/heads/main"
MANIFEST = ".docpipe/manifest.json"


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
# .docpipe/manifest.json on main: which Drive doc lives at which path. Written by replay only,
# read by render, push, provision and run through `read_manifest`, so a corrupt one reads the same
# way (BadInput, exit 2) in every stage.


@dataclass
class Manifest:
    """folder: the Drive folder's id, name and webViewLink; docs: fileId -> {path, comments, title,
    webViewLink} with `path` the doc's Markdown file and `comments` its comments file or None."""

    folder: dict[str, str] = field(default_factory=dict)
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        """The one byte form (sorted keys), so the same manifest is the same blob."""
        data = {"docs": self.docs, "folder": self.folder}
        return (json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            loaded = json.loads(data.decode("utf-8"))
        except ValueError:  # also UnicodeDecodeError
            raise BadInput(f"{MANIFEST} in the archive's main is not valid JSON") from None
        folder = loaded.get("folder") if isinstance(loaded, dict) else None
        docs = loaded.get("docs") if isinstance(loaded, dict) else None
        if not isinstance(docs, dict) or not isinstance(folder, (dict, type(None))):
            raise BadInput(f"{MANIFEST} in the archive's main is not a valid manifest")
        for file_id, entry in docs.items():
            path = entry.get("path") if isinstance(entry, dict) else None
            comments = entry.get("comments") if isinstance(entry, dict) else None
            if not isinstance(path, str) or not path.endswith(".md") or not isinstance(comments, (str, type(None))):
                raise BadInput(f"{MANIFEST} in the archive's main has an invalid entry for doc {file_id}")
        return cls({str(k): str(v) for k, v in (folder or {}).items()}, dict(docs))


def read_manifest(repo: pygit2.Repository, commit: pygit2.Commit | None) -> Manifest | None:
    """The manifest of `commit`, None when it has none (an empty archive); BadInput when corrupt."""
    if commit is None:
        return None
    try:
        entry = commit.tree[MANIFEST]
    except KeyError:
        return None
    blob = repo[entry.id]
    if not isinstance(blob, pygit2.Blob):
        raise BadInput(f"{MANIFEST} in the archive's main is not a file")
    return Manifest.from_bytes(blob.data)


def write_manifest(repo: pygit2.Repository, manifest: Manifest) -> pygit2.Oid:
    """The manifest as a blob of `repo`, for replay to put at MANIFEST in its next tree."""
    return repo.create_blob(manifest.to_bytes())


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
