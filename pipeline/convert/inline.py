"""Inline runs: flatten a Google paragraph into styled items, then nest formats as semantic tags.

Google writes every change of style as a new `<span>`, so `**bold _both_** _italic_` arrives as
three sibling spans. We flatten a paragraph into items (text, break, image, anchor), each with the
set of formats its CSS gives it, and rebuild the nesting greedily: at each position the format
whose run reaches furthest becomes the outer tag. Whitespace-only items take the formats their
neighbours share, so a bold run never breaks on a space and markers never hug a space.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from bs4 import BeautifulSoup, Tag
from bs4.element import NavigableString

from pipeline.convert.styles import CODE, DEL, EM, STRONG, SUB, SUP, Look, StyleSheet
from pipeline.convert.tree import Element, classes, tag_of, text_of

TEXT, BREAK, IMAGE, ANCHOR, FOOTNOTE = "text", "br", "img", "anchor", "footnote"
LINK = "a:"  # prefix of a link's format key: "a:" + href

# Tie-break when two formats' runs are equally long (outermost first): `**[x](u)**`, but
# `[`x`](u)` since nothing inside a code span is markup.
_ORDER = {STRONG: 1, EM: 2, DEL: 3, SUP: 4, SUB: 5, CODE: 7}
_LINK_ORDER = 6

# Tags older exports (and copy/paste HTML) use for formats, instead of CSS.
_TAG_FORMATS = {
    "b": STRONG, "strong": STRONG, "i": EM, "em": EM, "s": DEL, "strike": DEL, "del": DEL,
    "sup": SUP, "sub": SUB, "code": CODE, "tt": CODE, "kbd": CODE, "samp": CODE,
}
CODE_BLOCK_START, CODE_BLOCK_END = "\uec03", "\uec02"
# Control characters (never meaningful in a Doc) and Google's code-block markers are dropped.
_JUNK = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\uec02\uec03]")
# Ids we keep as anchors (Google's `h.xxx`, bookmarks): nothing that could break out of an attribute.
SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
_COMMENT_REF = re.compile(r"^#cmnt\d+$")
# Google's footnote mark: `<sup><a href="#ftnt3" id="ftnt_ref3">[3]</a></sup>`; the note itself is
# `<a href="#ftnt_ref3" id="ftnt3">[3]</a>` at the start of a `<div>` at the end of the body.
FOOTNOTE_REF = re.compile(r"^#ftnt(\d+)$")
# A footnote mark is its own superscript in Markdown (`[^3]`): none of these may wrap it.
_NOT_AROUND_FOOTNOTES = frozenset({SUP, SUB, CODE})
_SAFE_SCHEMES = ("http", "https", "mailto", "ftp")


class LineStart(NavigableString):
    """Text that begins a Markdown line: block markers (`#`, `-`, `1.`, `>`) in it get escaped."""


@dataclass
class Item:
    kind: str
    text: str = ""
    fmts: frozenset[str] = frozenset()
    attrs: dict[str, str] | None = None

    @property
    def blank(self) -> bool:
        return self.kind == TEXT and not self.text.strip()


def clean_text(text: str) -> str:
    """Doc text as Markdown wants it: nbsp as space, no control or code-marker characters."""
    return _JUNK.sub("", text.replace("\xa0", " "))


def safe_href(href: str | None) -> str | None:
    """Unwrap Google's redirect; keep only web, mail and in-document links (never `javascript:`)."""
    if not href:
        return None
    href = href.strip()
    if href.startswith("https://www.google.com/url?") or href.startswith("http://www.google.com/url?"):
        target = parse_qs(urlsplit(href).query).get("q")
        if target:
            href = target[0]
    if href.startswith("#"):
        return "#" + quote(href[1:], safe="._:-=/")
    scheme = urlsplit(href).scheme.lower()
    if scheme not in _SAFE_SCHEMES and (scheme or ":" in href.split("/")[0]):
        return None  # javascript:, data:, vbscript:... (relative paths have no scheme and stay)
    # Markdown link destinations end at whitespace or an unbalanced parenthesis.
    return quote(href, safe="/:?#[]@!$&'*+,;=%~.-_")


def safe_src(src: str, images: dict[str, str] | None) -> str | None:
    mapped = images.get(src) if images else None
    if mapped is not None:
        return quote(mapped, safe="/.-_~")
    if src.startswith("data:image/") and ";base64," in src:
        return None  # embedded images belong in files beside the doc, not inline in the text
    return safe_href(src)


@dataclass
class Context:
    sheet: StyleSheet
    images: dict[str, str] | None
    comments_href: str | None
    footnotes: frozenset[str] = frozenset()  # labels of the footnotes the export defines


def items_of(block: Element, base: Look, ctx: Context) -> list[Item]:
    """Flatten a block's inline content into styled items."""
    out: list[Item] = []
    _walk(block, base, frozenset(), ctx, out)
    return out


def _walk(node: Element, look: Look, extra: frozenset[str], ctx: Context, out: list[Item]) -> None:
    if node.text:
        _text(node.text, look, extra, out)
    for child in node:
        name = tag_of(child)
        if name is None or name in ("script", "style", "head", "title", "meta"):
            pass
        elif name == "br":
            out.append(Item(BREAK))
        elif name == "img":
            src = safe_src(child.get("src") or "", ctx.images)
            if src:
                out.append(Item(IMAGE, clean_text(child.get("alt") or ""), attrs={"src": src}))
        elif name == "a":
            _walk_link(child, look, extra, ctx, out)
        else:
            sub = ctx.sheet.look(classes(child), child.get("style") or "")
            if not sub.hidden:
                fmt = _TAG_FORMATS.get(name)
                _walk(child, sub.over(look), extra | {fmt} if fmt else extra, ctx, out)
        if child.tail:
            _text(child.tail, look, extra, out)


def _text(raw: str, look: Look, extra: frozenset[str], out: list[Item]) -> None:
    text = clean_text(raw)
    if text:
        out.append(Item(TEXT, text, look.formats | extra))


def _walk_link(a: Element, look: Look, extra: frozenset[str], ctx: Context, out: list[Item]) -> None:
    raw_href = a.get("href") or ""
    if _COMMENT_REF.match(raw_href):
        # A comment mark ([a]): its thread lives in the comments file, or nowhere.
        if ctx.comments_href:
            href = safe_href(ctx.comments_href)
            if href:
                out.append(Item(TEXT, clean_text(text_of(a)), look.formats | extra | {LINK + href}))
        return
    note = FOOTNOTE_REF.match(raw_href)
    if note and note.group(1) in ctx.footnotes:
        fmts = frozenset(f for f in look.formats | extra if f not in _NOT_AROUND_FOOTNOTES and not f.startswith(LINK))
        out.append(Item(FOOTNOTE, note.group(1), fmts))
        return  # its `[3]` text and `ftnt_ref3` id: Markdown numbers and links footnotes itself
    anchor = a.get("id") or a.get("name")  # exports before about 2015: `<a name="h.x"></a>`
    if anchor and SAFE_ID.match(anchor):
        out.append(Item(ANCHOR, attrs={"id": anchor}))
    href = safe_href(raw_href)
    # The link's own class carries Google's underline and colour: not emphasis, so not read.
    _walk(a, look, extra | {LINK + href} if href else extra, ctx, out)


def split_lines(items: list[Item]) -> list[list[Item]]:
    lines: list[list[Item]] = [[]]
    for item in items:
        if item.kind == BREAK:
            lines.append([])
        else:
            lines[-1].append(item)
    return lines


def is_code_line(line: list[Item]) -> bool:
    """A line whose every visible character is monospace (and that has some)."""
    seen = False
    for item in line:
        if item.kind in (IMAGE, FOOTNOTE):
            return False
        if item.kind == TEXT and item.text.strip():
            if CODE not in item.fmts:
                return False
            seen = True
    return seen


def line_text(line: list[Item]) -> str:
    return "".join(i.text for i in line if i.kind == TEXT)


def _merge_runs(items: list[Item]) -> list[Item]:
    """Join neighbouring texts of the same formats (Google splits runs on colour, size...)."""
    out: list[Item] = []
    for item in items:
        last = out[-1] if out else None
        if last is not None and item.kind == TEXT and last.kind == TEXT and last.fmts == item.fmts:
            out[-1] = Item(TEXT, last.text + item.text, item.fmts)
        else:
            out.append(item)
    return out


def _share_neighbours(items: list[Item]) -> None:
    """Give blanks, breaks and anchors the formats both neighbours share (links excepted)."""
    # The nearest visible text on each side, found in two linear passes (a paragraph of
    # thousands of spans would otherwise be scanned once per blank).
    visible = [item.kind == TEXT and not item.blank for item in items]
    following: list[Item | None] = [None] * len(items)
    nxt = None
    for i in range(len(items) - 1, -1, -1):
        following[i] = nxt
        if visible[i]:
            nxt = items[i]
    prev = None
    for i, item in enumerate(items):
        if visible[i]:
            prev = item
            continue
        if item.kind in (IMAGE, FOOTNOTE):
            continue  # they keep their own formats
        nxt = following[i]
        shared = (prev.fmts & nxt.fmts) if prev and nxt else frozenset()
        # Breaks and anchors carry no links (theirs are empty) and no code span across them.
        item.fmts = frozenset(f for f in shared if not f.startswith(LINK) and (item.kind == TEXT or f != CODE)) | {
            f for f in item.fmts if f.startswith(LINK)}


def build_inline(soup: BeautifulSoup, parent: Tag, items: list[Item], line_start: bool = True) -> None:
    """Append `items` to `parent` as nested semantic tags (strong, em, del, sup, sub, code, a).

    `line_start`: the text begins a Markdown line, so a leading `1.`, `-` or `>` is escaped (not
    after a heading's `#`, where they are text anyway)."""
    if not items:
        return
    items = _merge_runs(items)
    _share_neighbours(items)
    _nest(soup, parent, items, frozenset(), line_start=line_start)


def _nest(soup: BeautifulSoup, parent: Tag, items: list[Item], applied: frozenset[str], line_start: bool) -> bool:
    i, n = 0, len(items)
    while i < n:
        item = items[i]
        todo = item.fmts - applied
        if not todo:
            line_start = _leaf(soup, parent, item, line_start)
            i += 1
            continue
        best, best_end = None, i
        for fmt in sorted(todo, key=lambda f: (_ORDER.get(f, _LINK_ORDER), f)):
            j = i + 1
            while j < n and fmt in items[j].fmts:
                j += 1
            if j > best_end:
                best, best_end = fmt, j
        assert best is not None  # `todo` is never empty here, so some format won
        wrapper = _wrapper(soup, best, items, i, best_end)
        line_start = _nest(soup, wrapper, items[i:best_end], applied | {best}, line_start)
        parent.append(wrapper)
        i = best_end
    return line_start


def _wrapper(soup: BeautifulSoup, fmt: str, items: list[Item], start: int, end: int) -> Tag:
    if fmt.startswith(LINK):
        return soup.new_tag("a", attrs={"href": fmt[len(LINK):]})
    tag = soup.new_tag(fmt)
    if fmt == EM:
        # `_x_` is not emphasis inside a word; `*x*` is.
        inside = "".join(i.text for i in items[start:end] if i.kind == TEXT)
        before = items[start - 1].text[-1:] if start and items[start - 1].kind == TEXT else ""
        after = items[end].text[:1] if end < len(items) and items[end].kind == TEXT else ""
        if (before.isalnum() and not inside[:1].isspace()) or (after.isalnum() and not inside[-1:].isspace()):
            tag["data-sym"] = "*"
    return tag


def _leaf(soup: BeautifulSoup, parent: Tag, item: Item, line_start: bool) -> bool:
    if item.kind == TEXT:
        if line_start and item.text.strip():
            parent.append(LineStart(item.text))
            return False
        parent.append(NavigableString(item.text))
        return line_start
    if item.kind == BREAK:
        parent.append(soup.new_tag("br"))
        return True
    if item.kind == IMAGE:
        parent.append(soup.new_tag("img", attrs={"src": (item.attrs or {})["src"], "alt": item.text}))
        return False
    if item.kind == ANCHOR:
        parent.append(soup.new_tag("a", attrs={"id": (item.attrs or {})["id"]}))
    if item.kind == FOOTNOTE:
        parent.append(soup.new_tag("fnref", attrs={"label": item.text}))
        return False
    return line_start


def iter_text(items: Iterable[Item]) -> Iterator[str]:
    for item in items:
        if item.kind == TEXT:
            yield item.text
        elif item.kind == BREAK:
            yield "\n"
