#!/usr/bin/env python3
"""`docpipe push` throughput against the Gitea test server (real git http-backend), with a baseline
measured in the same run: the `git push` CLI sending the same archive to the same server.

    python bench/push.py [--commits 2000] [--docs 20] [--size 5000] [--more 50] [--repeat 3]

Prints seconds for a first push (repo created through the REST API + full history) and an
incremental push of --more new commits, for docpipe and for `git push` (best of --repeat rounds),
and the ratios docpipe/git.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pygit2

from pipeline.push import push
from tests.gitea_server import GiteaServer
from tests.support.gitea import git_auth_args, make_archive


def grow(workdir: Path, commits: int, docs: int, size: int, seed: int) -> str:
    """Append `commits` commits, each rewriting one of `docs` Markdown files of ~`size` bytes."""
    rng = random.Random(seed)
    repo = pygit2.Repository(str(workdir / "archive"))
    words = [f"word{i}" for i in range(500)]
    head = repo.references["refs/heads/main"].target
    for i in range(commits):
        parent = repo[head]
        builder = repo.TreeBuilder(parent.tree)
        text = " ".join(rng.choice(words) for _ in range(size // 7))
        builder.insert(f"doc-{i % docs:03d}.md", repo.create_blob(f"# Doc {i % docs}\n\n{text}\n"),
                       pygit2.enums.FileMode.BLOB)
        sig = pygit2.Signature("Ada", "ada@example.org", 1_700_000_000 + seed * 10**6 + i, 0)
        head = repo.create_commit("refs/heads/main", sig, sig, f"revision {i}\n", builder.write(), [parent.id])
    return str(head)


def git_push(archive: Path, url: str, token: str) -> float:
    t = time.perf_counter()
    subprocess.run(["git", *git_auth_args(token), "-C", str(archive), "push", "-q", url, "main"], check=True,
                   capture_output=True, env={"PATH": "/usr/bin:/bin", "GIT_TERMINAL_PROMPT": "0", "HOME": str(archive)})
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=2000)
    ap.add_argument("--docs", type=int, default=20)
    ap.add_argument("--size", type=int, default=5000)
    ap.add_argument("--more", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best of each is printed")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="docpipe-bench-push-") as tmp:
        root = Path(tmp)
        wd = root / "wd"
        make_archive(wd, commits=1)
        head = grow(wd, args.commits, args.docs, args.size, seed=1)
        with GiteaServer(root / "gitea", check_responses=False) as server:
            token = server.add_user("bench")
            ours_first, git_first, ours_more, git_more = [], [], [], []
            for k in range(args.repeat):  # fresh repositories each round; the best round counts
                server.add_repo("bench", f"baseline-{k}")
                t = time.perf_counter()
                summary = push(wd, gitea_url=server.url, owner="bench", repo=f"docpipe-{k}", token=token)
                ours_first.append(time.perf_counter() - t)
                assert summary.created and server.main_sha("bench", f"docpipe-{k}") == head
                git_first.append(git_push(wd / "archive", f"{server.url}/bench/baseline-{k}.git", token))
            head = grow(wd, args.more, args.docs, args.size, seed=2)
            for k in range(args.repeat):
                t = time.perf_counter()
                push(wd, gitea_url=server.url, owner="bench", repo=f"docpipe-{k}", token=token)
                ours_more.append(time.perf_counter() - t)
                git_more.append(git_push(wd / "archive", f"{server.url}/bench/baseline-{k}.git", token))
                assert server.main_sha("bench", f"docpipe-{k}") == head == server.main_sha("bench", f"baseline-{k}")
            assert server.invalid == []

    n = args.commits + 1
    ours_first, git_first, ours_more, git_more = (min(x) for x in (ours_first, git_first, ours_more, git_more))
    print(f"archive: {n} commits, {args.docs} docs of ~{args.size} bytes; then {args.more} more commits")
    print(f"first push    docpipe {ours_first:7.3f} s ({n / ours_first:8.0f} commits/s, incl. REST create)"
          f"   git push {git_first:7.3f} s   ratio docpipe/git {ours_first / git_first:5.2f}")
    print(f"incremental   docpipe {ours_more:7.3f} s ({args.more / ours_more:8.0f} commits/s)"
          f"                    git push {git_more:7.3f} s   ratio docpipe/git {ours_more / git_more:5.2f}")


if __name__ == "__main__":
    main()
