"""What every seat backend (Docker on one host, Kubernetes for larger classes) takes and gives, and
how a seat's secrets and times are made (the same for every backend)."""
from __future__ import annotations

import datetime as dt
import secrets
import string
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.lab.image.bases import BaseProfile

_ALPHABET = string.ascii_letters + string.digits


def rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_rfc3339() -> str:
    return rfc3339(dt.datetime.now(dt.UTC))


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


def new_password(profile: BaseProfile) -> str:
    # VNC authentication uses only the first 8 characters; webtops take longer ones.
    length = 8 if "VNC_PASSWORD" in profile.password_env else 20
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class SeatRequest:
    """One student's desktop, fully decided before any backend runs (tokens and passwords from `secrets`)."""
    seat: str            # DNS-1123 label, unique in the class, e.g. "ada-lovelace" or "seat-3"
    student: str         # display name from the roster (untrusted text), or "" without a roster
    email: str           # "" when unknown
    token: str           # >= 128-bit url-safe token: the key of the seat's links (links.py)
    watch_token: str     # separate token for the view-only link
    password: str        # VNC password (full control)
    view_password: str   # VNC view-only password
    expires: str         # RFC 3339 UTC, e.g. "2026-12-04T18:00:00Z"


@dataclass(frozen=True)
class ClassRequest:
    """One workshop's class: everything shared by its seats."""
    workshop: str        # workshop slug (DNS-1123 label)
    class_id: str        # short stable id of this class (DNS-1123 label), e.g. the workshop slug
    class_token: str     # >= 128-bit token: the key of the instructor's class page
    image: str           # image reference; Kubernetes uses registry/repo@sha256:digest
    revision: str        # archive commit the image was built from
    desktop_port: int    # noVNC/HTTP port inside the seat (e.g. 6080)
    ports: tuple[int, ...]  # the workshop's own ports (e.g. (8080,))
    memory: int          # bytes (request = limit)
    cpus: float
    public_url: str      # what every printed link is made from, e.g. "https://lab.example.org:8443"
    egress: str = "none"  # "none" | "internet": the seats' outbound traffic
    seats: tuple[SeatRequest, ...] = ()
    origin: str = ""     # labels.ORIGIN_LABEL: "launcher" for `lab serve`'s seats, "" for a class


@dataclass(frozen=True)
class SeatInfo:
    """A running seat as `lab up --json` / `lab status --json` print it."""
    workshop: str
    seat: str
    student: str
    url: str             # opens the desktop straight away; password in the URL fragment (#...), never a query string
    password: str
    watch_url: str       # view-only desktop
    ports: dict[str, str]  # {"8080": "https://p8080-<id>.lab.example.org:8443/s/<key>/"}
    container: str       # container name (Docker) or pod/deployment name (Kubernetes)
    expires: str         # RFC 3339 UTC
    status: str          # "running", "starting", "expired", ...
    image: str = ""
    gateway: str = ""    # the public URL the links were made from (not printed per seat)
    files_url: str = ""  # the seat agent's files page; "" when the base has no agent (a webtop)
    progress_url: str = ""  # the learner's own progress page; "" likewise
    origin: str = ""     # "launcher" (`lab serve` started it) or "" (a class)

    def to_json(self) -> dict[str, Any]:
        data = {"seat": self.seat, "student": self.student, "url": self.url, "password": self.password,
                "watch_url": self.watch_url, "ports": dict(self.ports), "container": self.container,
                "expires": self.expires, "status": self.status, "workshop": self.workshop, "image": self.image,
                "origin": self.origin or "class"}
        if self.files_url:  # absent, not empty, where the seat's base has no agent
            data.update(files_url=self.files_url, progress_url=self.progress_url)
        return data


class Backend(Protocol):
    name: str  # "docker" | "kubernetes"

    def up(self, cls: ClassRequest) -> list[SeatInfo]:
        """Make the class exactly cls.seats (idempotent: same request twice changes nothing; fewer seats removes the extra ones)."""
    def status(self, workshop: str | None = None) -> list[SeatInfo]: ...
    def seat_requests(self, class_id: str) -> list[SeatRequest]:
        """The class's seats as they run, secrets included: what `lab up` again keeps."""
    def class_token(self, class_id: str) -> str:
        """The running class's page token ("" when none), so adding seats keeps the page's link."""
    def class_url(self, cls: ClassRequest) -> str:
        """The instructor's class page of a class `up` made."""
    def down(self, workshop: str) -> int: ...
    def reap(self, now: str) -> int:
        """Remove seats whose expiry (RFC 3339) is before `now`; returns how many."""
