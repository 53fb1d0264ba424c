"""Finding a workshop doc's "Lab desktop" section in its Markdown. Pure, no I/O."""

from __future__ import annotations

import re

_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.S)
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")


def _heading_text(text: str) -> str:
    # Converters append anchors (`<a id="h.x"></a>`, `{#h.x}`) and emphasis to headings.
    text = re.sub(r"<[^>]*>|\{#[^}]*\}", "", text or "")
    text = re.sub(r"[*_`\\]", "", text)
    return " ".join(text.split()).rstrip(":").strip().lower()


def _is_lab_heading(text: str) -> bool:
    return _heading_text(text) == "lab desktop"


def _headings(lines: list[str]) -> list[tuple[int, int, str, int]]:
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
        atx = _ATX.match(line)
        if atx:
            found.append((i, len(atx.group(1)), atx.group(2) or "", 1))
            continue
        if (i + 1 < len(lines) and line.strip() and not line.lstrip().startswith(("-", "*", "|", ">"))
                and _SETEXT.match(lines[i + 1])):
            level = 1 if lines[i + 1].strip()[0] == "=" else 2
            found.append((i, level, line.strip(), 2))
    return found


def extract_lab_section(markdown: str) -> str | None:
    """The body of the first "Lab desktop" heading, up to the next heading of the same or a
    higher level; None when the doc has no such heading."""
    text = _FRONT_MATTER.sub("", markdown.replace("\r\n", "\n").replace("\r", "\n"), count=1)
    lines = text.split("\n")
    heads = _headings(lines)
    for n, (idx, level, title, span) in enumerate(heads):
        if not _is_lab_heading(title):
            continue
        end = len(lines)
        for idx2, level2, _t, _s in heads[n + 1:]:
            if level2 <= level:
                end = idx2
                break
        return "\n".join(lines[idx + span:end]).strip("\n") + "\n"
    return None
