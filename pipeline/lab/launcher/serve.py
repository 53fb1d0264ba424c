"""`docpipe lab serve`: the launcher, long-running (uvicorn serving app.py).

Starlette and uvicorn: a small, well-kept ASGI framework and its usual server; uvicorn listens on a
unix socket as readily as on TCP (the Docker gateway reaches the launcher through a socket in the
workdir, which no seat can reach), and Starlette's routing, cookies and test client are all the
launcher needs (no templates, no sessions, no ORM).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from pipeline.lab.classroom.backend import Backend
from pipeline.lab.launcher import tokens
from pipeline.lab.launcher.app import Options, make_app
from pipeline.lab.launcher.pool import Launcher, Seats
from pipeline.lab.launcher.store import Store
from pipeline.lab.settings import LabSettings


def state_dir(workdir: Path) -> Path:
    return Path(workdir) / "lab" / "launcher"


@dataclass(frozen=True)
class Bind:
    uds: str = ""  # a unix socket path, or
    host: str = ""
    port: int = 0


def parse_bind(text: str, workdir: Path) -> Bind:
    """`unix:PATH`, `HOST:PORT`, or "" (the socket the Docker gateway reaches: gateway.launcher_socket_dir)."""
    from pipeline.errors import BadInput
    from pipeline.lab.classroom import gateway, nginx

    if not text:
        return Bind(uds=str(gateway.launcher_socket_dir(workdir) / nginx.LAUNCHER_SOCKET))
    if text.startswith("unix:"):
        return Bind(uds=text[5:])
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BadInput(f"--bind {text[:80]!r} must be HOST:PORT or unix:PATH")
    return Bind(host=host.strip("[]"), port=int(port))


def unix_socket(path: str) -> socket.socket:
    """A listening socket at `path`, however deep the workdir: the kernel holds a socket's path to
    108 bytes, so it is bound through the folder's descriptor (/proc/self/fd/N/NAME, short)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    folder = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        sock.bind(f"/proc/self/fd/{folder}/{os.path.basename(path)}")
    finally:
        os.close(folder)
    os.chmod(path, 0o666)  # the gateway's www-data connects; the folder (0755, ours) is the guard
    return sock


def parse_images(values: list[str]) -> dict[str, str]:
    """`--image WORKSHOP=REF` values, checked: a workshop slug and an image reference."""
    import re

    from pipeline.errors import BadInput

    out: dict[str, str] = {}
    for value in values:
        name, _, ref = value.partition("=")
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", name) or not re.fullmatch(r"[A-Za-z0-9./:@_-]{1,300}", ref):
            raise BadInput(f"--image {value[:80]!r} must be WORKSHOP=IMAGE, e.g. ws-go=registry/docpipe/ws-go@sha256:...")
        out[name] = ref
    return out


def make_launcher(seats: Seats, workdir: Path, settings: LabSettings) -> tuple[Launcher, bytes]:
    from pipeline.progress import log as progress_log

    store = Store(state_dir(workdir) / "state.db")
    key = tokens.load_key(state_dir(workdir) / "key")
    launcher = Launcher(seats, store, warm=settings.warm, max_seats=settings.max_seats,
                        starts_per_hour=settings.starts_per_hour, keep_home_seconds=settings.keep_home_seconds,
                        log=progress_log)
    return launcher, key


def serve(backend: Backend, workdir: Path, settings: LabSettings, *, bind: Bind, workshops: tuple[str, ...] = (),
          trust_proxy: bool = False, images: dict[str, str] | None = None) -> None:
    """Resolve the published workshops' images, recover the state, route the gateway, serve."""
    import uvicorn

    from pipeline.lab.classroom import instructor
    from pipeline.lab.launcher.seats import ClassroomSeats, published
    from pipeline.lock import workdir_lock
    from pipeline.progress import log

    with workdir_lock(workdir, name=".serve.lock", what="lab serve"):
        if images:  # given by digest (Kubernetes, no engine): docpipe's own desktop base
            served = {name: instructor.plain_image_info(ref) for name, ref in images.items()}
        else:
            served = published(workdir, settings, workshops)
        if not served:
            from pipeline.errors import BadInput

            raise BadInput(f"no workshop in the archive of {workdir} to serve")
        seats = ClassroomSeats(backend, settings, workdir, served, public_url=instructor.public_url(settings))
        launcher, key = make_launcher(seats, workdir, settings)
        launcher.recover()
        seats.route()
        launcher.start_background()
        secure = not settings.insecure_http
        app = make_app(launcher, key, Options(secure=secure, trust_proxy=trust_proxy,
                                              keep_home_seconds=settings.keep_home_seconds))
        if bind.uds and os.path.exists(bind.uds):
            os.unlink(bind.uds)  # a killed launcher's socket: nobody listens on it any more (we hold the lock)
        where = f"unix:{bind.uds}" if bind.uds else f"{bind.host}:{bind.port}"
        log(f"docpipe: lab serve: {', '.join(sorted(served))} on {seats.public_url}/start/<workshop>/ "
            f"(listening on {where}; warm {settings.warm}, at most {settings.max_seats} seats)")
        config = uvicorn.Config(app, host=bind.host or "127.0.0.1", port=bind.port or 8000,
                                log_level="warning", access_log=False, proxy_headers=False,
                                server_header=False, date_header=False, timeout_graceful_shutdown=5)
        try:
            uvicorn.Server(config).run(sockets=[unix_socket(bind.uds)] if bind.uds else None)
        finally:
            launcher.stop()
            launcher.store.close()
