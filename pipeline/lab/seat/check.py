#!/usr/bin/env python3
"""docpipe-check: run a workshop's progress checks inside its seat and print JSON results.

Installed as /usr/local/bin/docpipe-check in a desktop image, next to /etc/docpipe/checks.json
(written by docpipe from the doc's validated "checks", a build-context file: the doc's text never
reaches a Dockerfile line or a shell outside the seat). Stdlib only: the image has no docpipe.

Each check runs as whoever runs this (the student: `docker exec --user`, the seat agent) with
`bash -c`, in a session of its own, stdin closed, its output read in chunks of which only the first
OUTPUT_LIMIT bytes are kept. At its timeout the whole process group is killed (a check that forks
stays inside its group), and once the check's shell has exited, whatever it left running in its
group is killed too: a check never leaves anything behind in the seat.

    docpipe-check [CHECKS_JSON]   ->  {"checks": [{"name", "ok", "exit", "timed_out", "seconds",
                                                   "output", "truncated"}, ...]}
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

CHECKS = "/etc/docpipe/checks.json"
OUTPUT_LIMIT = 4096  # bytes kept of a check's output (stdout and stderr together)
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 300.0
_CHUNK = 65536


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_one(command: str, timeout: float, cwd: str | None = None) -> dict[str, Any]:
    """One check: its exit status, whether it ran out of time, and the start of its output."""
    start = time.monotonic()
    proc = subprocess.Popen(["bash", "-c", command], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True, cwd=cwd or os.path.expanduser("~"))
    assert proc.stdout is not None
    pgid = proc.pid  # start_new_session: the check leads its own session and group
    kept = bytearray()
    total = 0
    timed_out = False
    deadline = start + timeout
    fd = proc.stdout.fileno()
    os.set_blocking(fd, False)
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        open_pipe = True
        while open_pipe:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if proc.poll() is not None and not sel.select(0):
                break  # the shell is done and nothing is waiting: leftovers holding the pipe get killed
            for _key, _ev in sel.select(min(left, 0.2)):
                try:
                    data = os.read(fd, _CHUNK)
                except BlockingIOError:
                    continue
                if not data:
                    open_pipe = False
                    break
                total += len(data)
                if len(kept) < OUTPUT_LIMIT:
                    kept += data[: OUTPUT_LIMIT - len(kept)]
    if not timed_out:  # the output ended: let the shell finish (closing its output is not exiting)
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        except subprocess.TimeoutExpired:
            timed_out = True
    _kill_group(pgid)  # at the timeout, or whatever the check left running in its group
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # cannot happen after SIGKILL, but never hang the runner
        code = -9
    proc.stdout.close()
    return {"ok": code == 0 and not timed_out, "exit": code, "timed_out": timed_out,
            "seconds": round(time.monotonic() - start, 3),
            "output": kept.decode("utf-8", errors="replace"), "truncated": total > len(kept)}


def load(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        return []
    checks = data.get("checks", []) if isinstance(data, dict) else []
    return [c for c in checks if isinstance(c, dict) and isinstance(c.get("name"), str)
            and isinstance(c.get("command"), str)]


def run_all(checks: list[dict[str, Any]]) -> dict[str, Any]:
    results = []
    for check in checks:
        try:
            timeout = min(max(float(check.get("timeout", DEFAULT_TIMEOUT)), 0.1), MAX_TIMEOUT)
        except (TypeError, ValueError):
            timeout = DEFAULT_TIMEOUT
        results.append({"name": check["name"], **run_one(check["command"], timeout)})
    return {"checks": results}


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else CHECKS
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    json.dump(run_all(load(path)), sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
