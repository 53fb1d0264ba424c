#!/usr/bin/env python3
"""docpipe at scale: 1,000 docs x 20 revisions (2-17 KB) x 3 threads in 200 folders, 4 levels
deep, and 10,000 docs x 3 revisions x 3 threads in 500 folders, beside a 20-doc tree (20
revisions, 4 folders) as the baseline.

Generated with the emulator's generator and served at 50 ms per request; `docpipe pull --jobs 16
--max-qps 200` and `docpipe replay` run as subprocesses of a small launcher, each reaped with
os.wait4 for its peak RSS (the largest of it and its conversion workers). Reported, each against
a baseline from the same run:
  first pull: seconds and requests against the rate-limit floor (requests / max-qps)
  no-op pull: requests and seconds (goal <= 5 requests and < 1 s, at any folder count: the
              small tree's no-op pull is shown beside it)
  incremental pull after touching 1 % of the docs: requests against constant + per changed doc
  peak RSS of pull and replay (goal < 300 MB each)
  replay seconds per commit against the 20-doc tree's (goal <= 1.3x): the whole command (its
              conversions too), and the CPU seconds of its write phase (objects, commits, pack)
  archive size against `git gc` of a copy of it (goal <= 1.5x); `git repack -adf` (deltas
              searched anew, git's default window and depth) shown beside it
  no-op replay of the 10,000-doc tree (nothing new: no commit)
  no-op `docpipe run` (goal < 3 s)

    python bench/scale.py [--quick] [--no-huge]
    # --quick: 100 docs in 20 folders and 1,000 x 3 in 50; --no-huge: no 10,000-doc tree
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
        self.closed = False

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
        if not self.closed:
            self.emu.stop()
            self.closed = True


def commits(workdir: Path) -> int:
    out = subprocess.run(["git", "-C", str(workdir / "archive"), "rev-list", "--count", "main"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def pack_bytes(archive: Path) -> tuple[int, int]:
    """(bytes of the archive's packs, how many packs)."""
    packs = list((archive / "objects" / "pack").glob("*.pack"))
    return sum(p.stat().st_size for p in packs), len(packs)


def pack_objects(archive: Path) -> int:
    """Objects in the archive's packs (the last entry of each .idx v2 fan-out table)."""
    total = 0
    for idx in (archive / "objects" / "pack").glob("*.idx"):
        with open(idx, "rb") as fh:
            fh.seek(8 + 255 * 4)
            total += int.from_bytes(fh.read(4), "big")
    return total


def archive_sizes(workdir: Path, tmp: Path) -> tuple[int, int, int]:
    """(ours, `git gc` of a copy, `git repack -a -d -f` of a copy): bytes of packs."""
    import shutil

    archive = workdir / "archive"
    ours, _ = pack_bytes(archive)
    out = []
    for name, args in (("gc", ["gc", "-q"]), ("repack", ["repack", "-a", "-d", "-f", "-q"])):
        copy = tmp / f"{workdir.name}-{name}.git"
        shutil.copytree(archive, copy)
        subprocess.run(["git", "--git-dir", str(copy), *args], check=True)
        out.append(pack_bytes(copy)[0])
        shutil.rmtree(copy)
    return ours, out[0], out[1]


class Replayed:
    """A replay's figures: seconds, peak RSS, commits and its phases."""

    def __init__(self, tree: Tree) -> None:
        self.seconds, self.rss, out = tree.replay()
        self.commits = commits(tree.workdir)
        self.objects = pack_objects(tree.workdir / "archive")
        # The write phase's CPU seconds: steadier than its clock time on a shared machine.
        self.write = float(out["seconds"]["write_cpu"])

    def per_commit(self) -> float:
        return self.seconds / self.commits

    def write_per_commit(self) -> float:
        return self.write / self.commits


def report_replay(label: str, r: Replayed, base: Replayed, tree: Tree, tmp: Path,
                  base_label: str = "the 20-doc tree") -> bool:
    """Print a replay's figures against a 20-doc tree's; True when its goals are met."""
    ratio, write_ratio = r.per_commit() / base.per_commit(), r.write_per_commit() / base.write_per_commit()
    print(f"replay, {label}: {r.commits} commits in {r.seconds:.1f} s ({1000 * r.per_commit():.2f} ms/commit; "
          f"writing {1000 * r.write_per_commit():.2f} ms CPU/commit), peak RSS {r.rss:.0f} MB (goal < 300)")
    print(f"  per commit against {base_label} ({1000 * base.per_commit():.2f} ms; writing "
          f"{1000 * base.write_per_commit():.2f} ms): {ratio:.2f}x, writing {write_ratio:.2f}x (goal <= 1.3x)")
    per_object = (r.write / r.objects) / (base.write / base.objects)
    print(f"  objects written per commit: {r.objects / r.commits:.2f} against {base.objects / base.commits:.2f} (deeper "
          f"folders, more trees on a commit's path); writing per object: {per_object:.2f}x")
    ours, gc, repack = archive_sizes(tree.workdir, tmp)
    _, packs = pack_bytes(tree.workdir / "archive")
    print(f"  archive: {ours / 1e6:.1f} MB in {packs} pack(s); git gc of it {gc / 1e6:.1f} MB -> {ours / gc:.2f}x "
          f"(goal <= 1.5x); git repack -adf {repack / 1e6:.1f} MB -> {ours / repack:.2f}x")
    return r.rss < 300 and ratio <= 1.3 and write_ratio <= 1.3 and ours <= 1.5 * gc


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 docs in 20 folders, and 1,000 x 3 in 50")
    ap.add_argument("--no-huge", action="store_true", help="leave out the 10,000-doc tree")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--max-qps", type=float, default=200)
    args = ap.parse_args()
    docs, folders = (100, 20) if args.quick else (1000, 200)
    huge_docs, huge_folders = (1000, 50) if args.quick else (10_000, 500)

    def tree(n_docs: int, n_folders: int, seed: int, revisions: int = 20) -> Dataset:
        return generate_dataset(docs=n_docs, revisions=revisions, size=(2_000, 17_000), comments=3, replies=1,
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
        huge: Tree | None = None
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

            base = Replayed(small)
            print(f"replay, the 20-doc tree: {base.commits} commits in {base.seconds:.1f} s, peak RSS {base.rss:.0f} MB")
            big_replay = Replayed(big)
            ok &= report_replay(f"{docs} docs x 20 revisions", big_replay, base, big, Path(tmp))
            print(f"  what grows with the folder: {big_replay.rss - base.rss:.0f} MB of peak RSS for {docs - 20} "
                  "more docs")

            config = Path(tmp) / "docpipe.toml"
            first_s, _, _ = big.run(config)
            run_s, _, run = big.run(config)
            stages = sorted({st["status"] for st in run["folders"][0]["stages"]})
            print(f"docpipe run (publish off): first {first_s:.1f} s, nothing new {run_s:.2f} s, stages {stages} "
                  "(goal < 3 s)")
            ok &= run_s < 3
            big.close()

            if not args.no_huge:
                t0 = time.perf_counter()
                huge = Tree(tree(huge_docs, huge_folders, 3, revisions=3), Path(tmp) / "huge", args.latency,
                            args.jobs, args.max_qps)
                # The same shape at 20 docs (3 revisions each): a doc's first commits cost more than
                # its later ones (whole Markdown, a new manifest file), so a tree of 3-revision docs
                # is compared with one, and what differs is the number of docs.
                small3 = Tree(tree(20, 4, 4, revisions=3), Path(tmp) / "small3", args.latency, args.jobs,
                              args.max_qps)
                small3.pull()
                base3 = Replayed(small3)
                small3.close()
                print(f"replay, the 20-doc tree of 3 revisions: {base3.commits} commits in {base3.seconds:.1f} s "
                      f"(writing {1000 * base3.write_per_commit():.2f} ms CPU/commit), peak RSS {base3.rss:.0f} MB")
                print(f"generated {huge_docs} docs x 3 revisions in {huge_folders} folders in "
                      f"{time.perf_counter() - t0:.1f} s")
                s, rss, n, _ = huge.pull()
                print(f"first pull, {huge_docs} docs: {s:.1f} s, {n} requests -> {s / (n / args.max_qps):.2f}x the "
                      f"rate-limit floor; peak RSS {rss:.0f} MB (goal < 300)")
                ok &= rss < 300
                huge_replay = Replayed(huge)
                ok &= report_replay(f"{huge_docs} docs x 3 revisions", huge_replay, base3, huge, Path(tmp),
                                    "the 20-doc tree of 3 revisions")
                print(f"  and against the 20-doc tree of 20 revisions: {huge_replay.per_commit() / base.per_commit():.2f}x, "
                      f"writing {huge_replay.write_per_commit() / base.write_per_commit():.2f}x")
                noop_s, _, out = huge.replay()
                print(f"  replay with nothing new: {noop_s:.1f} s, {out['commits']} commits (goal: none)")
                ok &= out["commits"] == 0
        finally:
            big.close()
            small.close()
            if huge is not None:
                huge.close()
            LAUNCHER.close()
    print("goals met" if ok else "GOALS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
