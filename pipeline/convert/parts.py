"""What the pre-pass takes out of an export's body before its blocks are built: the comment
bodies Google appends (threads live in their own file), the footnotes (they become Markdown
footnotes after the body), and the `Name:`/`Title:`/`Status:` lines at the top of MCP docs.
"""

from __future__ import annotations

import re

from pipeline.convert.inline import Context, items_of, iter_text
from pipeline.convert.styles import Look
from pipeline.convert.tree import Element, classes, tag_of

# `Name: value` lines at the top of MCP docs; keys are one to three words.
HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9]*(?:[ _-][A-Za-z0-9]+){0,2}):[ \t]*(.*)$")
_KNOWN_HEADERS = frozenset({"name", "title", "status"})
_NO_LOOK = Look()
_COMMENT_BODY = re.compile(r"^#cmnt_ref\d+$")
_FOOTNOTE_BODY = re.compile(r"^#ftnt_ref(\d+)$")


def drop_comment_bodies(body: Element) -> None:
    """Comment threads live in their own file: drop the `[a] text` notes Google appends."""
    marks = [a for a in body.iter("a") if _COMMENT_BODY.match(a.get("href") or "")]
    for a in marks:
        holder = a.getparent()
        while holder is not None and tag_of(holder) not in ("div", "p"):
            holder = holder.getparent()
        if holder is not None and tag_of(holder) == "p" and tag_of(holder.getparent()) == "div":
            holder = holder.getparent()
        parent = holder.getparent() if holder is not None else None
        if parent is not None:
            _remove(holder)


def take_footnotes(body: Element) -> list[tuple[str, Element]]:
    """Remove the footnotes Google appends (and the rule above them); return (label, holder).

    Each note is a `<div>` (its paragraphs) opened by `<a href="#ftnt_ref1" id="ftnt1">[1]</a>`;
    the link goes (Markdown links note and mark itself), the text after it loses its leading
    non-breaking space."""
    links: list[tuple[Element, str]] = []
    for a in body.iter("a"):
        m = _FOOTNOTE_BODY.match(a.get("href") or "")
        if m and a.get("id") == f"ftnt{m.group(1)}":
            links.append((a, m.group(1)))
    paras: list[tuple[Element, str, Element]] = []  # link, number, its paragraph
    for a, number in links:
        para = a.getparent()
        while para is not None and tag_of(para) not in ("p", "div", "li", "body"):
            para = para.getparent()
        if para is not None and tag_of(para) != "body":
            paras.append((a, number, para))
    # A note's own div holds one note (all its paragraphs); a div holding several is a wrapper.
    per_div: dict[Element, int] = {}
    for _, _, para in paras:
        outer = para.getparent()
        if tag_of(para) == "p" and outer is not None and tag_of(outer) == "div":
            per_div[outer] = per_div.get(outer, 0) + 1
    found = [(a, number, para, para.getparent() if tag_of(para) == "p" and per_div.get(para.getparent()) == 1 else para)
             for a, number, para in paras]
    notes: list[tuple[str, Element]] = []
    seen: set[str] = set()
    for a, number, para, holder in found:
        _remove(a)
        _lstrip(para)
        label = number
        k = 1
        while label in seen:  # a repeated number (hand-made HTML): keep the text, under its own label
            k += 1
            label = f"{number}-{k}"
        seen.add(label)
        notes.append((label, holder))
    if notes:
        first = notes[0][1]
        while first.getprevious() is None and tag_of(first.getparent()) == "div":
            first = first.getparent()  # notes in a wrapper: the rule sits before the wrapper
        rule = first.getprevious()
        if rule is not None and tag_of(rule) == "hr" and not (rule.tail or "").strip():
            _remove(rule)
        for _, holder in notes:
            if holder.getparent() is not None:
                _remove(holder)
    return notes


def _lstrip(node: Element) -> None:
    """Drop the whitespace (Google writes `&nbsp;`) that opens a block's text (its first run:
    Google writes no text between a paragraph's spans)."""
    for el in node.iter():
        if tag_of(el) == "img":
            return
        if el.text:
            el.text = el.text.lstrip(" \xa0\t\n")
            if el.text:
                return


def _remove(node: Element) -> None:
    """Drop an element but keep its tail text (lxml removes the tail with the element)."""
    parent, tail = node.getparent(), node.tail
    if tail:
        prev = node.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + tail
        else:
            parent.text = (parent.text or "") + tail
    parent.remove(node)


def take_headers(body: Element, ctx: Context) -> dict[str, str]:
    """Remove the `Name:`/`Title:`/`Status:` lines at the top of the body and return them."""
    found: list[tuple[Element, list[tuple[str, str]]]] = []
    if (body.text or "").strip():
        return {}
    for node in body:
        names = classes(node).split()
        if tag_of(node) != "p":
            break
        text = "".join(iter_text(items_of(node, _NO_LOOK, ctx))).strip()
        if not text or "title" in names or "subtitle" in names:
            continue
        matches = [HEADER_LINE.match(line.strip()) for line in text.split("\n") if line.strip()]
        pairs = [(m.group(1), m.group(2).strip()) for m in matches if m is not None]
        if len(pairs) < len(matches):
            break
        if (node.tail or "").strip():
            break
        found.append((node, pairs))
    headers: dict[str, str] = {}
    for _, pairs in found:
        for key, value in pairs:
            headers.setdefault(re.sub(r"[^a-z0-9]+", "_", key.lower()), value)
    if not _KNOWN_HEADERS & headers.keys():
        return {}  # an ordinary first paragraph such as "Note: ..." is body text
    for node, _ in found:
        _remove(node)
    return headers
