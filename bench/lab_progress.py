#!/usr/bin/env python3
"""`docpipe lab progress` over a class: N seats x 5 checks, on a real Docker Engine.

A workshop with five checks (quick ones a learner's step would have: files, a command, a grep) is
built on docpipe's own base and started with --seats N behind the gateway. Figures: seconds for
`docpipe lab progress WORKSHOP --json` (the whole command: settings, reap, status, the runner in
every seat through Docker's exec, 8 at a time, the class page rewritten) over the class; baseline
(same run): the same command over a class of one seat whose checks file holds one check. Goal:
20 seats x 5 checks in < 5 s. The class, its gateway and the images are removed at the end.

    python bench/lab_progress.py [--seats 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.lab.image import engine, provision
from pipeline.lab.settings import LabSettings
from tests.support.docker_env import make_archive

WORKSHOP = "ws-progress-bench"
DOC = """---
title: Progress bench
name: ws-progress-bench
---
# Progress bench

## Lab desktop

- base: debian-novnc
- memory: 512m
- checks:
  - Home exists: `test -d ~`
  - Notes written: `test -s ~/notes.txt`
  - Bash works: `bash --version | grep -q GNU`
  - Checks file readable: `grep -q Home /etc/docpipe/checks.json`
  - Nothing hidden left: `! ls ~/.cache/nothing-here 2>/dev/null`
"""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _progress(env: dict[str, str]) -> tuple[float, dict[str, object]]:
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "progress", WORKSHOP, "--json"],
                         capture_output=True, text=True, env=env, check=True, timeout=300)
    return time.monotonic() - start, json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seats", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    client = engine.client()
    prefix = f"docpipe-bench-{os.urandom(3).hex()}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        make_archive(workdir, {f"workshops/{WORKSHOP}.md": DOC})
        provision.provision(workdir, LabSettings(prefix=prefix))
        port = _port()
        env = {**os.environ, "DOCPIPE_WORKDIR": str(workdir), "DOCPIPE_LAB_PREFIX": prefix,
               "DOCPIPE_LAB_LISTEN": f"127.0.0.1:{port}", "DOCPIPE_LAB_PUBLIC_URL": f"https://lab.localhost:{port}",
               "DOCPIPE_LAB_MAX_SEATS": str(args.seats)}
        up = [sys.executable, "-m", "pipeline.cli", "lab", "up", WORKSHOP, "--json", "--seats"]
        down = [sys.executable, "-m", "pipeline.cli", "lab", "down", WORKSHOP, "--purge"]
        try:
            # Baseline: one seat, one check (its checks file cut to the first check, in the seat).
            seat = json.loads(subprocess.run(up + ["1"], env=env, check=True, capture_output=True, text=True,
                                             timeout=900).stdout)["seats"][0]
            c = client.containers.get(seat["container"])
            code, out = c.exec_run(["sh", "-c", "python3 -c \"import json; d=json.load(open('/etc/docpipe/checks.json'));"
                                    " d['checks']=d['checks'][:1]; print(json.dumps(d))\" > /tmp/one.json"
                                    " && cat /tmp/one.json > /etc/docpipe/checks.json"], user="root")
            assert code == 0, out
            base = min(_progress(env)[0] for _ in range(args.runs))
            subprocess.run(down, env=env, check=True, capture_output=True)
            seats = json.loads(subprocess.run(up + [str(args.seats)], env=env, check=True, capture_output=True,
                                              text=True, timeout=900).stdout)["seats"]
            for s in seats[::2]:  # half the class has done the notes step
                client.containers.get(s["container"]).exec_run(["sh", "-c", "echo done > ~/notes.txt"], user="student")
            times, report = [], {}
            for _ in range(args.runs):
                took, report = _progress(env)
                times.append(took)
        finally:
            subprocess.run(down, env=env, capture_output=True, check=False)
            for image in client.images.list():
                for tag in image.tags:
                    if prefix in tag:
                        client.images.remove(tag, force=True)
    rows = report["seats"]  # type: ignore[index]
    done = sorted(r["done"] for r in rows)  # type: ignore[index]
    assert len(rows) == args.seats and all(r["total"] == 5 and not r.get("error") for r in rows), rows  # type: ignore[index, union-attr]
    best = min(times)
    print(f"lab progress, 1 seat x 1 check: {base:.2f} s (baseline, best of {args.runs})")
    print(f"lab progress, {args.seats} seats x 5 checks: {best:.2f} s best, {max(times):.2f} s worst of {args.runs} "
          f"({best / base:.1f}x the baseline; goal < 5 s); steps done per seat: {done[0]}..{done[-1]}")


if __name__ == "__main__":
    main()
