"""Headings of a Markdown text, as Python-Markdown (and so the site) sees them: ATX (`## x`) and
setext (`x` over `---`), never a line inside a fenced code block (a `# comment` in a shell block
is code). Pure, no I/O, no docpipe imports: the lab's section finder and render's step checks
both read headings here.
"""

from __future__ import annotations

import re

ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# What converters add to a heading: `<a id="h.x"></a>` (docpipe's), `{#h.x}` (attribute lists).
_ANCHORS = re.compile(r"""<a\s+(?:id|name)=["'][^"'<>]*["']\s*>\s*</a>|\{#[^}]*\}""", re.I)


def strip_anchors(text: str) -> str:
    """A heading's text without the anchors converters put in it (any other markup stays: the
    page shows it as text)."""
    return _ANCHORS.sub("", text)


def headings(lines: list[str]) -> list[tuple[int, int, str, int]]:
    """(line index, level, text, lines the heading spans), skipping fenced code."""
    found: list[tuple[int, int, str, int]] = []
    fence: str | None = None
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m:
            mark = m.group(1)
            if fence is None:
                fence = mark
            elif mark[0] == fence[0] and len(mark) >= len(fence):
                fence = None
            continue
        if fence is not None:
            continue
        atx = ATX.match(line)
        if atx:
            found.append((i, len(atx.group(1)), atx.group(2) or "", 1))
            continue
        if (i + 1 < len(lines) and line.strip() and not line.lstrip().startswith(("-", "*", "|", ">"))
                and SETEXT.match(lines[i + 1])):
            level = 1 if lines[i + 1].strip()[0] == "=" else 2
            found.append((i, level, line.strip(), 2))
    return found


def section_end(heads: list[tuple[int, int, str, int]], n: int, total: int) -> int:
    """The line index where the section of heading `heads[n]` ends: the next heading of the same
    or a higher level, else `total` (the number of lines)."""
    level = heads[n][1]
    return next((idx for idx, lvl, _t, _s in heads[n + 1:] if lvl <= level), total)
