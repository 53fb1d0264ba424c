"""Stage 4b: WORKDIR/site (MkDocs project) -> WORKDIR/public (static site), optionally also the
site source committed to the archive's `site` branch.

Also home of `UntrustedHtml`, the Markdown extension the rendered mkdocs.yml names: docs are
editable by anyone, so raw HTML in them is reduced to inert markup and script URLs are dropped.
Keep this module's top-level imports light: MkDocs imports it while building.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from markdown import Extension
from markdown.postprocessors import Postprocessor
from markdown.treeprocessors import Treeprocessor

from pipeline import children
from pipeline.errors import BadInput, DocpipeError

SITE_BRANCH = "refs/heads/site"
BOT = ("docpipe", "docpipe@localhost")

# ------------------------------------------------------------------ untrusted HTML

_ALLOWED_TAGS = frozenset(
    "a abbr b blockquote br caption code col colgroup dd del details div dl dt em figcaption figure "
    "h1 h2 h3 h4 h5 h6 hr i img ins kbd li mark ol p pre q s samp small span strike strong sub "
    "summary sup table tbody td tfoot th thead tr u ul var".split()
)
_GLOBAL_ATTRS = frozenset({"id", "class", "title", "lang", "dir"})
_TAG_ATTRS = {
    "a": {"href", "name"}, "img": {"src", "alt", "width", "height"}, "td": {"colspan", "rowspan", "align"},
    "th": {"colspan", "rowspan", "align"}, "ol": {"start", "type"}, "col": {"span"}, "colgroup": {"span"},
}
_URL_ATTRS = frozenset({"href", "src"})
_SAFE_SCHEMES = frozenset({"http", "https", "mailto"})
_SCHEME = re.compile(r"^([a-z][a-z0-9+.\-]*):")
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]+")


def safe_url(value: str) -> bool:
    """Relative URLs and http(s)/mailto only. Browsers ignore whitespace and control characters
    inside a scheme (`java\\tscript:`), so those are removed before looking."""
    m = _SCHEME.match(_INVISIBLE.sub("", value).lower())
    return m is None or m.group(1) in _SAFE_SCHEMES


class _Filter(HTMLParser):
    """Re-emits an HTML fragment tag by tag: allowed tags with allowed attributes, everything
    else (script, style, iframe, event handlers, comments) as visible text. Streaming rather than
    tree-based because Python-Markdown stashes inline HTML as separate fragments (`<sup>`, text,
    `</sup>`), which a tree sanitizer would close or drop."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]], close: str) -> None:
        if tag not in _ALLOWED_TAGS:
            self.out.append(html.escape(self.get_starttag_text() or ""))
            return
        allowed = _GLOBAL_ATTRS | _TAG_ATTRS.get(tag, set())
        kept = [(k, v or "") for k, v in attrs if k in allowed and (k not in _URL_ATTRS or safe_url(v or ""))]
        text = "".join(f' {k}="{html.escape(v)}"' for k, v in kept)
        self.out.append(f"<{tag}{text}{close}>")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, attrs, "")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag(tag, attrs, " /")

    def handle_endtag(self, tag: str) -> None:
        self.out.append(f"</{tag}>" if tag in _ALLOWED_TAGS else html.escape(f"</{tag}>"))

    def handle_data(self, data: str) -> None:
        self.out.append(html.escape(data, quote=False))

    def handle_entityref(self, name: str) -> None:
        self.out.append(f"&{name};")

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.out.append(html.escape(f"<!--{data}-->"))

    def handle_decl(self, decl: str) -> None:
        self.out.append(html.escape(f"<!{decl}>"))

    def handle_pi(self, data: str) -> None:
        self.out.append(html.escape(f"<?{data}>"))

    def unknown_decl(self, data: str) -> None:
        self.out.append(html.escape(f"<![{data}]>"))


def filter_html(fragment: str) -> str:
    f = _Filter()
    f.feed(fragment)
    f.close()
    return "".join(f.out)


class _StashFilter(Postprocessor):
    # Runs just before Python-Markdown's raw_html postprocessor (priority 30) puts the stash back.
    def run(self, text: str) -> str:
        stash = self.md.htmlStash.rawHtmlBlocks
        for i, block in enumerate(stash):
            if isinstance(block, str):
                stash[i] = filter_html(block)
        return text


class _UrlFilter(Treeprocessor):
    def run(self, root: Any) -> None:
        for el in root.iter():
            for attr in _URL_ATTRS:
                value = el.get(attr)
                if value is not None and not safe_url(value):
                    # Demote rather than blank the link: MkDocs expects every <a>/<img> to keep
                    # its href/src, and an inert <span> still shows the text.
                    del el.attrib[attr]
                    el.tag = "span"


class UntrustedHtml(Extension):
    """Markdown extension for untrusted docs: inert raw HTML, no script URLs."""

    def extendMarkdown(self, md: Any) -> None:
        md.postprocessors.register(_StashFilter(md), "docpipe_untrusted_html", 35)
        md.treeprocessors.register(_UrlFilter(md), "docpipe_safe_urls", 10)  # after inline (20)


class KeepListNumbers(Extension):
    """Ordered lists keep the number they start at (`<ol start>`).

    Google Docs numbers a tutorial's steps across the code blocks between them; the converter
    writes `2.`, `3.`... after each block, and Python-Markdown would restart every list at 1.
    Listed after the list extension in mkdocs.yml, so its processor is the one adjusted."""

    def extendMarkdown(self, md: Any) -> None:
        if "olist" in md.parser.blockprocessors:
            md.parser.blockprocessors["olist"].LAZY_OL = False


def makeExtension(**kwargs: Any) -> UntrustedHtml:  # noqa: N802 - Python-Markdown's hook name
    return UntrustedHtml(**kwargs)


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
