#!/usr/bin/env python3
"""Render + publish throughput on a generated archive, against a baseline measured in the same run:
`mkdocs build` of the same docs' raw Markdown with no docpipe at all (no history walk, no
templates, no link rewriting, no HTML filter).

    python bench/render.py [--docs 300] [--revisions 3]

Prints seconds, docs/s and the ratios render/baseline and publish/baseline.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.publish import publish
from pipeline.render import render
from tests.support.archive import Event, build_archive, doc_md, link


def body(i: int, n: int) -> str:
    parts = [f"Doc {i} links to [doc {(i + 1) % n}]({link(f'1BenchDoc{(i + 1) % n:06d}XXXXXXXX')}).\n"]
    for s in range(8):
        parts.append(f"## Section {s}\n\n" + "Some text with **bold** and `code`. " * 20 + "\n\n"
                     "- item\n  - nested item\n- item\n\n```python\nprint('step')\n```\n")
    if i % 10 == 0:
        parts.append("## Lab desktop\n\nbase: debian-xfce\n\npackages: git\n")
    return "\n".join(parts)


def make_archive(workdir: Path, n: int, revisions: int) -> dict[str, str]:
    docs, events, raw = {}, [], {}
    for i in range(n):
        fid = f"1BenchDoc{i:06d}XXXXXXXX"
        path = f"folder{i % 5}/doc-{i:04d}.md"
        docs[fid] = {"path": path, "comments": None, "title": f"Doc {i}", "webViewLink": link(fid)}
    manifest = json.dumps({"folder": {"id": "f", "name": "Bench", "webViewLink": ""}, "docs": docs}, sort_keys=True)
    t = 1_700_000_000
    for r in range(revisions):
        for i, fid in enumerate(docs):
            text = doc_md(f"Doc {i}", body(i, n) + f"\nRevision {r}.\n", drive_id=fid, name=f"doc-{i:04d}")
            files = {docs[fid]["path"]: text}
            if r == 0 and i == 0:
                files[".docpipe/manifest.json"] = manifest
            events.append(Event(t, f"Author {i % 7}", fid, files, revision=f"r{r}"))
            raw[docs[fid]["path"]] = text
            t += 60
    build_archive(workdir / "archive", events)
    return raw


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=300)
    ap.add_argument("--revisions", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        raw = make_archive(work, args.docs, args.revisions)
        base = Path(tmp) / "baseline"
        for path, text in raw.items():
            (base / "docs" / path).parent.mkdir(parents=True, exist_ok=True)
            (base / "docs" / path).write_text(text)
        (base / "docs" / "index.md").write_text("# Bench\n")
        (base / "mkdocs.yml").write_text("site_name: Bench\nuse_directory_urls: false\ntheme:\n  name: mkdocs\n"
                                         "  highlightjs: false\nmarkdown_extensions: [toc, tables, fenced_code]\n")
        build = [sys.executable, "-m", "mkdocs", "build", "-q", "-f", str(base / "mkdocs.yml"), "-d", str(base / "out")]
        # Interleaved, best of two each: the first MkDocs run of a process tree pays for cold caches.
        runs: dict[str, list[float]] = {"baseline": [], "render": [], "publish": []}
        for _ in range(2):
            runs["baseline"].append(timed(lambda: subprocess.run(build, check=True)))
            runs["render"].append(timed(lambda: render(work)))
            runs["publish"].append(timed(lambda: publish(work)))
        baseline, t_render, t_publish = (min(runs[k]) for k in ("baseline", "render", "publish"))
    n, commits = args.docs, args.docs * args.revisions
    print(f"archive: {n} docs, {commits} commits")
    print(f"baseline plain mkdocs build: {baseline:6.2f} s  ({n / baseline:7.1f} docs/s)")
    print(f"docpipe render:              {t_render:6.2f} s  ({n / t_render:7.1f} docs/s)  ratio to baseline {t_render / baseline:.2f}")
    print(f"docpipe publish (--strict):  {t_publish:6.2f} s  ({n / t_publish:7.1f} docs/s)  ratio to baseline {t_publish / baseline:.2f}")
    print(f"render + publish:            {t_render + t_publish:6.2f} s  ratio to baseline {(t_render + t_publish) / baseline:.2f}")


if __name__ == "__main__":
    main()
