"""The read side of the archive (WORKDIR/archive, written by replay): the one place later stages
(push, render, publish, provision, run) open its `main` branch."""

from __future__ import annotations

from pathlib import Path

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
