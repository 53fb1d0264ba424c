#!/usr/bin/env python3
"""Benchmark `docpipe replay` against `git fast-import` and a `git` CLI commit per revision.

    python bench/replay.py [--quick] [--cli-sample N]

Two stores, written per Contract 1: 600 revisions (20 docs x 30, Google-style export HTML growing
from 5 to 20 KB) and 10,000 small revisions (50 docs x 200). For each it measures, in this run:

  replay            fresh archive, cold conversion cache (conversion on all cores included)
  replay, git part  fresh archive, warm cache: everything but the conversion
  git fast-import   the same commits (same trees, authors, messages) from a prepared stream
  git CLI           write the files, `git add`, `git commit` per revision (older tools' way),
                    timed on the first N commits (--cli-sample) since its rate is flat

and prints commits/s and the ratios the issue sets as bars: git part >= 10x the CLI, within 2x
of fast-import (ratio <= 2), and the whole replay faster than the CLI. fast-import's result is
checked to be the very same main SHA, so both write identical history.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pygit2

from pipeline.emulator.gdoc_html import render
from pipeline.replay import replay
from tests.support.replay import DocSpec, StoreWriter, rfc3339, user

USERS = [user("Ada Lovelace", "ada@example.org"), user("Grace Hopper"), user("Margaret Hamilton", "mh@example.org")]
WORDS = "the lab desktop image builds from the workshop doc with packages tools and a browser per seat".split()


def google_html(doc: str, n: int, size: int, rng: random.Random) -> str:
    """Export HTML in Google's style, of about `size` bytes."""
    lines = [f"Name: mcp-{doc}", "", f"Title: Doc {doc}", "", "Status: draft", "", f"# Revision {n}"]
    html = ""
    while len(html) < size:
        kind = rng.random()
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 30)))
        if kind < 0.1:
            lines.append(f"## {text[:40]}")
        elif kind < 0.35:
            lines.append(f"- **{text[:20]}** {text[20:]}")
        elif kind < 0.45:
            lines.append(f"`code {text[:20]}` and [a link](https://example.org/{n})")
        else:
            lines.append(text)
        lines.append("")
        if len(lines) % 16 == 1:  # render in steps: it costs O(size)
            html = render("\n".join(lines), seed=doc)
    return html


def write_store(workdir: Path, docs: int, revs: int, size: tuple[int, int], seed: int) -> None:
    rng = random.Random(seed)
    w = StoreWriter(workdir / "store")
    t = datetime(2024, 1, 1, tzinfo=UTC)
    specs = []
    for d in range(docs):
        spec = DocSpec(f"bench-{d:03d}", f"Bench doc {d}", ["Bench", f"Group {d % 4}"])
        specs.append(spec)
    for r in range(revs):
        for spec in specs:
            t += timedelta(seconds=rng.randint(1, 120))
            lo, hi = size
            target = lo + (hi - lo) * r // max(1, revs - 1)
            html = google_html(spec.id, r, target, rng) if hi > 2000 else (
                f"<html><body><h1>{spec.title}</h1><p>revision {r} " + " ".join(rng.choice(WORDS) for _ in range(20)) + "</p></body></html>")
            spec.revisions.append({"id": f"{spec.id}-r{r:04d}", "modifiedTime": rfc3339(t),
                                   "lastModifyingUser": USERS[(r + len(spec.id)) % 3],
                                   "html": w.blob(html.encode()), "images": []})
    for spec in specs:
        w.doc(spec.to_json())
    w.folder("bench-root", "Bench", [s.to_json() for s in specs])


def commits_of(archive: Path) -> tuple[pygit2.Repository, list[pygit2.Commit]]:
    repo = pygit2.Repository(str(archive))
    tip = repo.references["refs/heads/main"].target
    return repo, list(repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE))


def changes(repo: pygit2.Repository, commit: pygit2.Commit) -> list[tuple[str, bytes | None]]:
    """(path, new bytes or None for a deletion) that turn the parent's tree into this one."""
    if commit.parents:
        diff = commit.parents[0].tree.diff_to_tree(commit.tree)
    else:
        diff = commit.tree.diff_to_tree(swap=True)
    out = []
    for delta in diff.deltas:
        if delta.status == pygit2.enums.DeltaStatus.DELETED:
            out.append((delta.old_file.path, None))
        else:
            if delta.status == pygit2.enums.DeltaStatus.RENAMED:
                out.append((delta.old_file.path, None))
            out.append((delta.new_file.path, repo[delta.new_file.id].data))
    return out


def fast_import_stream(repo: pygit2.Repository, commits: list[pygit2.Commit]) -> bytes:
    parts: list[bytes] = []
    for i, c in enumerate(commits, 1):
        msg = c.raw_message
        parts.append(b"commit refs/heads/main\nmark :%d\n" % i)
        for role, sig in (("author", c.author), ("committer", c.committer)):
            parts.append(f"{role} {sig.name} <{sig.email}> {sig.time} +0000\n".encode())
        parts.append(b"data %d\n%s\n" % (len(msg), msg))
        if i > 1:
            parts.append(b"from :%d\n" % (i - 1))
        for path, data in changes(repo, c):
            if data is None:
                parts.append(f"D {path}\n".encode())
            else:
                parts.append(f"M 100644 inline {path}\n".encode() + b"data %d\n%s\n" % (len(data), data))
    return b"".join(parts)


def run_fast_import(stream: bytes, dest: Path) -> tuple[float, str]:
    subprocess.run(["git", "init", "-q", "--bare", str(dest)], check=True)
    start = time.perf_counter()
    subprocess.run(["git", "--git-dir", str(dest), "fast-import", "--quiet", "--done"], input=stream + b"done\n", check=True)
    elapsed = time.perf_counter() - start
    head = subprocess.run(["git", "--git-dir", str(dest), "rev-parse", "main"], capture_output=True, text=True, check=True).stdout.strip()
    return elapsed, head


def run_git_cli(repo: pygit2.Repository, commits: list[pygit2.Commit], dest: Path) -> float:
    """The per-revision CLI way: write the doc into a work tree, `git add`, `git commit`."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    plans = [(c, changes(repo, c)) for c in commits]  # prepared outside the timing
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(dest)}
    start = time.perf_counter()
    for c, changed in plans:
        paths = []
        for path, data in changed:
            target = dest / path
            if data is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            paths.append(path)
        subprocess.run(["git", "-C", str(dest), "add", "-A", "--", *paths], check=True, env=env)
        stamp = f"{c.author.time} +0000"
        subprocess.run(["git", "-C", str(dest), "commit", "-q", "--allow-empty", "--no-verify", "-m", c.message,
                        "--author", f"{c.author.name} <{c.author.email}>"], check=True,
                       env={**env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp,
                            "GIT_COMMITTER_NAME": "docpipe", "GIT_COMMITTER_EMAIL": "docpipe@localhost"})
    return time.perf_counter() - start


def scenario(label: str, docs: int, revs: int, size: tuple[int, int], cli_sample: int, base: Path) -> bool:
    print(f"\n== {label}: {docs} docs x {revs} revisions, HTML {size[0]}-{size[1]} bytes")
    cold = base / "cold"
    write_store(cold, docs, revs, size, seed=docs * revs)
    t0 = time.perf_counter()
    first = replay(cold, quiet=True)
    t_full = time.perf_counter() - t0
    n = first.commits
    warm = base / "warm"
    shutil.copytree(cold / "store", warm / "store")
    shutil.copytree(cold / "cache", warm / "cache")
    t0 = time.perf_counter()
    second = replay(warm, quiet=True)
    t_git = time.perf_counter() - t0
    assert second.head == first.head and second.converted == 0, "warm replay must give the same main without converting"

    repo, commits = commits_of(cold / "archive")
    stream = fast_import_stream(repo, commits)
    t_fi, fi_head = run_fast_import(stream, base / "fast-import.git")
    same = "same main SHA" if fi_head == first.head else f"DIFFERENT main ({fi_head[:12]} vs {first.head[:12]})"
    sample = commits[: min(cli_sample, len(commits))]
    t_cli = run_git_cli(repo, sample, base / "cli")

    t_write = second.timings["write"]
    print("  warm replay phases: " + ", ".join(f"{k} {v:.2f}s" for k, v in sorted(second.timings.items())))
    rate = {"replay (with conversion)": n / t_full, "replay without conversion (warm cache)": n / t_git,
            "replay, git part (objects, commits, pack)": n / t_write,
            "git fast-import": n / t_fi, f"git CLI per commit (first {len(sample)})": len(sample) / t_cli}
    for name, value in rate.items():
        print(f"  {name:42s} {value:10.1f} commits/s")
    cli = len(sample) / t_cli
    git_vs_cli = (n / t_write) / cli
    fi_vs_git = (n / t_fi) / (n / t_write)
    full_vs_cli = (n / t_full) / cli
    print(f"  converted {first.converted} HTML blobs on {os.cpu_count()} cores; fast-import wrote the {same}")
    bars = [(f"git part vs git CLI      {git_vs_cli:7.1f}x  (bar >= 10x)", git_vs_cli >= 10),
            (f"fast-import vs git part  {fi_vs_git:7.2f}x  (bar <= 2x)", fi_vs_git <= 2),
            (f"whole replay vs git CLI  {full_vs_cli:7.1f}x  (bar > 1x)", full_vs_cli > 1)]
    for text, ok in bars:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    return all(ok for _, ok in bars) and fi_head == first.head


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller stores (a smoke run)")
    parser.add_argument("--cli-sample", type=int, default=600, help="commits timed for the git CLI baseline")
    args = parser.parse_args()
    scale = 5 if args.quick else 1
    ok = True
    with tempfile.TemporaryDirectory(prefix="docpipe-bench-") as tmp:
        base = Path(tmp)
        ok &= scenario("Google-style docs", 20, 30 // scale, (5_000, 20_000), args.cli_sample, base / "a")
        ok &= scenario("small revisions", 50, 200 // scale, (300, 300), args.cli_sample, base / "b")
    print("\nall bars met" if ok else "\nsome bars missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
