"""The pre-pass: Google's export HTML -> a small semantic HTML tree markdownify can convert.

Google's export is flat: list nesting lives only in `lst-kix_<id>-<level>` class names (in the
oldest exports, only in each item's `margin-left`), a list's type in its CSS more reliably than in
its tag, code is monospace text (or text between U+EC03 and U+EC02), tables have a malformed
`<thead>`, comment and footnote bodies sit at the end. This module resolves all of that into p,
hN, ul/ol/li, pre, table, hr, footnote and the inline tags of `inline.py`; nothing from the input
but text and checked URLs survives.

Document tabs (2024+): a multi-tab doc exports as one body in which each tab opens with its title
as a Title-styled paragraph (`<p class="... title">`). Each tab becomes a section of the one
Markdown file, headed by the tab's title one level above the tabs' own headings (which move one
level down when they use Heading 1). Sections rather than a page per tab: a Doc is one file in
the archive and one page on the site (Contract 2), so its history, comments, Drive links and
`#h.` heading links (which keep their ids, wherever they sit) all still point at one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, Tag
from bs4.element import NavigableString

from pipeline.convert.inline import (
    ANCHOR,
    BREAK,
    CODE_BLOCK_END,
    CODE_BLOCK_START,
    FOOTNOTE,
    IMAGE,
    SAFE_ID,
    TEXT,
    Context,
    Item,
    build_inline,
    clean_text,
    is_code_line,
    items_of,
    iter_text,
    line_text,
    split_lines,
)
from pipeline.convert.parts import drop_comment_bodies, take_footnotes, take_headers
from pipeline.convert.styles import STRONG, Look, StyleSheet
from pipeline.convert.tree import Element, FastTag, child_tags, classes, first_descendant, is_blank, parse, tag_of, text_of

_LIST_CLASS = re.compile(r"lst-kix_(\S+)-(\d+)")
_HEADING = re.compile(r"^h([1-6])$")
_BLOCK_TAGS = frozenset({"p", "ul", "ol", "table", "div", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "blockquote", "pre"})
_NO_LOOK = Look()
# Google indents list level N's text by 36pt * (N + 1); used when the export's CSS says nothing.
_LEVEL_INDENT = 36.0
# Indents are floats from CSS (`35.99pt` happens after copy/paste): this much counts as equal.
_INDENT_SLACK = 1.0


@dataclass
class Document:
    """The semantic tree plus what the pre-pass learned about the doc."""

    soup: BeautifulSoup
    headers: dict[str, str] = field(default_factory=dict)
    title: str | None = None
    warnings: list[str] = field(default_factory=list)


def restructure(html: str, images: dict[str, str] | None, comments_href: str | None) -> Document:
    root = parse(html)
    head = root.find("head")
    styles = [text_of(s) for s in root.iter("style")]
    sheet = StyleSheet.parse("\n".join(styles))
    body = root.find("body")
    if body is None:
        body = root
    if "#cmnt_ref" in html:
        drop_comment_bodies(body)
    notes = take_footnotes(body) if "#ftnt_ref" in html else []
    ctx = Context(sheet, images, comments_href, frozenset(label for label, _ in notes))
    out = BeautifulSoup("", "html.parser", element_classes={Tag: FastTag})
    doc = Document(out)
    doc.headers = take_headers(body, ctx)
    builder = _Builder(ctx, out)
    builder.find_tabs(body)
    builder.blocks(body, out)
    builder.finish(out)
    for label, holder in notes:
        note = out.new_tag("footnote", attrs={"label": label})
        sub = _Builder(ctx, out, code_blocks=False)
        sub.block(holder, note)
        sub.finish(note)
        if note.contents:
            out.append(note)
    title = head.find("title") if head is not None else None
    doc.title = builder.title or (clean_text(text_of(title)).strip() if title is not None else None) or None
    if sheet.undefined:
        names = ", ".join(sorted(sheet.undefined, key=lambda n: (len(n), n)))
        doc.warnings.append(f"the document uses classes its stylesheet does not define ({names}); their styling is lost")
    return doc


@dataclass
class _ListLevel:
    level: int
    list_id: str
    tag: Tag
    indent: float = 0.0  # where its items' text starts, in points


class _Builder:
    """Walks Google's blocks in order, appending semantic blocks; owns the open code block."""

    def __init__(self, ctx: Context, out: BeautifulSoup, code_blocks: bool = True) -> None:
        self.ctx = ctx
        self.out = out
        # False in footnotes: a fence cannot open inside a note (Python-Markdown finds fences
        # before it parses notes), so monospace lines there stay inline code.
        self.code_blocks = code_blocks
        self.title: str | None = None
        self.code: list[str] | None = None  # lines of the open code block
        self.code_parent: Tag | None = None
        self.code_blanks = 0  # blank monospace paragraphs held until the run goes on
        self.in_marker = False  # inside Google's U+EC03 ... U+EC02 code block
        self.anchors: list[Item] = []  # bookmarks waiting for the next block
        self.lists: list[_ListLevel] = []
        self.tabs: set[Element] = set()  # the tab-title paragraphs (lxml keeps these proxies alive)
        self.tab_level = 1  # the heading level of a tab's title
        self.heading_shift = 0  # how far the tabs' own headings move down

    def find_tabs(self, body: Element) -> None:
        """A doc with tabs: two or more Title paragraphs in the body, each opening a tab."""
        titles = [n for n in body if tag_of(n) == "p" and "title" in classes(n).split() and not is_blank(n)]
        if len(titles) < 2:
            return
        levels = [int(tag[1]) for n in titles[0].itersiblings() if (tag := tag_of(n)) and _HEADING.match(tag) and not is_blank(n)]
        top = min(levels, default=2)
        self.tab_level = max(1, top - 1)
        self.heading_shift = self.tab_level + 1 - top if top <= self.tab_level else 0
        self.tabs = set(titles)

    # ------------------------------------------------------------ blocks
    def blocks(self, container: Element, parent: Tag) -> None:
        self.stray(container.text, parent)
        for node in list(container):
            self.block(node, parent)
            self.stray(node.tail, parent)

    def stray(self, text: str | None, parent: Tag) -> None:
        """Text loose between blocks (never in Google's exports; possible in hand-made HTML)."""
        if text and text.strip():
            self.paragraph_items([Item(TEXT, clean_text(text))], parent, _NO_LOOK)

    def block(self, node: Element, parent: Tag) -> None:
        name = tag_of(node)
        if name is None:
            return
        if name in ("ul", "ol"):
            self.list_block(node, parent)
            return
        if name == "p":
            if node in self.tabs:
                self.lists = []
                self.heading(node, self.tab_level, parent, named=".title")
                return
            if self.lists and not is_blank(node):
                item = self.continued_item(node)
                if item is not None:
                    self.paragraph(node, parent, item)
                    return
                self.lists = []
            self.paragraph(node, parent)
            return
        self.lists = []
        if name == "li":
            self.paragraph(node, parent)
        elif _HEADING.match(name):
            self.heading(node, min(6, int(name[1]) + self.heading_shift), parent, named=name)
        elif name == "table":
            self.table(node, parent)
        elif name == "pre":  # not in Google's exports; hand-made HTML
            self.flush_code()
            self.add_code(clean_text(text_of(node)).strip("\n").split("\n"), parent)
            self.flush_code()
        elif name == "hr":
            style = (node.get("style") or "").replace(" ", "")
            if "display:none" not in style:  # Google's page breaks are hidden rules
                self.emit(parent, self.out.new_tag("hr"))
        elif name == "a" and is_blank(node):
            anchor = node.get("id") or node.get("name")
            if anchor and SAFE_ID.match(anchor):
                self.anchors.append(Item(ANCHOR, attrs={"id": anchor}))
        elif name in ("script", "style", "head", "meta", "title", "link"):
            return
        elif first_descendant(node, _BLOCK_TAGS) is not None:
            self.blocks(node, parent)
        else:
            self.paragraph(node, parent)

    def finish(self, parent: Tag) -> None:
        """Close the open code block; bookmarks with no block after them still get a place."""
        self.flush_code()
        if self.anchors:
            para = self.out.new_tag("p")
            build_inline(self.out, para, self.anchors)
            parent.append(para)
            self.anchors = []

    def emit(self, parent: Tag, tag: Tag) -> None:
        self.flush_code()
        parent.append(tag)

    # ------------------------------------------------------------ code
    def flush_code(self) -> None:
        if self.code is not None and self.code_parent is not None:
            lines = self.code
            while lines and not lines[-1].strip():
                lines.pop()
            if lines:
                pre = self.out.new_tag("pre")
                pre.append(NavigableString("\n".join(line.rstrip() for line in lines)))
                self.code_parent.append(pre)
        self.code, self.code_parent, self.code_blanks = None, None, 0

    def add_code(self, lines: list[str], parent: Tag) -> None:
        if self.code is None or self.code_parent is not parent:
            self.flush_code()
            self.code, self.code_parent = [], parent
        else:
            self.code.extend([""] * self.code_blanks)
        self.code_blanks = 0
        self.code.extend(lines)

    # ------------------------------------------------------------ paragraphs
    def look(self, node: Element) -> Look:
        return self.ctx.sheet.look(classes(node), node.get("style") or "")

    def paragraph(self, node: Element, parent: Tag, item: Tag | None = None) -> None:
        """`item`: the list item this paragraph continues (its indent matches the item's text)."""
        look = self.look(node)
        if look.hidden:
            return
        raw = text_of(node)
        items = items_of(node, look, self.ctx)
        if self.title is None and "title" in classes(node).split():
            self.title = "".join(iter_text(items)).strip() or None
        if item is not None:
            # Code stays a top-level fence: Python-Markdown (MkDocs) cannot fence inside a list
            # item; the list's numbering carries on after it (KeepListNumbers).
            if CODE_BLOCK_START in raw or self.in_marker or all(is_code_line(line) for line in split_lines(items)):
                self.lists = []
            else:
                parent = item
        if CODE_BLOCK_START in raw or self.in_marker:
            self.marker_paragraph(raw, items, parent)
            return
        self.paragraph_items(items, parent, look)

    def marker_paragraph(self, raw: str, items: list[Item], parent: Tag) -> None:
        """Inside Google's code block every paragraph is a code line, whatever its font."""
        if CODE_BLOCK_START in raw and not self.in_marker:
            self.flush_code()
            self.in_marker = True
            self.code, self.code_parent = [], parent
        text = "".join(iter_text(items))
        ends = CODE_BLOCK_END in raw
        if text.strip() or not ends:
            assert self.code is not None
            self.code.extend(text.split("\n"))
        if ends:
            self.in_marker = False
            self.flush_code()

    def paragraph_items(self, items: list[Item], parent: Tag, look: Look, in_li: bool = False) -> None:
        visible = any(i.kind in (IMAGE, FOOTNOTE) or (i.kind == TEXT and i.text.strip()) for i in items)
        if not visible:
            # An empty monospace paragraph inside a run of code is a blank line of that code.
            if self.code is not None and (look.mono or any("code" in i.fmts for i in items)):
                self.code_blanks += 1
            elif not any(i.kind == ANCHOR for i in items):
                self.flush_code()
            self.anchors.extend(i for i in items if i.kind == ANCHOR)
            return
        lines = split_lines(items)
        while lines and not any(i.kind != BREAK and (i.kind != TEXT or i.text.strip()) for i in lines[-1]):
            lines.pop()  # a trailing <br> adds nothing
        kinds = [is_code_line(line) for line in lines]
        if (in_li and len(lines) == 1 and kinds[0]) or not self.code_blocks:
            kinds = [False] * len(kinds)  # a one-line code list item reads best as inline code
        start = 0
        for end in range(1, len(lines) + 1):
            if end < len(lines) and kinds[end] == kinds[start]:
                continue
            segment = lines[start:end]
            if kinds[start]:
                self.add_code([line_text(line) for line in segment], parent)
            else:
                # A list item's only paragraph goes straight into the <li>: a tight list.
                alone = in_li and start == 0 and end == len(lines)
                para = parent if alone else self.out.new_tag("p")
                flat: list[Item] = self.anchors
                self.anchors = []
                for k, line in enumerate(segment):
                    if k:
                        flat.append(Item(BREAK))
                    flat.extend(line)
                build_inline(self.out, para, flat)
                if not alone:
                    self.emit(parent, para)
            start = end

    def heading(self, node: Element, level: int, parent: Tag, named: str) -> None:
        """`named`: the paragraph style (`h2`, `.title`) whose CSS the heading's text starts from."""
        items = items_of(node, self.look(node), self.ctx)
        if not any(i.kind == TEXT and i.text.strip() for i in items):
            return  # an empty heading would render as a stray `#`
        items = [i if i.kind != BREAK else Item(TEXT, " ") for i in items]
        if self.ctx.sheet.named_bold(named, classes(node), node.get("style") or ""):
            # The style is bold, so the export repeats that bold on every run (older exports);
            # a Markdown heading is bold already and `## **1.1 Title**` says it twice.
            items = [Item(i.kind, i.text, i.fmts - {STRONG}, i.attrs) if STRONG in i.fmts else i for i in items]
        # Anchors go last (`## Title<a id="h.x"></a>`), wherever the export put them: older exports
        # open a heading with `<a name="h.x"></a>`.
        marks = self.anchors + [i for i in items if i.kind == ANCHOR]
        items = [i for i in items if i.kind != ANCHOR]
        tag = self.out.new_tag(f"h{level}")
        build_inline(self.out, tag, items + marks, line_start=False)
        self.anchors = []
        anchor = node.get("id")
        if anchor and SAFE_ID.match(anchor):  # keeps `#h.xxx` links working
            tag.append(self.out.new_tag("a", attrs={"id": anchor}))
        self.emit(parent, tag)

    # ------------------------------------------------------------ lists
    def continued_item(self, node: Element) -> Tag | None:
        """The open list item whose text an indented paragraph lines up with, if any.

        Google exports a step's second paragraph as a `<p>` between two `<ol>` fragments, indented
        (`margin-left`) like the item's text; the deepest level indented no further is the one it
        continues. Deeper levels close: a later sub-list starts a new one after the paragraph."""
        indent = self.ctx.sheet.indent(classes(node), node.get("style") or "")
        if indent <= 0:
            return None
        for depth in range(len(self.lists) - 1, -1, -1):
            level = self.lists[depth]
            if level.indent <= indent + _INDENT_SLACK:
                last = level.tag.contents[-1] if level.tag.contents else None
                if not isinstance(last, Tag) or last.name != "li":
                    return None
                del self.lists[depth + 1:]
                return last
        return None

    def list_block(self, node: Element, parent: Tag) -> None:
        """One `<ul>`/`<ol>` of the export: its items go into the open list structure.

        Type: the CSS Google drew the list with (`StyleSheet.list_kind`), else the tag. Level: the class's
        `lst-kix_<id>-<level>`; lists without one (exports before about 2013, hand-made HTML)
        nest by each item's indent against the open levels' indents."""
        self.flush_code()
        cls = classes(node)
        m = _LIST_CLASS.search(cls)
        kind = self.ctx.sheet.list_kind(cls) or tag_of(node) or "ul"  # only <ul>/<ol> nodes come here
        start = node.get("start") if tag_of(node) == "ol" and kind == "ol" else None
        own_indent = self.ctx.sheet.indent(cls, node.get("style") or "")
        if not m and own_indent <= 0 and not any(
                self.ctx.sheet.indent(classes(li), li.get("style") or "") > 0 for li in child_tags(node, ("li",))):
            self.lists = []  # hand-made HTML: no level anywhere, so each list stands alone
        for li in list(child_tags(node, ("li",))):
            indent = self.ctx.sheet.indent(classes(li), li.get("style") or "") or own_indent
            if m:
                level, list_id = int(m.group(2)), m.group(1)
            else:
                level, list_id = self.level_by_indent(indent), ""
            target = self.list_at(level, list_id, kind, start, parent)
            level_info = self.lists[-1]
            level_info.indent = indent if indent > 0 else _LEVEL_INDENT * (level + 1)
            item = self.out.new_tag("li")
            target.append(item)
            saved, self.lists = self.lists, []
            if first_descendant(li, _BLOCK_TAGS) is not None:
                self.blocks(li, item)
            else:
                self.paragraph_items(items_of(li, self.look(li), self.ctx), item, self.look(li), in_li=True)
            self.flush_code()
            self.lists = saved

    def level_by_indent(self, indent: float) -> int:
        """An item's level from how far its text is indented: the level of the open list indented
        the same, or one deeper than the deepest one indented less."""
        if indent <= 0:
            return 0
        for open_level in reversed(self.lists):
            if abs(open_level.indent - indent) <= _INDENT_SLACK:
                return open_level.level
            if open_level.indent < indent:
                return open_level.level + 1
        return 0

    def list_at(self, level: int, list_id: str, kind: str, start: str | None, parent: Tag) -> Tag:
        """The list tag an item at `level` goes in: the open one, or a new one nested in the
        last item of the level above (closing deeper levels and other lists at this level)."""
        while self.lists and (self.lists[-1].level > level or (
                self.lists[-1].level == level and (self.lists[-1].list_id != list_id or self.lists[-1].tag.name != kind))):
            self.lists.pop()
        if self.lists and self.lists[-1].level == level:
            return self.lists[-1].tag
        target = self.out.new_tag(kind)
        if kind == "ol" and start and start.isdigit() and int(start) != 1:
            target["start"] = start
        holder = parent
        if self.lists:
            items = [c for c in self.lists[-1].tag.children if isinstance(c, Tag) and c.name == "li"]
            if items:
                holder = items[-1]
            else:
                holder = self.out.new_tag("li")
                self.lists[-1].tag.append(holder)
        holder.append(target)
        self.lists.append(_ListLevel(level, list_id, target))
        return target

    # ------------------------------------------------------------ tables
    def table(self, node: Element, parent: Tag) -> None:
        rows = _rows(node)
        if not rows:
            return
        table = self.out.new_tag("table")
        simple = True
        for tr in rows:
            row = self.out.new_tag("tr")
            for cell in list(child_tags(tr, ("td", "th"))):
                td = self.out.new_tag("td")
                sub = _Builder(self.ctx, self.out)
                sub.blocks(cell, td)
                sub.finish(td)
                for attr in ("colspan", "rowspan"):
                    value = cell.get(attr)
                    if value and value.isdigit() and int(value) > 1:
                        td[attr] = value
                        simple = False
                blocks = [c for c in td.children if isinstance(c, Tag)]
                if len(blocks) > 1 or (blocks and blocks[0].name != "p"):
                    simple = False
                first = first_descendant(cell, frozenset({"p"}))
                align = self.look(first).align if first is not None else None
                if align in ("right", "center"):
                    td["data-align"] = align
                row.append(td)
            table.append(row)
        if simple:
            for trow in [c for c in table.children if isinstance(c, Tag)]:
                for cell_tag in [c for c in trow.children if isinstance(c, Tag)]:
                    for p in [c for c in cell_tag.children if isinstance(c, Tag) and c.name == "p"]:
                        p.unwrap()
        else:
            table["data-html"] = "1"
        self.emit(parent, table)


def _rows(table: Element) -> list[Element]:
    """The table's own rows, wherever Google put them (its <thead> wraps the whole body)."""
    rows: list[Element] = []
    for child in child_tags(table):
        if tag_of(child) == "tr":
            rows.append(child)
        elif tag_of(child) in ("thead", "tbody", "tfoot"):
            rows.extend(_rows(child))
    return rows
