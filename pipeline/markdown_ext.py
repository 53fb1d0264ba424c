"""Markdown extensions the rendered mkdocs.yml names (`pipeline.markdown_ext:...`).

`UntrustedHtml`: docs are editable by anyone, so raw HTML in them is reduced to inert markup and
script URLs are dropped. Extensions that build their markup as a tree (`footnotes`, `toc`) pass
through untouched, and what a footnote says is Markdown like the rest: its raw HTML is filtered
and its links checked by the same two processors. `KeepListNumbers`: tutorial steps keep their numbers across code blocks.
Keep this module's imports light: MkDocs imports it while building.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from typing import Any

from markdown import Extension
from markdown.postprocessors import Postprocessor
from markdown.treeprocessors import Treeprocessor

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


class _StashFilter(Postprocessor):  # type: ignore[misc]  # Python-Markdown ships no types
    # Runs just before Python-Markdown's raw_html postprocessor (priority 30) puts the stash back.
    def run(self, text: str) -> str:
        stash = self.md.htmlStash.rawHtmlBlocks
        for i, block in enumerate(stash):
            if isinstance(block, str):
                stash[i] = filter_html(block)
        return text


class _UrlFilter(Treeprocessor):  # type: ignore[misc]
    def run(self, root: Any) -> None:
        for el in root.iter():
            for attr in _URL_ATTRS:
                value = el.get(attr)
                if value is not None and not safe_url(value):
                    # Demote rather than blank the link: MkDocs expects every <a>/<img> to keep
                    # its href/src, and an inert <span> still shows the text.
                    del el.attrib[attr]
                    el.tag = "span"


class UntrustedHtml(Extension):  # type: ignore[misc]
    """Markdown extension for untrusted docs: inert raw HTML, no script URLs."""

    def extendMarkdown(self, md: Any) -> None:
        md.postprocessors.register(_StashFilter(md), "docpipe_untrusted_html", 35)
        md.treeprocessors.register(_UrlFilter(md), "docpipe_safe_urls", 10)  # after inline (20)


class KeepListNumbers(Extension):  # type: ignore[misc]
    """Ordered lists keep the number they start at (`<ol start>`).

    Google Docs numbers a tutorial's steps across the code blocks between them; the converter
    writes `2.`, `3.`... after each block, and Python-Markdown would restart every list at 1.
    Listed after the list extension in mkdocs.yml, so its processor is the one adjusted."""

    def extendMarkdown(self, md: Any) -> None:
        if "olist" in md.parser.blockprocessors:
            md.parser.blockprocessors["olist"].LAZY_OL = False


def makeExtension(**kwargs: Any) -> UntrustedHtml:
    return UntrustedHtml(**kwargs)
