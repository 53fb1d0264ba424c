"""Seats: running desktops of one workshop image, one container per student.

Containers carry labels (workshop, seat number) so `lab status` and `lab down` find them without
any state file; each seat gets its own random password and random host ports on the bind address.
"""

from __future__ import annotations

import secrets
import string
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from pipeline.errors import BadInput, DocpipeError
from pipeline.lab.bases import BaseProfile, profile_for
from pipeline.lab.spec import DEFAULT_BASE, DEFAULT_CPUS, DEFAULT_MEMORY

SEAT_LABEL = "io.docpipe.seat"  # value: the workshop slug
INDEX_LABEL = "io.docpipe.seat-index"
URL_LABEL = "io.docpipe.url-path"
BASE_LABEL = "io.docpipe.base"  # set on the image by the Dockerfile template, copied to seats
SHM_SIZE = "256m"
READY_TIMEOUT = 60.0
# VNC authentication uses only the first 8 characters of a password; webtops take longer ones.
_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Seat:
    workshop: str
    index: int
    container: str
    url: str
    password: str
    status: str
    image: str

    def to_json(self) -> dict[str, Any]:
        return {"workshop": self.workshop, "seat": self.index, "container": self.container,
                "url": self.url, "password": self.password, "status": self.status, "image": self.image}


def new_password(profile: BaseProfile) -> str:
    length = 8 if "VNC_PASSWORD" in profile.password_env else 20
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _base(labels: dict[str, str]) -> str:
    return labels.get(BASE_LABEL) or DEFAULT_BASE


def _profile(labels: dict[str, str]) -> BaseProfile:
    return profile_for(_base(labels), "")


def _seat_of(container: Any) -> Seat:
    labels = container.labels or {}
    attrs = container.attrs
    env = dict(e.split("=", 1) for e in attrs.get("Config", {}).get("Env") or [] if "=" in e)
    profile = _profile(labels)
    password = next((env[k] for k in profile.password_env if k in env), "")
    port_key = f"{labels.get('io.docpipe.desktop-port', profile.desktop_port)}/tcp"
    bindings = (attrs.get("NetworkSettings", {}).get("Ports") or {}).get(port_key) or []
    url = ""
    if bindings:
        host = bindings[0].get("HostIp") or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        url = f"http://{host}:{bindings[0]['HostPort']}{labels.get(URL_LABEL, profile.url_path)}"
    return Seat(workshop=labels.get(SEAT_LABEL, ""), index=int(labels.get(INDEX_LABEL, "0")),
                container=container.name, url=url, password=password, status=container.status,
                image=attrs.get("Config", {}).get("Image", ""))


def list_seats(client: Any, workshop: str | None = None) -> list[Seat]:
    label = f"{SEAT_LABEL}={workshop}" if workshop else SEAT_LABEL
    seats = [_seat_of(c) for c in client.containers.list(all=True, filters={"label": label})]
    return sorted(seats, key=lambda s: (s.workshop, s.index))


def _wait_ready(container: Any, url: str, timeout: float) -> None:
    """Until the desktop's web page answers; a container that exits fails with its log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        if container.status in ("exited", "dead"):
            tail = container.logs(tail=5).decode("utf-8", errors="replace")
            raise DocpipeError(f"seat {container.name} stopped: {' '.join(tail.split())[-300:]}")
        try:
            with urllib.request.urlopen(url.split("?", 1)[0], timeout=2) as response:
                if response.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code == 401:  # a webtop's basic auth answering means it is up
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.3)
    raise DocpipeError(f"seat {container.name} did not answer on {url.split('?', 1)[0]} within {timeout:g}s")


def up(client: Any, workshop: str, image: str, seats: int, *, bind: str = "127.0.0.1",
       max_seats: int = 30, ready_timeout: float = READY_TIMEOUT) -> list[Seat]:
    """Start `seats` more desktops of `image`; limits come from the image's docpipe labels."""
    from docker.errors import APIError, ImageNotFound

    if not 1 <= seats <= max_seats:
        raise BadInput(f"--seats must be between 1 and {max_seats}")
    try:
        img = client.images.get(image)
    except ImageNotFound:
        try:  # built elsewhere and pushed: the registry has it
            img = client.images.pull(image)
        except APIError:
            raise DocpipeError(f"no image {image} here or in its registry; run `docpipe provision` first") from None
    labels = img.labels or {}
    profile = _profile(labels)
    desktop_port = int(labels.get("io.docpipe.desktop-port", profile.desktop_port))
    extra_ports = [int(p) for p in labels.get("io.docpipe.ports", "").split(",") if p.strip().isdigit()]
    memory = int(labels.get("io.docpipe.memory", DEFAULT_MEMORY))
    cpus = float(labels.get("io.docpipe.cpus", DEFAULT_CPUS))
    existing = list_seats(client, workshop)
    first = max((s.index for s in existing), default=0) + 1
    started: list[Any] = []
    try:
        for index in range(first, first + seats):
            password = new_password(profile)
            env = {k: password for k in profile.password_env}
            env.update(dict(profile.extra_env))
            container = client.containers.run(
                image, detach=True, name=f"docpipe-{workshop}-{index}-{secrets.token_hex(3)}",
                environment=env,
                labels={SEAT_LABEL: workshop, INDEX_LABEL: str(index), URL_LABEL: profile.url_path,
                        BASE_LABEL: _base(labels)},
                ports={f"{p}/tcp": (bind, None) for p in [desktop_port, *extra_ports]},
                mem_limit=memory, memswap_limit=memory, nano_cpus=int(cpus * 1e9), shm_size=SHM_SIZE,
                pids_limit=2048,
                # docpipe's own base runs as a plain user and needs no capabilities; webtops run
                # an s6 init as root that drops to their user itself.
                security_opt=["no-new-privileges"] if profile.user else None,
                cap_drop=["ALL"] if profile.user else None,
            )
            started.append(container)
        result = []
        for container in started:
            container.reload()
            seat = _seat_of(container)
            _wait_ready(container, seat.url, ready_timeout)
            container.reload()
            result.append(_seat_of(container))
        return result
    except (APIError, DocpipeError) as exc:
        for container in started:  # all or nothing: no half-started class
            try:
                container.remove(force=True)
            except APIError:
                pass
        if isinstance(exc, DocpipeError):
            raise
        raise DocpipeError(f"starting seats of {workshop} failed: {' '.join(str(exc).split())[:300]}") from None


def down(client: Any, workshop: str) -> int:
    seats = client.containers.list(all=True, filters={"label": f"{SEAT_LABEL}={workshop}"})
    for container in seats:
        container.remove(force=True)
    return len(seats)
