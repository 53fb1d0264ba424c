"""Stage 4a: the archive (git, branch main) -> an MkDocs project in WORKDIR/site.

Reads only git objects (tip tree of main, plus history for authors, last update and revision
counts), never a working tree. Pages come from Jinja2 templates (templates/, overridable file by
file with --templates). Doc content is untrusted: titles and names are escaped as Markdown text
here, and the site's Markdown runs with pipeline.markdown_ext:UntrustedHtml, which neutralises raw
HTML and script URLs in doc bodies (see templates/mkdocs.yml.j2).
"""

from __future__ import annotations

import html
import json
import posixpath
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pipeline import frontmatter
from pipeline.archive import MANIFEST, open_main, read_manifest, revision_of
from pipeline.comments import Thread, parse_threads
from pipeline.errors import BadInput, DocpipeError
from pipeline.headings import headings, section_end, strip_anchors
from pipeline.slugs import path_slug

if TYPE_CHECKING:
    import jinja2
    import pygit2

    from pipeline.lab.image.tag import WorkshopImage

INDEX_PAGE = "index.md"

# Drive links to a doc (the converter has already unwrapped google.com/url?q=). The optional
# `heading=` fragment is Google's form of an in-doc anchor; the converter keeps ids as anchors.
_DRIVE_LINK = re.compile(
    r"https?://docs\.google\.com/document/(?:u/\d+/)?d/([A-Za-z0-9_-]{10,})"
    r"(?:/[A-Za-z]*)?(?:\?[^\s)#>\"']*)?(?:#(?:heading=)?([A-Za-z0-9_.\-]+))?"
)
_HEADING_ANCHOR = re.compile(r'<a id="[^"<>]*"></a>')  # the converter's heading-id anchors
# Inline Markdown syntax; `<` and `&` become entities instead. Values never start a line, so
# line-start syntax (`-`, `1.`, `>`) needs no escape.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")
# What Python-Markdown still reads as syntax between raw `<code>` tags (links, emphasis, code
# spans, backslash escapes): as numeric character references, shown as typed.
_CODE_SPECIAL = re.compile(r"[\\`*_\[\]]")


# The fields of a doc that hook events carry (Contract 4); run.py reads them from render's summary.
EVENT_DOC_FIELDS = ("id", "name", "title", "status", "path", "page")


@dataclass
class DocPage:
    id: str
    name: str
    title: str
    status: str
    path: str  # archive path of the Markdown
    page: str  # site/docs-relative path of the page
    workshop: bool
    revisions: int
    authors: list[str]
    updated: str  # YYYY-MM-DD (UTC) of the last revision, "" if history has none
    open_threads: int
    lab: dict[str, Any] | None = None  # the validated spec (workshops only)
    lab_error: str | None = None  # why the spec is invalid (workshops only)
    workshop_name: str | None = None  # what `docpipe lab up` takes
    comments_page: str | None = None  # every thread, as its own page (out of the nav)

    def event_doc(self) -> dict[str, Any]:
        """The `doc` object of a hook event (Contract 4)."""
        return {k: getattr(self, k) for k in EVENT_DOC_FIELDS}


@dataclass
class RenderSummary:
    site: str
    commit: str
    pages: list[DocPage] = field(default_factory=list)

    @property
    def workshops(self) -> list[DocPage]:
        return [p for p in self.pages if p.workshop]

    def to_json(self) -> dict[str, Any]:
        return {"site": self.site, "commit": self.commit,
                "pages": [asdict(p) for p in self.pages],
                "workshops": [asdict(p) for p in self.workshops]}


# ------------------------------------------------------------------ archive reading


@dataclass
class _History:
    revisions: set[str] = field(default_factory=set)
    authors: list[str] = field(default_factory=list)
    updated: int = 0  # epoch seconds of the newest revision commit


def _histories(repo: pygit2.Repository, tip: pygit2.Commit) -> dict[str, _History]:
    """Per Drive file id: revision ids, authors (oldest first) and last revision time, from the
    `Drive-File-Id:` / `Drive-Revision-Id:` trailers of main's history."""
    import pygit2

    found: dict[str, _History] = {}
    walker = repo.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE)
    for commit in walker:
        found_rev = revision_of(commit.message_trailers)
        if found_rev is None:
            continue
        file_id, rev_id = found_rev
        hist = found.setdefault(file_id, _History())
        hist.revisions.add(rev_id)
        if commit.author.name not in hist.authors:
            hist.authors.append(commit.author.name)
        hist.updated = max(hist.updated, commit.author.time)
    return found


def _blob_text(tree: pygit2.Tree, path: str) -> str:
    import pygit2

    try:
        return str(tree[path].peel(pygit2.Blob).data.decode("utf-8"))
    except KeyError:
        raise DocpipeError(f"archive is missing {path} named by its manifest") from None
    except UnicodeDecodeError:
        raise DocpipeError(f"archive file {path} is not UTF-8") from None


def _safe_rel(path: str, what: str) -> str:
    """A repo-relative POSIX path that cannot leave the output directory."""
    p = PurePosixPath(path)
    if not path or p.is_absolute() or ".." in p.parts or "\\" in path or "\x00" in path:
        raise DocpipeError(f"archive manifest has an unsafe {what} path {path!r}")
    return p.as_posix()


# ------------------------------------------------------------------ Markdown helpers


def md_text(value: Any, limit: int = 0) -> str:
    """Untrusted text as literal, one-line Markdown (safe in a table cell or a heading)."""
    text = " ".join(str(value).split())
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    text = text.replace("&", "&amp;").replace("<", "&lt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def code_html(value: Any) -> str:
    """Untrusted text for inside a template's `<code>...</code>`: HTML-escaped as Jinja's `|e`
    does, and Markdown's inline syntax as character references, so it shows exactly as typed."""
    import markupsafe

    return _CODE_SPECIAL.sub(lambda m: f"&#{ord(m.group(0))};", str(markupsafe.escape(str(value))))


def step_key(name: str) -> str:
    """What a step's name and a heading are compared by: the archive's path slug (case, spacing,
    punctuation and emphasis marks ignored) of the text without a converter's anchors; "" never
    matches."""
    return path_slug(html.unescape(strip_anchors(name)), fallback="")


def place_checks(body: str, checks: Sequence[Mapping[str, Any]],
                 render_check: Callable[[Mapping[str, Any]], str]) -> tuple[str, list[Mapping[str, Any]]]:
    """Each check (a workshop's progress check, `name` its step) rendered by `render_check` at the
    end of its step: the section of the first heading of `body` whose text matches the name
    (`step_key`), up to the next heading of the same or a higher level. Headings in fenced code
    are code. Returns the body and the checks that match no heading, in their order."""
    lines = body.split("\n")
    heads = headings(lines)
    steps: dict[str, int] = {}
    for n, (_i, _level, text, _span) in enumerate(heads):
        key = step_key(text)
        if key:
            steps.setdefault(key, n)
    placed: dict[int, list[tuple[int, int]]] = {}  # line a section ends at -> (-heading, check): inner steps first
    unplaced: list[Mapping[str, Any]] = []
    for order, check in enumerate(checks):
        step = steps.get(step_key(str(check["name"])))
        if step is None:
            unplaced.append(check)
        else:
            placed.setdefault(section_end(heads, step, len(lines)), []).append((-step, order))
    # From the bottom up, so the line numbers above still hold.
    for end in sorted(placed, reverse=True):
        group = sorted(placed[end])
        start = max(heads[-neg][0] + heads[-neg][3] for neg, _ in group)
        at = end
        while at > start and not lines[at - 1].strip():
            at -= 1
        block: list[str] = []
        for _neg, order in group:
            block += ["", render_check(checks[order]).strip("\n")]
        lines[at:end] = [*block, ""]  # right after the section's last text, one blank line either side
    return "\n".join(lines), unplaced


def rewrite_drive_links(body: str, page: str, pages_by_id: Mapping[str, str]) -> str:
    """Drive links to docs in the archive become relative links to their pages (MkDocs then
    checks and converts them); links to docs outside the folder stay as they are."""

    def repl(m: re.Match[str]) -> str:
        target = pages_by_id.get(m.group(1))
        if target is None:
            return m.group(0)
        rel = posixpath.relpath(target, posixpath.dirname(page) or ".")
        return rel + (f"#{m.group(2)}" if m.group(2) else "")

    return _DRIVE_LINK.sub(repl, body)


def _drop_title_heading(body: str, title: str) -> str:
    """The converter keeps a Doc's Title paragraph as an H1; the page template prints the title."""
    lines = body.lstrip("\n").split("\n", 1)
    first = _HEADING_ANCHOR.sub("", lines[0]).strip()
    if first.startswith("# ") and " ".join(first[2:].split()) == " ".join(title.split()):
        rest = lines[1] if len(lines) > 1 else ""
        anchors = "".join(_HEADING_ANCHOR.findall(lines[0]))  # links to the title still land
        return f"{anchors}\n{rest}" if anchors else rest
    return body


def _page_path(path: str) -> str:
    # The site's own index owns docs/index.md; a doc that slugs to "index" moves aside.
    return "index-doc.md" if path == INDEX_PAGE else path


# ------------------------------------------------------------------ templates


def template_env(templates: Path | None = None) -> jinja2.Environment:
    """Jinja2 environment: the user's dir (if any) first, then the shipped templates/."""
    import jinja2

    from pipeline.resources import shipped

    loaders: list[jinja2.BaseLoader] = []
    if templates is not None:
        if not templates.is_dir():
            raise BadInput(f"templates directory {templates} does not exist")
        loaders.append(jinja2.FileSystemLoader(str(templates)))
    loaders.append(jinja2.FileSystemLoader(str(shipped("templates"))))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
        autoescape=False,  # the output is Markdown/YAML; values go through the md/url/yaml_str filters
    )
    env.filters["md"] = md_text
    env.filters["code"] = code_html
    env.filters["url"] = lambda v: quote(str(v), safe="/:?#=&%.~-_+,;@")
    env.filters["yaml_str"] = lambda v: json.dumps(str(v), ensure_ascii=False)  # JSON strings are YAML
    return env


def _render_template(env: jinja2.Environment, name: str, **ctx: Any) -> str:
    import jinja2

    try:
        return str(env.get_template(name).render(**ctx))
    except jinja2.TemplateError as exc:
        lineno = getattr(exc, "lineno", None)
        where = f" (line {lineno})" if lineno else ""
        raise BadInput(f"template {name}{where}: {exc}") from None


# ------------------------------------------------------------------ the stage


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _copy_assets(tree: pygit2.Tree, md_path: str, out_docs: Path) -> None:
    """Images of a doc live in <slug>.assets/ beside it; copy them beside the page."""
    import pygit2

    assets = md_path[: -len(".md")] + ".assets"
    try:
        folder = tree[assets]
    except KeyError:
        return
    if not isinstance(folder, pygit2.Tree):
        return
    for entry in folder:
        if isinstance(entry, pygit2.Blob):
            _write(out_docs / _safe_rel(f"{assets}/{entry.name}", "asset"), entry.data)


def render(workdir: Path, *, templates: Path | None = None,
           allowed_bases: Mapping[str, str] | None = None, allow_setup: bool = False,
           lab_url: str = "") -> RenderSummary:
    """Render WORKDIR/archive (tip of main) into WORKDIR/site, replacing what was there.
    `allowed_bases` and `allow_setup` are the lab settings a workshop's spec is checked against;
    `lab_url` ([lab] public_url) puts a start button to `docpipe lab serve` on each workshop page."""
    from pipeline.lab.image.tag import workshop_image

    repo, tip = open_main(workdir)
    tree = tip.tree
    manifest = read_manifest(repo, tip)
    if manifest is None:
        raise BadInput(f"the archive has no {MANIFEST}: run `docpipe replay` first")
    docs = manifest.docs
    folder = manifest.folder

    env = template_env(templates)
    # A workshop doc's spec and image tag, as the lab's image side (and so provision) sees them.
    lab = partial(workshop_image, folder_id=str(folder.get("id") or ""), templates=templates,
                  allowed_bases=allowed_bases, allow_setup=allow_setup)
    history = _histories(repo, tip)
    pages_by_id = {fid: _page_path(_safe_rel(str(d["path"]), "doc")) for fid, d in docs.items()}

    site = workdir / "site"
    staging = workdir / "site.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    out_docs = staging / "docs"
    summary = RenderSummary(site=str(site), commit=str(tip.id))
    try:
        for fid in sorted(docs, key=lambda f: (pages_by_id[f], f)):
            doc, text, comments = _render_doc(env, tree, fid, docs[fid], pages_by_id,
                                              history.get(fid, _History()), lab, lab_url)
            _write(out_docs / doc.page, text.encode("utf-8"))
            if doc.comments_page:
                _write(out_docs / doc.comments_page, comments.encode("utf-8"))
            _copy_assets(tree, doc.path, out_docs)
            summary.pages.append(doc)
        ctx = {"pages": summary.pages, "folder": folder, "commit": summary.commit}
        _write(out_docs / INDEX_PAGE, _render_template(env, "index.md.j2", **ctx).encode("utf-8"))
        _write(staging / "mkdocs.yml", _render_template(env, "mkdocs.yml.j2", **ctx).encode("utf-8"))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    # Swap in the finished tree so a failed render never leaves a half-written site.
    shutil.rmtree(site, ignore_errors=True)
    staging.rename(site)
    return summary


def _doc_fields(fid: str, entry: Mapping[str, Any], meta: Mapping[str, str]) -> dict[str, Any]:
    """What a doc's page says it is (EVENT_DOC_FIELDS): its front matter, else the manifest."""
    path = _safe_rel(str(entry["path"]), "doc")
    title = meta.get("title") or str(entry.get("title") or "") or PurePosixPath(path).stem
    return {"id": fid, "name": meta.get("name", ""), "title": title, "status": meta.get("status", ""),
            "path": path, "page": _page_path(path)}


def event_docs(workdir: Path, file_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Drive file id -> the `doc` object of a hook event (Contract 4), for these docs of the
    archive's tip, as their pages have it: provision's `workshop` events and render agree."""
    repo, tip = open_main(workdir)
    manifest = read_manifest(repo, tip)
    docs = manifest.docs if manifest else {}
    return {fid: _doc_fields(fid, docs[fid], frontmatter.read(_blob_text(tip.tree, _safe_rel(str(docs[fid]["path"]), "doc"))))
            for fid in file_ids if fid in docs}


def _render_doc(env: Any, tree: Any, fid: str, entry: Mapping[str, Any], pages_by_id: Mapping[str, str],
                hist: _History, lab: Callable[[str, str], WorkshopImage | None],
                lab_url: str = "") -> tuple[DocPage, str, str]:
    """One doc's page record, its Markdown and its comments page's Markdown ("" if none)."""

    path = _safe_rel(str(entry["path"]), "doc")
    page = pages_by_id[fid]
    markdown = _blob_text(tree, path)
    meta, body = frontmatter.split(markdown)
    threads: list[Thread] = []
    comments, comments_page = "", None
    if entry.get("comments"):
        # The converter links comment marks to this file, so it is published too, as is.
        comments_page = _page_path(_safe_rel(str(entry["comments"]), "comments"))
        comments = _blob_text(tree, str(entry["comments"]))
        threads = parse_threads(comments)
        comments = rewrite_drive_links(comments, comments_page, pages_by_id)
    doc = DocPage(
        **_doc_fields(fid, entry, meta), workshop=False, revisions=len(hist.revisions), authors=list(hist.authors),
        updated=_date(hist.updated), open_threads=len(threads), comments_page=comments_page,
    )
    title = doc.title
    ws = lab(markdown, path)  # a bad spec never fails render: the page says what is wrong
    if ws is not None:
        doc.workshop, doc.lab, doc.lab_error, doc.workshop_name = True, ws.lab, ws.error, ws.name
    body = rewrite_drive_links(_drop_title_heading(body, title), page, pages_by_id)
    # Each progress check under its step (partials/step-check.md.j2); the rest at the page's end.
    checks: list[Mapping[str, Any]] = list(doc.lab.get("checks") or ()) if doc.lab else []
    if checks:
        body, checks = place_checks(body, checks, lambda check: _render_template(
            env, "partials/step-check.md.j2", doc=doc, check=check))
    text = _render_template(
        env, "tutorial.md.j2" if doc.workshop else "page.md.j2",
        doc=doc, body=body, checks=checks, threads=threads, web_link=str(entry.get("webViewLink") or ""),
        # `docpipe lab serve`'s page for this workshop (a valid spec only: a bad one builds nothing)
        start_url=f"{lab_url.rstrip('/')}/start/{doc.workshop_name}/" if lab_url and doc.lab else "",
        comments_link=posixpath.relpath(comments_page, posixpath.dirname(page) or ".") if comments_page else "",
    )
    return doc, text, comments


def _date(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d") if epoch else ""
