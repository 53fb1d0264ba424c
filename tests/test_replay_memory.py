"""Replay's memory grows with the doc it is writing, not with the folder (issue #12).

Measured with tracemalloc (Python's own allocations), not timed: the same replay over a folder of
N docs and of 4N docs, each with long revisions and long comment threads. Holding every
revision's Markdown, or every doc's threads, makes the larger replay's peak grow by about what
the extra docs hold; streaming makes it grow by a small fraction of that.
"""

from __future__ import annotations

import random
import shutil
import tracemalloc
from datetime import timedelta
from pathlib import Path

import pytest

from pipeline.replay import replay
from pipeline.store import Snapshot
from tests.support.replay import BASE, DocSpec, StoreWriter, html_page, rfc3339, user

WORDS = ("grid", "node", "desktop", "workshop", "student", "revision", "comment", "folder", "promise",
         "virtual", "history", "archive", "commit", "browser", "lab", "image", "session", "notes")
REVISIONS, PARAGRAPH_WORDS, PARAGRAPHS, THREADS, THREAD_WORDS = 4, 400, 20, 3, 2500


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def write_folder(workdir: Path, docs: int) -> int:
    """A store of `docs` docs whose revisions interleave in time; returns the bytes of comment text."""
    rng = random.Random(docs)
    w = StoreWriter(workdir / "store")
    specs = [DocSpec(f"doc-{d:03d}", f"Doc {d}", [f"Folder {d % 3}"]) for d in range(docs)]
    t = BASE
    for k in range(REVISIONS):
        for spec in specs:
            t += timedelta(minutes=1)
            body = "</span></p><p><span>".join(_text(rng, PARAGRAPH_WORDS) for _ in range(PARAGRAPHS))
            spec.revisions.append({"id": f"r{k}", "modifiedTime": rfc3339(t), "lastModifyingUser": user("Ada Lovelace"),
                                   "html": w.blob(html_page(spec.title, body).encode()), "images": []})
    comment_bytes = 0
    for spec in specs:
        for c in range(THREADS):
            t += timedelta(minutes=1)
            content = _text(rng, THREAD_WORDS)
            comment_bytes += len(content)
            spec.comments.append({"id": f"c{c}", "createdTime": rfc3339(t), "modifiedTime": rfc3339(t),
                                  "author": {"displayName": "Grace Hopper"}, "content": content, "htmlContent": content,
                                  "anchor": "kix.x", "resolved": False, "deleted": False, "replies": []})
    for spec in specs:
        w.doc(spec.to_json())
    w.folder("root", "Root", [s.to_json() for s in specs])
    return comment_bytes


def markdown_bytes(workdir: Path) -> int:
    return sum(p.stat().st_size for p in (workdir / "cache" / "markdown").rglob("*.md"))


def traced_peak(workdir: Path) -> int:
    """Peak Python memory of a whole replay whose conversions are already cached."""
    replay(workdir, quiet=True)  # fills the conversion cache (in worker processes)
    shutil.rmtree(workdir / "archive")
    tracemalloc.start()
    try:
        result = replay(workdir, quiet=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.commits and result.cached and not result.converted
    return peak


def test_replay_memory_does_not_grow_with_the_folders_markdown_and_threads(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # Keep as few whole docs as replay would among thousands, so a 12-doc folder is read the same way.
    monkeypatch.setattr(Snapshot, "KEEP", 2)
    small, large = tmp_path / "small", tmp_path / "large"
    comments_small, comments_large = write_folder(small, 3), write_folder(large, 12)
    peak_small, peak_large = traced_peak(small), traced_peak(large)
    added = (markdown_bytes(large) - markdown_bytes(small)) + (comments_large - comments_small)
    assert added > 2_000_000  # the extra docs hold megabytes: holding them would show
    growth = peak_large - peak_small
    assert growth < 0.15 * added, (f"replay's peak grew by {growth} bytes for {added} bytes of Markdown and "
                                   f"threads in 9 more docs (3 docs: {peak_small}, 12 docs: {peak_large})")
