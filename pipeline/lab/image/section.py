"""Finding a workshop doc's "Lab desktop" section in its Markdown. Pure, no I/O."""

from __future__ import annotations

import re

from pipeline.headings import FENCE, headings, section_end

__all__ = ["FENCE", "extract_lab_section"]  # FENCE: parse.py reads code blocks with the same rule

_FRONT_MATTER = re.compile(r"\A---\n.*?\n(?:---|\.\.\.)\n", re.S)


def _heading_text(text: str) -> str:
    # Converters append anchors (`<a id="h.x"></a>`, `{#h.x}`) and emphasis to headings.
    text = re.sub(r"<[^>]*>|\{#[^}]*\}", "", text or "")
    text = re.sub(r"[*_`\\]", "", text)
    return " ".join(text.split()).rstrip(":").strip().lower()


def _is_lab_heading(text: str) -> bool:
    return _heading_text(text) == "lab desktop"


def extract_lab_section(markdown: str) -> str | None:
    """The body of the first "Lab desktop" heading, up to the next heading of the same or a
    higher level; None when the doc has no such heading."""
    text = _FRONT_MATTER.sub("", markdown.replace("\r\n", "\n").replace("\r", "\n"), count=1)
    lines = text.split("\n")
    heads = headings(lines)
    for n, (idx, _level, title, span) in enumerate(heads):
        if not _is_lab_heading(title):
            continue
        end = section_end(heads, n, len(lines))
        return "\n".join(lines[idx + span:end]).strip("\n") + "\n"
    return None
