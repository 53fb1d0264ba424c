"""Replay's memory grows with the doc it is writing, not with the folder (issues #12 and #22).

Measured with tracemalloc (Python's own allocations), not timed: the same replay over a folder of
N docs and of 4N docs. With long revisions and long comment threads: holding every revision's
Markdown, or every doc's threads, makes the larger replay's peak grow by about what the extra docs
hold; streaming makes it grow by a small fraction of that. With many small events per doc:
holding every event (ids, times, authors) in memory to put them in time order costs a few KB per
event, tens of KB per doc; merged on disk, what is left per doc is what replay keeps of it (its
path, title, current revision), a few KB.
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


def write_eventful_folder(workdir: Path, docs: int, revisions: int = 20, threads: int = 3) -> int:
    """`docs` small docs with many events each (revisions, threads with a reply and a resolve),
    interleaved in time; returns the number of events."""
    w = StoreWriter(workdir / "store")
    specs = [DocSpec(f"doc-{d:04d}", f"Doc {d}", [f"Folder {d % 5}"]) for d in range(docs)]
    t = BASE
    for k in range(revisions):
        for spec in specs:
            t += timedelta(seconds=7)
            html = html_page(spec.title, f"revision {k} of {spec.id}")
            spec.revisions.append({"id": f"rev-{k:04d}", "modifiedTime": rfc3339(t),
                                   "lastModifyingUser": user(f"Editor {k % 5}", f"editor{k % 5}@example.org"),
                                   "html": w.blob(html.encode()), "images": []})
    for spec in specs:
        for c in range(threads):
            t += timedelta(seconds=7)
            spec.comments.append({"id": f"thread-{c:04d}", "createdTime": rfc3339(t), "modifiedTime": rfc3339(t),
                                  "author": {"displayName": "Grace Hopper"}, "content": "why?", "htmlContent": "why?",
                                  "anchor": "kix.x", "resolved": True, "deleted": False,
                                  "replies": [{"id": "reply-1", "createdTime": rfc3339(t + timedelta(seconds=1)),
                                               "modifiedTime": rfc3339(t + timedelta(seconds=1)), "action": "resolve",
                                               "author": {"displayName": "Ada Lovelace"}, "content": "because",
                                               "deleted": False}]})
    for spec in specs:
        w.doc(spec.to_json())
    w.folder("root", "Root", [s.to_json() for s in specs])
    return docs * (revisions + 2 * threads)


def test_replay_memory_per_doc_is_what_it_keeps_of_the_doc_not_its_events(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Two whole docs are kept, so both replays hold as many: what differs is what they hold per
    # doc and per event.
    monkeypatch.setattr(Snapshot, "KEEP", 2)
    small, large = tmp_path / "small", tmp_path / "large"
    events_small, events_large = write_eventful_folder(small, 25), write_eventful_folder(large, 100)
    peak_small, peak_large = traced_peak(small), traced_peak(large)
    per_doc = (peak_large - peak_small) / 75
    per_event = (events_large - events_small) / 75
    assert per_event == 26
    # Holding the events in memory cost ~1.2 KB each (32 KB per doc here); replay keeps ~4 KB per doc.
    assert per_doc < 8_000, (f"replay's peak grew by {per_doc:.0f} bytes per doc of {per_event:.0f} events "
                             f"(25 docs: {peak_small}, 100 docs: {peak_large})")
