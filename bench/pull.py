#!/usr/bin/env python3
"""Benchmark `docpipe pull` on the Drive emulator.

A generated folder of 20 docs x 30 revisions (5-20 KB exports) served with 50 ms latency per
request. `docpipe pull` runs as a subprocess (process start included) with --jobs 16 --max-qps 200;
its wall time is set against two floors computed from the same run's request count:
  sequential floor = requests x latency      (one request at a time; bar: >= 6x faster)
  quota floor      = requests / max-qps      (the rate limit allows no faster)
then a no-op re-pull (bar: < 1 s, process start included), and, unless --quick, a measured
--jobs 1 baseline in the same run.

    python bench/pull.py [--quick] [--docs 20] [--revisions 30] [--latency 0.05]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.emulator import Emulator, generate_dataset

TOKEN = "bench-token"


def run_pull(emu: Emulator, workdir: Path, jobs: int, qps: float) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "pipeline.cli", "pull", "--folder", emu.root_folder_id, "--drive-endpoint", emu.url,
           "--workdir", str(workdir), "--jobs", str(jobs), "--max-qps", str(qps), "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    env["DOCPIPE_ACCESS_TOKEN"] = TOKEN
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"docpipe pull failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall, json.loads(proc.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=20)
    ap.add_argument("--revisions", type=int, default=30)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--max-qps", type=float, default=200)
    ap.add_argument("--quick", action="store_true", help="skip the measured --jobs 1 baseline")
    args = ap.parse_args()

    ds = generate_dataset(docs=args.docs, revisions=args.revisions, size=(5_000, 20_000), comments=0, replies=0, seed=1)
    ok = True
    with tempfile.TemporaryDirectory(prefix="docpipe-bench-pull-") as tmp, \
            Emulator(ds, latency=args.latency, token=TOKEN) as emu:
        wd = Path(tmp) / "parallel"
        wall, summary = run_pull(emu, wd, args.jobs, args.max_qps)
        requests = emu.request_count
        seq_floor = requests * args.latency
        quota_floor = requests / args.max_qps
        speedup = seq_floor / wall
        print(f"pull --jobs {args.jobs} --max-qps {args.max_qps:g}: {summary['docs']} docs, "
              f"{summary['revisions']} revisions, {requests} requests (client counted {summary['requests']})")
        print(f"  wall time             {wall:8.2f} s   (process start included)")
        print(f"  sequential floor      {seq_floor:8.2f} s   = {requests} x {args.latency * 1000:.0f} ms; "
              f"speed-up {speedup:.1f}x (bar >= 6x)")
        print(f"  quota floor           {quota_floor:8.2f} s   = {requests} / {args.max_qps:g} qps; "
              f"wall / quota floor {wall / quota_floor:.2f}")
        ok &= speedup >= 6

        emu.reset_counters()
        noop_wall, noop = run_pull(emu, wd, args.jobs, args.max_qps)
        print(f"no-op re-pull:           {noop_wall:8.2f} s   {emu.request_count} requests, "
              f"{noop['new_revisions']} new revisions (bar < 1 s)")
        ok &= noop_wall < 1.0 and noop["new_revisions"] == 0

        if not args.quick:
            emu.reset_counters()
            seq_wall, _ = run_pull(emu, Path(tmp) / "sequential", 1, args.max_qps)
            print(f"baseline --jobs 1:       {seq_wall:8.2f} s   {emu.request_count} requests; "
                  f"parallel is {seq_wall / wall:.1f}x faster than the measured baseline")
    print("bars met" if ok else "BARS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
