"""`docpipe lab progress`: every seat's progress checks, run inside the seats, as one table.

The checks are the doc's (validated when the image was built, pipeline/lab/image/parse.py) and
live in each image as /etc/docpipe/checks.json; docpipe only starts the image's own runner
(`docpipe-check`, pipeline/lab/seat/check.py) in each seat as the student, through the engine's exec
(Docker's exec API, Kubernetes' exec through the official client's stream API), and reads its JSON.
No doc text is ever passed on a command line here. Seats run in parallel, a bounded few at a time; a
seat that fails is reported in its row and the others still run.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.lab.classroom.backend import Backend, SeatInfo
from pipeline.lab.image.bases import profile_for
from pipeline.lab.image.parse import MAX_CHECK_TIMEOUT, MAX_CHECKS
from pipeline.lab.image.spec import DEFAULT_BASE
from pipeline.lab.labels import BASE_LABEL, SEAT_LABEL, WORKSHOP_LABEL

RUNNER = "/usr/local/bin/docpipe-check"
JOBS = 8  # seats checked at once: each exec is a process in a seat, cheap, but engines have limits
RUNNER_TIMEOUT = MAX_CHECKS * MAX_CHECK_TIMEOUT + 60  # every check at its longest, and a margin


@dataclass(frozen=True)
class SeatProgress:
    seat: str
    student: str
    checks: tuple[dict[str, Any], ...] = ()  # the runner's results, in the doc's order
    error: str = ""  # why this seat could not be checked ("" when it was)

    @property
    def done(self) -> int:
        return sum(1 for c in self.checks if c.get("ok"))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"seat": self.seat, "student": self.student, "done": self.done,
                                "total": len(self.checks),
                                "checks": [{k: c.get(k) for k in ("name", "ok", "timed_out", "exit", "seconds", "output")}
                                           for c in self.checks]}
        if self.error:
            data["error"] = self.error
        return data


def parse(out: bytes) -> tuple[dict[str, Any], ...]:
    """The runner's JSON; ValueError when it is not what the runner prints."""
    data = json.loads(out.decode("utf-8", errors="replace"))
    checks = data.get("checks") if isinstance(data, dict) else None
    if not isinstance(checks, list) or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in checks):
        raise ValueError("not the check runner's output")
    return tuple(checks)


NOT_FOUND = (126, 127)  # the shell's "cannot run" and "no such command"
NO_RUNNER = "this seat's image has no docpipe-check (no checks, or built before them)"


def docker_exec(client: Any) -> Callable[[SeatInfo], bytes]:
    def run(seat: SeatInfo) -> bytes:
        container = client.containers.get(seat.container)
        if container.status != "running":
            raise RuntimeError(f"seat is {container.status}")
        profile = profile_for((container.labels or {}).get(BASE_LABEL) or DEFAULT_BASE, "")
        user = profile.user or str(profile.uid)  # the student, never root
        code, out = container.exec_run([RUNNER], user=user, stdout=True, stderr=False, demux=False)
        if code in NOT_FOUND:
            raise RuntimeError(NO_RUNNER)
        if code != 0:
            raise RuntimeError(f"docpipe-check exited with {code}: {' '.join(out.decode(errors='replace').split())[:200]}")
        return bytes(out)
    return run


def kube_exec(api_client: Any, namespace: str, selector: Callable[[SeatInfo], str]) -> Callable[[SeatInfo], bytes]:
    """The runner in a seat's pod through the API server's exec (websocket), official client."""
    def run(seat: SeatInfo) -> bytes:
        from kubernetes import client as k8s

        from pipeline.lab.classroom.kube_seats import ExecFailed, pod_exec

        core = k8s.CoreV1Api(api_client)
        names = [p.metadata.name for p in core.list_namespaced_pod(namespace, label_selector=selector(seat)).items
                 if p.status and p.status.phase == "Running" and p.metadata and p.metadata.name]
        if not names:
            raise RuntimeError("no running pod")
        try:
            return b"".join(pod_exec(api_client, namespace, names[0], [RUNNER], timeout=RUNNER_TIMEOUT))
        except ExecFailed as exc:
            if exc.code in NOT_FOUND:
                raise RuntimeError(NO_RUNNER) from None
            raise
    return run


def runner_for(backend: Backend) -> Callable[[SeatInfo], bytes]:
    """How to run the runner in one seat of this backend (KubeBackend.api, DockerBackend.client)."""
    b: Any = backend
    if backend.name == "kubernetes":
        return kube_exec(b.api, b.namespace, lambda s: f"{WORKSHOP_LABEL}={s.workshop},{SEAT_LABEL}={s.seat}")
    return docker_exec(b.client)


def gather(seats: Sequence[SeatInfo], run: Callable[[SeatInfo], bytes], jobs: int = JOBS) -> list[SeatProgress]:
    """Every seat's results, in the seats' order; a failing seat gets its error, not an exception."""
    def one(seat: SeatInfo) -> SeatProgress:
        if seat.status not in ("running", "starting"):
            return SeatProgress(seat.seat, seat.student, error=f"seat is {seat.status}")
        try:
            checks = parse(run(seat))
        except Exception as exc:  # one seat's failure is its row's, never the class's
            text = " ".join(str(exc).split())[:200] or type(exc).__name__
            return SeatProgress(seat.seat, seat.student, error=text)
        return SeatProgress(seat.seat, seat.student, checks)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(seats)))) as pool:
        return list(pool.map(one, seats))


def steps(rows: Sequence[SeatProgress]) -> list[str]:
    """The step names, in the doc's order (the first seat that was checked gives it)."""
    names: list[str] = []
    for row in rows:
        for c in row.checks:
            if c["name"] not in names:
                names.append(c["name"])
    return names


def table(rows: Sequence[SeatProgress]) -> str:
    """student x step: 'done', '-' (not yet), 'timeout'; a seat that failed says why."""
    names = steps(rows)
    if not names and not any(r.error for r in rows):
        return "this workshop lists no checks"
    width = max([len(r.student or r.seat) for r in rows] + [7])
    head = f"{'student':<{width}}  {'done':<5}  " + "  ".join(f"{i + 1:>2}" for i in range(len(names)))
    out = [head]
    for r in rows:
        label = (r.student or r.seat)[:width]
        if r.error:
            out.append(f"{label:<{width}}  {'?':<5}  {r.error}")
            continue
        by = {c["name"]: c for c in r.checks}
        cells = ["ok" if by.get(n, {}).get("ok") else "to" if by.get(n, {}).get("timed_out") else " -" for n in names]
        out.append(f"{label:<{width}}  {f'{r.done}/{len(r.checks)}':<5}  " + "  ".join(f"{c:>2}" for c in cells))
    out.append("")
    out += [f"{i + 1:>2}. {n}" for i, n in enumerate(names)]
    out.append("ok: done, -: not yet, to: stopped at its timeout")
    return "\n".join(out)


# ------------------------------------------------------------------ what the class page shows


def summary_path(workdir: Path, workshop: str) -> Path:
    return Path(workdir) / "lab" / f"{workshop}-progress.json"


def save(workdir: Path, workshop: str, rows: Sequence[SeatProgress], when: str) -> None:
    """The last `lab progress` per seat, for the class page: counts and step names only (no output,
    no secret), written atomically."""
    from pipeline.atomic import atomic_write

    data = {"checked": when, "seats": {r.seat: {"done": r.done, "total": len(r.checks), "error": r.error,
                                                "pending": [c["name"] for c in r.checks if not c.get("ok")]}
                                       for r in rows}}
    path = summary_path(workdir, workshop)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(data, sort_keys=True, indent=1) + "\n").encode())


def summaries(workdir: Path, workshop: str) -> dict[str, str]:
    """seat -> one line for its class page tile ("2/3 steps done at 14:05Z"); {} before any check."""
    try:
        data = json.loads(summary_path(workdir, workshop).read_text(encoding="utf-8"))
        seats, when = dict(data["seats"]), str(data.get("checked", ""))[11:16]
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out = {}
    for seat, row in seats.items():
        if not isinstance(row, dict):
            continue
        if row.get("error"):
            out[seat] = f"progress unknown ({str(row['error'])[:60]})"
        elif row.get("total"):
            out[seat] = f"{row.get('done', 0)}/{row['total']} steps done at {when}Z"
    return out
