"""The comments file (ARCHITECTURE.md, Contract 2): `<slug>.comments.md` next to each doc.

Written by replay (`render_comments`) and read back by render (`parse_threads`), both here, so the
format has one owner. Comment text comes from Drive and is untrusted: it is escaped so it stays
text, and it can neither fake a thread heading nor front matter. A thread is headed by what a
reader recognises (the quoted text and the comment's first words), never by its Drive id.
"""

from __future__ import annotations

import html
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.archive import Key

# The last ` · <state>` of a `## ` line is the writer's: comment words before it cannot move it.
_HEADING = re.compile(r"^## (.*) · (open|resolved|deleted)\s*$")
_BYLINE = re.compile(r"^\*\*(.+?)\*\* · (\d{4}-\d\d-\d\d \d\d:\d\d UTC)\s*$")
_URL = re.compile(r"https?://[^\s<>\"'`\[\]{}|\\^]+")
_LINK = re.compile(r"\[([^\]]*)\]\((https?://[^)\s]+)\)")
_MD_INLINE = re.compile(r"([\\`*_\[\]|#])")
QUOTE_WORDS, FIRST_WORDS = 10, 8


@dataclass(frozen=True)
class Thread:
    """An open thread as render lists it on its doc's page."""

    heading: str
    author: str
    time: str
    quote: str
    text: str
    replies: int


def reply_kind(reply: Mapping[str, Any]) -> str:
    return {"resolve": "resolve", "reopen": "reopen"}.get(str(reply.get("action")), "reply")


def one_line(text: Any) -> str:
    return " ".join(str(text or "").split())


def when(value: Any) -> str:
    """A Drive time as `YYYY-MM-DD HH:MM UTC` (as the comments file shows it)."""
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return "unknown time"
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _text(text: Any) -> str:
    """Comment text is plain text in Drive; escaped so it stays text when rendered as Markdown."""
    return html.escape(str(text or ""), quote=False)


def _linked(text: Any) -> str:
    """Plain text with every http(s) URL a Markdown link; the rest escaped as `_text` does."""
    raw = str(text or "")
    out, pos = [], 0
    for m in _URL.finditer(raw):
        url = m.group(0)
        # Sentence punctuation after a URL is not part of it (nor an unbalanced closing bracket).
        while url and (url[-1] in ".,;:!?" or (url[-1] == ")" and url.count("(") < url.count(")"))):
            url = url[:-1]
        if len(url) <= len("https://"):
            continue
        start = m.start()
        out.append(_text(raw[pos:start]))
        label = _MD_INLINE.sub(r"\\\1", url)
        target = url.replace("(", "%28").replace(")", "%29")
        out.append(f"[{label}]({target})")
        pos = start + len(url)
    out.append(_text(raw[pos:]))
    return "".join(out)


def _block(text: str) -> str:
    """Comment text as Markdown that cannot fake a thread heading or front matter."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out = []
    for line in lines:
        stripped = line.lstrip()
        if stripped.startswith(("#", "---", "===")):
            line = line[: len(line) - len(stripped)] + "\\" + stripped
        out.append(line)
    return "\n".join(out).strip("\n")


def _author(resource: Mapping[str, Any]) -> str:
    return _text(one_line((resource.get("author") or {}).get("displayName"))).replace("*", "\\*") or "Unknown"


def _words(text: Any, count: int) -> str:
    words = one_line(text).split(" ")
    return " ".join(words[:count]) + (" …" if len(words) > count else "")


def heading(comment: Mapping[str, Any], deleted: bool) -> str:
    """`“quoted text” — first words`: one escaped line, no Drive id."""
    quote = _words((comment.get("quotedFileContent") or {}).get("value"), QUOTE_WORDS)
    words = "deleted comment" if deleted else _words(comment.get("content"), FIRST_WORDS) or "(no text)"
    title = f"“{quote}” — {words}" if quote else words
    return _MD_INLINE.sub(r"\\\1", _text(title))


def render_comments(title: str, comments: Sequence[Mapping[str, Any]], applied: Collection[Key], file_id: str) -> str:
    """The comments file for the comment events in `applied` (Contract 2 format)."""
    parts = [f"# Comments on {_text(one_line(title)) or 'Untitled'}\n"]
    for comment in comments:
        cid = comment["id"]
        if ("comment", file_id, cid, "", "") not in applied:
            continue
        state = "open"
        reply_lines = []
        for reply in comment.get("replies") or []:
            rid = reply["id"]
            kind = reply_kind(reply)
            if (kind, file_id, cid, rid, "") not in applied:
                continue
            if kind != "reply":
                state = "resolved" if kind == "resolve" else "open"
            deleted = ("delete", file_id, cid, rid, "") in applied
            content = "*deleted*" if deleted else _linked(one_line(reply.get("content")))
            label = {"resolve": "resolved", "reopen": "reopened", "reply": "reply"}[kind]
            tail = f"{label}: {content}" if content else label
            reply_lines.append(f"- **{_author(reply)}** · {when(reply.get('createdTime'))} · {tail}")
        if ("resolve", file_id, cid, "", "") in applied:
            state = "resolved"
        deleted = ("delete", file_id, cid, "", "") in applied
        if deleted:
            state = "deleted"
        section = [f"## {heading(comment, deleted)} · {state}\n"]
        quoted = ((comment.get("quotedFileContent") or {}).get("value") or "").strip()
        if quoted:
            section.append("\n".join("> " + _text(line) for line in quoted.replace("\r", "").split("\n")) + "\n")
        section.append(f"**{_author(comment)}** · {when(comment.get('createdTime'))}\n")
        body = _block(_linked(comment.get("content")))
        section.append((body if body and not deleted else "*deleted*" if deleted else "*(no text)*") + "\n")
        if reply_lines:
            section.append("\n".join(reply_lines) + "\n")
        parts.append("\n".join(section))
    return "\n".join(parts)


def parse_threads(text: str) -> list[Thread]:
    """The open threads of a comments file, each with its first comment (links as their text)."""
    threads: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for line in text.splitlines():
        head = _HEADING.match(line)
        if head:
            current = {"heading": head.group(1), "state": head.group(2), "author": "", "time": "",
                       "quote": [], "text": [], "replies": 0}
            threads.append(current)
            continue
        if current is None:
            continue
        if line.startswith("> ") or line == ">":
            current["quote"].append(line[2:])
        elif (m := _BYLINE.match(line)) and not current["author"]:
            current["author"], current["time"] = m.group(1), m.group(2)
        elif line.startswith("- **"):
            current["replies"] += 1
        elif current["author"] and line.strip() and not current["replies"]:
            current["text"].append(_LINK.sub(lambda m: m.group(1).replace("\\", ""), line.strip()))
    return [Thread(heading=t["heading"], author=t["author"], time=t["time"], quote=" ".join(t["quote"]).strip(),
                   text=" ".join(t["text"]), replies=t["replies"])
            for t in threads if t["state"] == "open"]
