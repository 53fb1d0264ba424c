"""The launcher's seats on the classroom's backends (Docker or Kubernetes), through their `up`.

Each launcher seat is a class of one (class id = seat name = `launch-<hex>`): `Backend.up` makes a
class exactly what it is asked, so seats started for different visitors never touch each other,
and `lab status` / `lab down WORKSHOP` / reaping see them like any class's seats, labelled with
their origin ("launcher", labels.ORIGIN_LABEL). They get the class's ttl ([lab] ttl) and the same reaping.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.lab.classroom import instructor
from pipeline.lab.classroom.backend import Backend, ClassRequest, SeatInfo, SeatRequest, new_password, new_token, rfc3339
from pipeline.lab.image.bases import NOVNC_PROFILE
from pipeline.lab.labels import LAUNCHER_ORIGIN
from pipeline.lab.settings import LabSettings


@dataclass
class ClassroomSeats:
    backend: Backend
    settings: LabSettings
    workdir: Path
    images: dict[str, instructor.ImageInfo]  # the published workshops and the image each starts
    public_url: str = ""
    gateway: Any = field(default=None, repr=False)  # the Docker gateway last seen (its route written once)

    @property
    def ttl_seconds(self) -> int:
        return self.settings.ttl_seconds

    def workshops(self) -> tuple[str, ...]:
        return tuple(sorted(self.images))

    def start(self, workshop: str, name: str, student: str) -> SeatInfo:
        image = self.images[workshop]
        expires = rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.settings.ttl_seconds))
        seat = SeatRequest(seat=name, student=student, email="", token=new_token(), watch_token=new_token(),
                           password=new_password(NOVNC_PROFILE), view_password=new_password(NOVNC_PROFILE),
                           expires=expires)
        cls = ClassRequest(workshop=workshop, class_id=name, class_token="", image=image.ref,
                           revision=image.revision, desktop_port=image.desktop_port, ports=image.ports,
                           memory=image.memory, cpus=image.cpus, public_url=self.public_url or
                           instructor.public_url(self.settings), egress=self.settings.egress, seats=(seat,),
                           origin=LAUNCHER_ORIGIN)
        infos = self.backend.up(cls)
        return next(i for i in infos if i.seat == name)

    def live(self) -> dict[str, SeatInfo]:
        now = dt.datetime.now(dt.UTC)
        stamp = rfc3339(now)
        return {s.seat: s for s in self.backend.status()
                if s.origin == LAUNCHER_ORIGIN and s.status in ("running", "starting") and s.expires > stamp}

    def maintain(self) -> None:
        """Reap expired seats (any class's: every lab command does); on Docker, keep the gateway
        up with the launcher's route (a `lab down` of the last class removes the gateway)."""
        from pipeline.lab.classroom.backend import now_rfc3339

        self.backend.reap(now_rfc3339())
        self.route()

    def route(self) -> None:
        serve_gateway = getattr(self.backend, "serve_gateway", None)
        if serve_gateway is None:  # Kubernetes: the launcher has its own Service and Ingress rule
            return
        from pipeline.lab.classroom import gateway, nginx

        until = rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.settings.ttl_seconds))
        ports = max((i.ports for i in self.images.values()), key=len, default=())
        gw = serve_gateway(self.public_url or instructor.public_url(self.settings), until, ports)
        if self.gateway is None or gw.id != self.gateway:
            gateway.add_launcher_route(gw, nginx.launcher_conf(not self.settings.insecure_http).encode())
            self.gateway = gw.id


def published(workdir: Path, settings: LabSettings, only: tuple[str, ...] = (),
              client: Any = None) -> dict[str, instructor.ImageInfo]:
    """Every workshop of the archive (or those of `only`), its image built or found (as `lab up`
    does), by name: what the launcher serves. A workshop not in the archive is refused in one line."""
    import dataclasses

    from pipeline.errors import BadInput, DocpipeError
    from pipeline.lab.image import engine, provision

    def no_fetch(file_id: str) -> None:
        raise BadInput("lab serve starts published workshops only, not Docs links")

    try:
        _, found = provision.archive_workshops(workdir, settings)
    except DocpipeError:
        found = []
    names = [w.name for w in found]
    for name in only:
        if name not in names:
            raise BadInput(f"no workshop named {name!r} in the archive of {workdir}")
    client = client or engine.client()
    out: dict[str, instructor.ImageInfo] = {}
    for name in only or tuple(names):
        ws, ref = instructor.resolve_image(workdir, name, settings, fetch=no_fetch, client=client)
        info = instructor.image_info(client, ref)
        if settings.backend == "kubernetes":
            info = dataclasses.replace(info, ref=instructor.pinned(client, ref))
        out[ws] = info
    return out
