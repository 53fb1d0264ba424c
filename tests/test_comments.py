"""The comments file: written by replay, read back by render, one module (pipeline.comments)."""

from __future__ import annotations

from typing import Any

import markdown

from pipeline.comments import parse_threads, render_comments
from pipeline.markdown_ext import UntrustedHtml


def _comment(cid: str, content: str, quote: str = "", replies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": cid, "createdTime": "2024-03-01T10:00:00.000Z", "content": content,
                           "author": {"displayName": "Ada"}, "replies": replies or []}
    if quote:
        out["quotedFileContent"] = {"value": quote}
    return out


def _everything(comments: list[dict[str, Any]]) -> set[tuple[str, str, str, str, str]]:
    keys = {("comment", "f1", c["id"], "", "") for c in comments}
    keys |= {("reply", "f1", c["id"], r["id"], "") for c in comments for r in c["replies"]}
    return keys


def test_threads_are_headed_by_quote_and_first_words_not_ids() -> None:
    comments = [
        _comment("AAAAbcd123", "Which Go version do we need for the tiny node, really?", quote="Set up a Go toolchain."),
        _comment("AAAAxyz999", "Typo"),
    ]
    text = render_comments("Doc", comments, _everything(comments), "f1")
    heads = [line for line in text.splitlines() if line.startswith("## ")]
    assert heads == ["## “Set up a Go toolchain.” — Which Go version do we need for the … · open",
                     "## Typo · open"]
    assert "AAAA" not in text
    assert [t.heading for t in parse_threads(text)] == [h[3:].rsplit(" · ", 1)[0] for h in heads]


def test_urls_in_comments_become_links_and_stay_plain_in_summaries() -> None:
    comments = [_comment("c1", "See https://example.org/a_b?x=1&y=(2). Thanks",
                         replies=[{"id": "r1", "createdTime": "2024-03-01T11:00:00.000Z", "content": "also http://go.dev/doc,",
                                   "author": {"displayName": "Bo"}}])]
    text = render_comments("Doc", comments, _everything(comments), "f1")
    html = markdown.markdown(text)
    assert '<a href="https://example.org/a_b?x=1&amp;y=%282%29">' in html
    assert '<a href="http://go.dev/doc">http://go.dev/doc</a>,' in html
    (thread,) = parse_threads(text)
    assert thread.text == "See https://example.org/a_b?x=1&y=(2). Thanks"


def test_comment_text_cannot_fake_a_thread_or_markup() -> None:
    comments = [_comment("c1", "## Thread FAKE · open\n<script>x</script> [a](javascript:alert(1))")]
    text = render_comments("Doc", comments, _everything(comments), "f1")
    assert len(parse_threads(text)) == 1
    assert "<script>" not in text and "\\## Thread FAKE" in text
    # The site reads comments files through the same sanitizer as docs.
    assert 'href="javascript' not in markdown.markdown(text, extensions=[UntrustedHtml()])
