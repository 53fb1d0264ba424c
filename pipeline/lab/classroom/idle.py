"""Idle seats: who is connected, when a viewer was last seen, which seats `lab reap --idle` stops.

docpipe's desktop base records, every 5 s, the epoch of the last time a viewer was connected
(an established connection to its VNC server) in SEEN_FILE (its entrypoint; /proc/net/tcp, no
extra package). docpipe reads that file back through Docker's archive API (a running or a
stopped seat alike, no process started in the seat), or on Kubernetes with `cat` through the API
server's exec (kube_seats.pod_exec; a seat scaled to 0 has no pod and is not running). The file is the student's to change: at
worst a student keeps their own seat from being stopped early, which the ttl still ends.
"""

from __future__ import annotations

import datetime as dt
import io
import tarfile
from dataclasses import dataclass
from typing import Any

from pipeline.lab.classroom.backend import rfc3339

SEEN_FILE = "/tmp/docpipe-seen"
PROBE_EVERY = 5  # seconds, the entrypoint's loop
CONNECTED_WITHIN = 3 * PROBE_EVERY  # a probe seen this recently means a viewer is connected now


@dataclass(frozen=True)
class Activity:
    seat: str
    running: bool
    connected: bool
    last_seen: str | None  # RFC 3339 UTC, None when nobody was ever connected
    idle_since: dt.datetime  # the last viewer seen, else the seat's start

    def to_json(self) -> dict[str, Any]:
        return {"connected": self.connected, "last_seen": self.last_seen}


def parse_seen(data: bytes) -> int | None:
    text = data.decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


def docker_seen(container: Any) -> int | None:
    """The epoch in SEEN_FILE of a Docker seat (None when there is none yet)."""
    from docker.errors import APIError, NotFound

    try:
        stream, _ = container.get_archive(SEEN_FILE)
    except (NotFound, APIError):
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = next(iter(tar), None)
        handle = tar.extractfile(member) if member is not None else None
        return parse_seen(handle.read(64)) if handle is not None else None


def started_at(value: str) -> dt.datetime:
    """Docker's State.StartedAt (RFC 3339 with nanoseconds) as a UTC datetime."""
    head = value.split(".")[0].rstrip("Z")
    try:
        return dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.now(dt.UTC)


def activity(seat: str, running: bool, seen: int | None, started: dt.datetime, now: dt.datetime) -> Activity:
    last = dt.datetime.fromtimestamp(seen, dt.UTC) if seen else None
    connected = running and last is not None and (now - last).total_seconds() <= CONNECTED_WITHIN
    since = max(last, started) if last is not None else started
    return Activity(seat, running, connected, rfc3339(last) if last else None, since)


def idle_for(a: Activity, now: dt.datetime) -> float:
    return 0.0 if a.connected else (now - a.idle_since).total_seconds()
