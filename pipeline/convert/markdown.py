"""markdownify, taught the semantic tree of `blocks.py`: escaping, anchors, fences, GFM tables.

Doc text is untrusted. Every character that could start Markdown or HTML syntax is escaped in a
form both CommonMark and Python-Markdown (MkDocs) read as text: `<` becomes `&lt;` (Python-Markdown
does not honour `\\<`), so text that looks like `<script>` never becomes a tag.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Any

from bs4 import Tag
from bs4.element import NavigableString, PageElement
from markdownify import ATX, BACKSLASH, MarkdownConverter

from pipeline.convert.inline import LineStart

# `_` between two letters or digits is never emphasis (CommonMark, Python-Markdown): `snake_case`
# stays readable; everywhere else it is escaped like the other inline markers.
_INLINE_SPECIALS = re.compile(r"([\\`*\[\]]|_(?![^\W_])|(?<![^\W_])_)")  # [^\W_]: a letter or digit
_ANY_SPECIAL = re.compile(r"[\\`*_\[\]&<~|]")
_ENTITY_LIKE = re.compile(r"&(?=#?[A-Za-z0-9]+;)")
_TILDES = re.compile(r"~(?=~)|(?<=~)~")
_LINE_START = re.compile(r"^(\s*)(#|>|[-+]+(?=\s|$)|=+\s*$|\d{1,9}(?=[.)](?:\s|$)))")
_WS = re.compile(r"[\t \r\n]+")
_TABLE_RULE = re.compile(r"^[\s|:-]*-[\s|:-]*$")
_BACKTICKS = re.compile(r"`+")
# Table assembly markers: control characters the pre-pass strips from doc text.
_CELL, _ROW = "\x01", "\x02"
_HTML_TAGS = frozenset({"fnref", "p", "br", "strong", "em", "del", "sup", "sub", "code", "pre", "a", "img",
                        "ul", "ol", "li", "table", "tr", "td", "h1", "h2", "h3", "h4", "h5", "h6", "hr"})
_HTML_ATTRS = frozenset({"href", "src", "alt", "id", "start", "colspan", "rowspan"})
# Blocks whose text runs begin and end a Markdown line.
_TEXT_BLOCKS = frozenset({"p", "li", "td", "h1", "h2", "h3", "h4", "h5", "h6"})


def escape_text(text: str, line_start: bool, in_table: bool) -> str:
    if _ANY_SPECIAL.search(text):  # most runs of prose have none: skip four passes
        text = _INLINE_SPECIALS.sub(r"\\\1", text)
        text = _ENTITY_LIKE.sub("&amp;", text)
        text = text.replace("<", "&lt;")
        # An entity, not `\\~`: Python-Markdown (MkDocs) shows the backslash of escapes it lacks.
        text = _TILDES.sub("&#126;", text)
        if in_table:
            text = text.replace("|", r"\|")
    if line_start:
        if not in_table and "|" in text and _TABLE_RULE.match(text):
            text = text.replace("|", r"\|")  # a line like `--|--` would make the line above a table
        m = _LINE_START.match(text)
        if m:
            marker = m.group(2)
            if marker[0] == "=":
                text = text[: m.start(2)] + "&#61;" + text[m.start(2) + 1:]
            elif marker[0].isdigit():
                # `1.` -> `1\.`: the digits stay, the dot stops being a list marker
                end = m.end(2)
                text = text[:end] + "\\" + text[end:]
            else:
                text = text[: m.start(2)] + "\\" + text[m.start(2):]
    return text


def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


class GDocConverter(MarkdownConverter):
    """Converts the pre-pass's semantic tree (not raw Google HTML) to GitHub-flavoured Markdown."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("heading_style", ATX)
        options.setdefault("bullets", "-")
        options.setdefault("newline_style", BACKSLASH)
        options.setdefault("sup_symbol", "<sup>")
        options.setdefault("sub_symbol", "<sub>")
        options.setdefault("autolinks", False)
        options.setdefault("escape_asterisks", False)
        options.setdefault("escape_underscores", False)
        options.setdefault("escape_misc", False)
        super().__init__(**options)

    def process_text(self, el: NavigableString, parent_tags: set[str] | None = None) -> str:
        parent_tags = parent_tags or set()
        text = str(el)
        if "pre" in parent_tags:
            return text
        text = _WS.sub(" ", text)
        if "_noformat" not in parent_tags:
            text = escape_text(text, isinstance(el, LineStart), "td" in parent_tags)
        # Whitespace at the edges of a block means nothing (markdownify's rule, kept).
        parent = el.parent
        if parent is not None and parent.name in _TEXT_BLOCKS:
            if el.previous_sibling is None:
                text = text.lstrip(" ")
            if el.next_sibling is None:
                text = text.rstrip(" ")
        return text

    def convert_li(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        out: str = super().convert_li(el, text, parent_tags)  # type: ignore[misc]  # markdownify is untyped
        # An item holding paragraphs needs a blank line before the next item, or Python-Markdown
        # reads the next marker as a lazy continuation line of the item's last paragraph.
        # (A paragraph in a nested item counts: that item's last line is just as lazy.)
        if el.next_sibling is not None and el.find("p") is not None:
            out += "\n"
        return out

    def convert_em(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        symbol = el.get("data-sym") or "_"
        if "_noformat" in parent_tags:
            return text
        stripped = text.strip()
        if not stripped:
            return text
        lead = " " if text[:1].isspace() else ""
        trail = " " if text[-1:].isspace() else ""
        return f"{lead}{symbol}{stripped}{symbol}{trail}"

    def convert_a(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        href = el.get("href")
        if not href:
            anchor = el.get("id")
            return f'<a id="{html.escape(str(anchor), quote=True)}"></a>' if anchor else text
        if "_noformat" in parent_tags:
            return text
        lead = " " if text[:1] == " " else ""
        trail = " " if text[-1:] == " " else ""
        text = text.strip()
        if not text:
            return lead or trail
        return f"{lead}[{text}]({href}){trail}"

    # ------------------------------------------------------------ footnotes
    def convert_fnref(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return f"[^{el.get('label')}]"

    def convert_footnote(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        """`[^1]: first paragraph`, the note's later lines indented four spaces (its blocks)."""
        lines = text.strip("\n").split("\n")
        body = "\n".join([lines[0]] + [("    " + line) if line.strip() else "" for line in lines[1:]])
        return f"\n\n[^{el.get('label')}]: {body}\n\n"

    def convert_img(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        alt = escape_text(str(el.get("alt") or ""), False, "td" in parent_tags)
        return f"![{alt}]({el.get('src')})"

    def convert_pre(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if not text:
            return ""
        longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
        fence = "`" * max(3, longest + 1)
        return f"\n\n{fence}\n{text}\n{fence}\n\n"

    # ------------------------------------------------------------ tables
    def convert_td(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return _CELL + " ".join(text.split("\n")).strip()

    convert_th = convert_td

    def convert_tr(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        return _ROW + text

    def convert_table(self, el: Tag, text: str, parent_tags: set[str]) -> str:
        if el.get("data-html"):
            # One line: a blank line would end the HTML block; &#10; keeps a <pre>'s line breaks.
            return "\n\n" + _to_html(el).replace("\n", "&#10;") + "\n\n"
        rows = [row.split(_CELL)[1:] for row in text.split(_ROW)[1:]]
        tags = [[td for td in tr.children if isinstance(td, Tag)] for tr in el.children if isinstance(tr, Tag)]
        width = max(len(r) for r in rows)
        rows = [r + [""] * (width - len(r)) for r in rows]
        aligns = []
        for col in range(width):
            votes: dict[str, int] = {}
            for tr in tags:
                if col < len(tr):
                    a = str(tr[col].get("data-align") or "left")
                    votes[a] = votes.get(a, 0) + 1
            aligns.append(max(sorted(votes), key=lambda a: votes[a]) if votes else "left")
        widths = [max(3, *(display_width(r[c]) for r in rows)) for c in range(width)]

        def cell(value: str, col: int) -> str:
            pad = widths[col] - display_width(value)
            if aligns[col] == "right":
                return " " * pad + value
            if aligns[col] == "center":
                return " " * ((pad + 1) // 2) + value + " " * (pad // 2)
            return value + " " * pad

        def rule(col: int) -> str:
            w = widths[col]
            return {"right": "-" * (w - 1) + ":", "center": ":" + "-" * (w - 2) + ":"}.get(aligns[col], "-" * w)

        lines = ["| " + " | ".join(cell(v, c) for c, v in enumerate(r)) + " |" for r in rows]
        lines.insert(1, "| " + " | ".join(rule(c) for c in range(width)) + " |")
        return "\n\n" + "\n".join(lines) + "\n\n"


def _to_html(node: PageElement) -> str:
    """A table whose cells hold blocks, as HTML: only our own tags and checked attributes."""
    if isinstance(node, NavigableString):
        return html.escape(str(node), quote=False)
    if not isinstance(node, Tag):
        return ""
    inner = "".join(_to_html(c) for c in node.children)
    if node.name not in _HTML_TAGS:
        return inner
    attrs = "".join(f' {k}="{html.escape(str(v), quote=True)}"' for k, v in sorted(node.attrs.items()) if k in _HTML_ATTRS)
    if node.name in ("br", "hr", "img"):
        return f"<{node.name}{attrs}>"
    if node.name == "fnref":
        # Raw HTML is not Markdown: no `[^1]` here. The site's footnotes are `#fn:<label>`.
        label = html.escape(str(node.get("label")), quote=True)
        return f'<sup><a href="#fn:{label}">{label}</a></sup>'

    if node.name == "a" and not node.get("href"):
        return f"<a{attrs}></a>{inner}"
    return f"<{node.name}{attrs}>{inner}</{node.name}>"
