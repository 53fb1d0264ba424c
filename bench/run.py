"""The whole pipeline (`docpipe run` as a subprocess): stage times, and the no-op run.

    python bench/run.py            # sample-data, then 20 docs x 30 revisions at 50 ms latency

For each folder it prints every stage's time on the first run, the sequential floor of the API
traffic (requests x latency) as the baseline that pull is measured against, and the time of a
second run with nothing new (process start included) as a ratio of the first.
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

from pipeline.emulator import Emulator, generate_dataset, load_dataset

TOKEN = "bench-token"


def docpipe_run(config: Path) -> tuple[float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    env["DOCPIPE_ACCESS_TOKEN"] = TOKEN
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", str(config), "--json",
                           "--dry-run-lab"], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"docpipe run failed: {proc.stderr.strip()[-500:]}")
    return seconds, json.loads(proc.stdout)


def bench(label: str, dataset, latency: float, jobs: int, max_qps: float) -> None:
    with tempfile.TemporaryDirectory() as tmp, Emulator(dataset, latency=latency, token=TOKEN) as emu:
        config = Path(tmp) / "docpipe.toml"
        config.write_text(f'workdir = "{Path(tmp) / "wd"}"\n[drive]\nfolder = "{emu.root_folder_id}"\n'
                          f'endpoint = "{emu.url}"\njobs = {jobs}\nmax_qps = {max_qps}\n')
        first, summary = docpipe_run(config)
        requests = emu.request_count
        emu.reset_counters()
        noop, noop_summary = docpipe_run(config)
        floor = requests * latency
        print(f"\n{label}: latency {latency * 1000:.0f} ms, --jobs {jobs}, --max-qps {max_qps:g}")
        for s in summary["folders"][0]["stages"]:
            print(f"  {s['stage']:<10} {s['status']:<10} {s['seconds']:7.2f} s")
        print(f"  first run, process start included: {first:.2f} s ({requests} API requests)")
        if floor:
            pull_s = summary["folders"][0]["stages"][0]["seconds"]
            print(f"  pull vs sequential floor ({requests} x {latency * 1000:.0f} ms = {floor:.1f} s): "
                  f"{floor / pull_s:.1f}x faster")
        statuses = {s["stage"]: s["status"] for s in noop_summary["folders"][0]["stages"]}
        print(f"  no-op run: {noop:.2f} s, {emu.request_count} API requests, "
              f"{first / noop:.1f}x faster than the first run; stages {sorted(set(statuses.values()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the sample data")
    args = parser.parse_args()
    bench("sample-data", load_dataset(ROOT / "sample-data"), latency=0.0, jobs=8, max_qps=200)
    if not args.quick:
        ds = generate_dataset(docs=20, revisions=30, size=(5_000, 20_000), seed=1)
        bench("20 docs x 30 revisions", ds, latency=0.05, jobs=16, max_qps=200)


if __name__ == "__main__":
    main()
