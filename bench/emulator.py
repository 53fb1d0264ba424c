#!/usr/bin/env python3
"""How much concurrency the Drive emulator sustains (it must never be the bottleneck of bench/pull.py).

Fetches every revision export of a generated 20 docs x 30 revisions folder (5-20 KB each):
  1. sequentially on one keep-alive connection, without latency  -> raw requests/s (baseline)
  2. with 16 threads (own keep-alive connection each), without latency -> requests/s and ratio
  3. with 50 ms latency per request and 16 threads -> wall time vs the sequential floor
     (requests x latency); ideal ratio is 16x.
Usage: python bench/emulator.py [--jobs 16] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import http.client
import queue
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.emulator import Emulator, generate_dataset

TOKEN = "bench-token"


def fetch_all(emu: Emulator, paths: list[str], jobs: int) -> float:
    host, port = urllib.parse.urlsplit(emu.url).netloc.split(":")
    work: queue.Queue[str] = queue.Queue()
    for p in paths:
        work.put(p)
    failures: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            try:
                path = work.get_nowait()
            except queue.Empty:
                break
            conn.request("GET", path, headers={"Authorization": f"Bearer {TOKEN}"})
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures.append(f"{resp.status} {path}")
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise SystemExit(f"{len(failures)} requests failed, e.g. {failures[0]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--latency-ms", type=float, default=50)
    args = ap.parse_args()
    ds = generate_dataset(docs=20, revisions=30, size=(5_000, 20_000), seed=1)
    paths = [f"/feeds/download/documents/export/Export?id={f.id}&revision={r.id}&exportFormat=html" for f in ds.docs() for r in f.revisions]
    n = len(paths)
    with Emulator(ds, token=TOKEN) as emu:
        seq = fetch_all(emu, paths, 1)
        par = fetch_all(emu, paths, args.jobs)
    with Emulator(ds, token=TOKEN, latency=args.latency_ms / 1000) as emu:
        lat = fetch_all(emu, paths, args.jobs)
    floor = n * args.latency_ms / 1000
    print(f"requests: {n} revision exports")
    print(f"sequential, no latency (baseline): {seq:.2f} s, {n / seq:.0f} req/s")
    print(f"{args.jobs} connections, no latency: {par:.2f} s, {n / par:.0f} req/s, {seq / par:.2f}x baseline")
    print(f"{args.jobs} connections, {args.latency_ms:.0f} ms latency: {lat:.2f} s; sequential floor {floor:.1f} s; "
          f"{floor / lat:.1f}x faster than the floor (ideal {args.jobs}x)")


if __name__ == "__main__":
    main()
