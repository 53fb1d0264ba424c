#!/usr/bin/env python3
"""docpipe at scale: 1,000 docs x 20 revisions (2-17 KB) x 3 threads in 200 folders, 4 levels deep.

Generated with the emulator's generator and served at 50 ms per request; `docpipe pull --jobs 16
--max-qps 200` and `docpipe replay` run as subprocesses of a small launcher, each reaped with
os.wait4 for its peak RSS (the largest of it and its conversion workers). Reported, each against
a baseline from the same run:
  first pull: seconds and requests against the rate-limit floor (requests / max-qps)
  no-op pull: requests and seconds (goal <= 5 requests and < 1 s, at any folder count: the
              small tree's no-op pull is shown beside it)
  incremental pull after touching 1 % of the docs: requests against constant + per changed doc
  peak RSS of pull and replay (goal < 300 MB each)
  replay seconds per commit against the small tree's (goal <= 1.3x)
  no-op `docpipe run` (goal < 3 s)

    python bench/scale.py [--quick]      # --quick: 100 docs in 20 folders
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.emulator import Emulator, generate_dataset
from pipeline.emulator.model import Dataset

TOKEN = "bench-token"


# Linux charges a child, at exec, with the resident size of the address space it replaces: the
# parent's, whether forked or vforked. Started from this process, which holds the generated Drive
# (hundreds of MB at 1,000 docs), every docpipe command would report at least that much. Commands
# are therefore started by a small launcher process made before any tree is generated; a bare
# interpreter's size is the floor then, and it is printed beside the figures.
_LAUNCHER = r"""
import json, os, subprocess, sys, time
for line in sys.stdin:
    argv, env, cwd, out, err = json.loads(line)
    with open(out, "wb") as o, open(err, "wb") as e:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=o, stderr=e, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
    print(json.dumps([time.perf_counter() - start, os.waitstatus_to_exitcode(status), usage.ru_maxrss]), flush=True)
"""


class Launcher:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _LAUNCHER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def run(self, argv: list[str], env: dict[str, str]) -> tuple[float, int, float, bytes, bytes]:
        """(seconds, exit status, peak RSS in MB, stdout, stderr) of one command."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with tempfile.TemporaryDirectory(prefix="docpipe-bench-run-") as tmp:
            out, err = Path(tmp) / "out", Path(tmp) / "err"
            self.proc.stdin.write(json.dumps([argv, env, str(ROOT), str(out), str(err)]) + "\n")
            self.proc.stdin.flush()
            seconds, status, maxrss = json.loads(self.proc.stdout.readline())
            return seconds, status, maxrss / 1024, out.read_bytes(), err.read_bytes()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


LAUNCHER: Launcher | None = None


def measured(args: list[str]) -> tuple[float, float, dict[str, Any]]:
    """(seconds, peak RSS in MB, JSON output) of one docpipe command."""
    assert LAUNCHER is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    env["DOCPIPE_ACCESS_TOKEN"] = TOKEN
    seconds, status, rss, out, err = LAUNCHER.run([sys.executable, "-m", "pipeline.cli", *args, "--json"], env)
    if status != 0:
        sys.exit(f"docpipe {args[0]} failed ({status}): {err.decode()[-800:]}")
    return seconds, rss, json.loads(out or b"{}")


class Tree:
    def __init__(self, ds: Dataset, workdir: Path, latency: float, jobs: int, qps: float) -> None:
        self.ds, self.workdir, self.jobs, self.qps = ds, workdir, jobs, qps
        self.emu = Emulator(ds, latency=latency, token=TOKEN).start()

    def pull(self) -> tuple[float, float, int, dict[str, Any]]:
        self.emu.reset_counters()
        s, rss, out = measured(["pull", "--folder", self.emu.root_folder_id, "--drive-endpoint", self.emu.url,
                                "--workdir", str(self.workdir), "--jobs", str(self.jobs), "--max-qps", str(self.qps)])
        return s, rss, self.emu.request_count, out

    def replay(self) -> tuple[float, float, dict[str, Any]]:
        return measured(["replay", "--workdir", str(self.workdir)])

    def run(self, config: Path) -> tuple[float, float, dict[str, Any]]:
        config.write_text(f'workdir = "{self.workdir}"\n[drive]\nfolder = "{self.emu.root_folder_id}"\n'
                          f'endpoint = "{self.emu.url}"\njobs = {self.jobs}\nmax_qps = {self.qps}\n'
                          "[publish]\nenabled = false\n")
        return measured(["run", "--config", str(config), "--dry-run-lab"])

    def close(self) -> None:
        self.emu.stop()


def commits(workdir: Path) -> int:
    out = subprocess.run(["git", "-C", str(workdir / "archive"), "rev-list", "--count", "main"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 docs in 20 folders")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--max-qps", type=float, default=200)
    args = ap.parse_args()
    docs, folders = (100, 20) if args.quick else (1000, 200)

    def tree(n_docs: int, n_folders: int, seed: int) -> Dataset:
        return generate_dataset(docs=n_docs, revisions=20, size=(2_000, 17_000), comments=3, replies=1,
                                seed=seed, folders=n_folders, depth=4)

    global LAUNCHER
    LAUNCHER = Launcher()  # before the trees exist, so it stays small (see _LAUNCHER)
    _, _, floor_rss, _, _ = LAUNCHER.run([sys.executable, "-c", "pass"], dict(os.environ))
    print(f"peak RSS of a bare interpreter started the same way: {floor_rss:.0f} MB")
    ok = True
    with tempfile.TemporaryDirectory(prefix="docpipe-bench-scale-") as tmp:
        t0 = time.perf_counter()
        big = Tree(tree(docs, folders, 1), Path(tmp) / "big", args.latency, args.jobs, args.max_qps)
        small = Tree(tree(20, 4, 2), Path(tmp) / "small", args.latency, args.jobs, args.max_qps)
        print(f"generated {docs} + 20 docs in {time.perf_counter() - t0:.1f} s")
        try:
            s, rss, n, out = big.pull()
            floor = n / args.max_qps
            print(f"first pull, {docs} docs in {folders} folders: {s:.1f} s, {n} requests; rate-limit floor "
                  f"{floor:.1f} s -> {s / floor:.2f}x the floor; peak RSS {rss:.0f} MB (goal < 300)")
            ok &= rss < 300
            _, small_rss, _, _ = small.pull()
            print(f"  first pull of the 20-doc tree: peak RSS {small_rss:.0f} MB (what grows with the folder: "
                  f"{rss - small_rss:.0f} MB for {docs - 20} more docs)")
            noop_s, _, noop_n, _ = big.pull()
            small_s, _, small_n, _ = small.pull()
            print(f"no-op pull: {noop_n} requests, {noop_s:.2f} s at {folders} folders; {small_n} requests, "
                  f"{small_s:.2f} s at 4 folders (goal <= 5 requests, < 1 s)")
            ok &= noop_n <= 5 and noop_s < 1.0 and noop_n == small_n
            touched = [f for f in sorted(big.ds.docs(), key=lambda f: f.id)][:: 100][: max(1, docs // 100)]
            for i, f in enumerate(touched):
                big.ds.add_revision(f.id, f.revisions[-1].html.replace("</body>", "<p>touched</p></body>"), "alice",
                                    f"2025-01-01T00:00:{i:02d}.000Z")
            inc_s, _, inc_n, inc = big.pull()
            per_doc = (inc_n - noop_n) / len(touched)
            print(f"incremental pull, {len(touched)} docs touched: {inc_n} requests = {noop_n} + "
                  f"{per_doc:.1f} per changed doc, {inc_s:.2f} s, {inc['new_revisions']} new revisions")
            ok &= per_doc <= 4

            r_s, r_rss, _ = big.replay()
            big_commits = commits(big.workdir)
            rs_s, rs_rss, _ = small.replay()
            small_commits = commits(small.workdir)
            ratio = (r_s / big_commits) / (rs_s / small_commits)
            print(f"replay: {big_commits} commits in {r_s:.1f} s ({1000 * r_s / big_commits:.2f} ms/commit), peak "
                  f"RSS {r_rss:.0f} MB; 20 docs: {small_commits} commits in {rs_s:.1f} s "
                  f"({1000 * rs_s / small_commits:.2f} ms/commit) -> {ratio:.2f}x per commit (goal <= 1.3x)")
            print(f"  replay of the 20-doc tree: peak RSS {rs_rss:.0f} MB (what grows with the folder: "
                  f"{r_rss - rs_rss:.0f} MB for {docs - 20} more docs)")
            ok &= r_rss < 300 and ratio <= 1.3

            config = Path(tmp) / "docpipe.toml"
            first_s, _, _ = big.run(config)
            run_s, _, run = big.run(config)
            stages = sorted({st["status"] for st in run["folders"][0]["stages"]})
            print(f"docpipe run (publish off): first {first_s:.1f} s, nothing new {run_s:.2f} s, stages {stages} "
                  "(goal < 3 s)")
            ok &= run_s < 3
        finally:
            big.close()
            small.close()
            LAUNCHER.close()
    print("goals met" if ok else "GOALS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
