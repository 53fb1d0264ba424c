"""Stage 4b: WORKDIR/site (MkDocs project) -> WORKDIR/public (static site), optionally also the
site source committed to the archive's `site` branch.

Keep this module's top-level imports light: sites rendered by older docpipe versions name its
Markdown extensions (now in pipeline.markdown_ext), so MkDocs imports it while building.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline import children
from pipeline.errors import BadInput, DocpipeError

SITE_BRANCH = "refs/heads/site"
BOT = ("docpipe", "docpipe@localhost")

# The Markdown extensions moved to pipeline.markdown_ext; sites rendered before name them here.
from pipeline.markdown_ext import KeepListNumbers, UntrustedHtml, filter_html, makeExtension, safe_url  # noqa: E402,F401

# ------------------------------------------------------------------ the stage


@dataclass
class PublishSummary:
    public: str
    html_files: int
    source_date_epoch: int
    site_commit: str | None = None  # tip of the archive's `site` branch when --site-branch

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _build(site: Path, out: Path, epoch: int) -> None:
    # A child process: MkDocs keeps global state (logging, plugin registries) and reads
    # SOURCE_DATE_EPOCH for the sitemap and page footers, which must not come from the clock.
    env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch))
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean",
           "-f", str(site / "mkdocs.yml"), "-d", str(out)]
    proc = children.run(cmd, capture_output=True, text=True, env=env, cwd=site)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        first = next((ln for ln in lines if ln.startswith(("WARNING", "ERROR"))), lines[-1] if lines else "")
        raise DocpipeError(f"mkdocs build --strict failed: {first or f'exit {proc.returncode}'}")


def _tree_from_dir(repo: Any, folder: Path) -> Any:
    """A git tree of a directory, built object by object (no index, no working tree)."""
    import pygit2

    builder = repo.TreeBuilder()
    for child in sorted(folder.iterdir()):
        if child.is_symlink():
            continue
        if child.is_dir():
            builder.insert(child.name, _tree_from_dir(repo, child), pygit2.enums.FileMode.TREE)
        else:
            builder.insert(child.name, repo.create_blob(child.read_bytes()), pygit2.enums.FileMode.BLOB)
    return builder.write()


def commit_site(repo: Any, site: Path, main: Any) -> str:
    """Commit site/ to the `site` branch: parent = previous site tip, author and time fixed by the
    archive's main tip, so the same archive gives the same SHA; an unchanged tree adds nothing."""
    import pygit2

    tree = _tree_from_dir(repo, site)
    ref = repo.references.get(SITE_BRANCH)
    parents = [ref.target] if ref else []
    if ref and repo[ref.target].peel(pygit2.Commit).tree_id == tree:
        return str(ref.target)
    sig = pygit2.Signature(*BOT, main.commit_time, 0)
    message = f"Render site from archive {main.id}\n\nDocpipe-Archive-Commit: {main.id}\n"
    oid = repo.create_commit(None, sig, sig, message, tree, parents)
    repo.references.create(SITE_BRANCH, oid, force=True)
    return str(oid)


def publish(workdir: Path, *, site_branch: bool = False) -> PublishSummary:
    """Build WORKDIR/site into WORKDIR/public with `mkdocs build --strict`."""
    from pipeline.archive import tip  # not at the top: MkDocs imports this module (pygit2 is heavy)

    site, public = workdir / "site", workdir / "public"
    if not (site / "mkdocs.yml").is_file():
        raise BadInput(f"no rendered site at {site}: run `docpipe render` first")
    repo, main = tip(workdir)
    if site_branch and main is None:
        raise BadInput(f"--site-branch needs the archive at {workdir / 'archive'} (branch main)")
    epoch = main.commit_time if main is not None else int(os.environ.get("SOURCE_DATE_EPOCH", "0") or 0)

    staging = workdir / "public.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _build(site.resolve(), staging.resolve(), epoch)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(public, ignore_errors=True)
    staging.rename(public)

    summary = PublishSummary(public=str(public), html_files=sum(1 for _ in public.rglob("*.html")),
                             source_date_epoch=epoch)
    if site_branch:
        summary.site_commit = commit_site(repo, site, main)
    return summary
