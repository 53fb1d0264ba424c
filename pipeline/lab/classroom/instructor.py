"""`docpipe lab up WORKSHOP`: from a workshop name (or a Google Docs link) to running seats."""

from __future__ import annotations

import datetime as dt
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import BadInput
from pipeline.lab import labels as L
from pipeline.lab.classroom import roster
from pipeline.lab.classroom.backend import Backend, ClassRequest, SeatRequest, new_password, new_token, rfc3339
from pipeline.lab.image.bases import NOVNC_PROFILE, profile_for
from pipeline.lab.image.spec import DEFAULT_BASE, DEFAULT_CPUS, DEFAULT_MEMORY
from pipeline.lab.settings import LabSettings
from pipeline.slugs import workshop_slug

if TYPE_CHECKING:
    from pipeline.config import FolderSettings
    from pipeline.lab.image.workshops import Workshop

NOVNC_DESKTOP_PORT = NOVNC_PROFILE.desktop_port
_DOC_LINK = re.compile(r"https://docs\.google\.com/document/(?:u/\d+/)?d/([A-Za-z0-9_-]{20,})")
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{25,}")


def doc_id_of(ref: str) -> str | None:
    """The Drive file id when WORKSHOP is a Docs link or a bare file id, else None."""
    m = _DOC_LINK.match(ref.strip())
    if m:
        return m.group(1)
    return ref if _FILE_ID.fullmatch(ref) and not re.fullmatch(r"[a-z0-9-]+", ref) else None


# How `lab up <doc link>` brings that doc into the archive: pull it and replay, through docpipe's
# stage runner (pipeline.stages.fetch_doc: the workdir's lock, the stages' events). The CLI hands
# it in: the lab sits below the stages and never imports them (no import cycle through the lab).
FetchDoc = Callable[[str], None]


@dataclass(frozen=True)
class Pipeline:
    """What `docpipe lab` asks of the rest of docpipe, set by pipeline.cli as the click context's object."""

    fetch_doc: Callable[[FolderSettings, str], None]


def resolve_workshop(workdir: Path, ref: str, settings: LabSettings, *,
                     fetch: FetchDoc) -> tuple[str, Workshop | None]:
    """(archive commit, the workshop WORKSHOP names); a Docs link or file id is fetched first."""
    from pipeline.lab.image import provision  # not at import: every docpipe command loads this module

    file_id = doc_id_of(ref)
    if file_id:
        fetch(file_id)
    if not (Path(workdir) / "archive").exists():
        return "", None
    commit, workshops = provision.archive_workshops(workdir, settings)
    slug = workshop_slug(ref)
    for ws in workshops:
        if (file_id and ws.doc_id == file_id) or (not file_id and slug in (ws.name, workshop_slug(Path(ws.path).stem))):
            return commit, ws
    if file_id:
        raise BadInput(f"doc {file_id} has no \"Lab desktop\" section")
    return commit, None


def resolve_image(workdir: Path, ref: str, settings: LabSettings, *, fetch: FetchDoc,
                  on_line: Callable[[str], None] | None = None, client: Any = None) -> tuple[str, str]:
    """(workshop slug, image ref) for WORKSHOP; builds the image when the archive has a newer spec."""
    commit, ws = resolve_workshop(workdir, ref, settings, fetch=fetch)
    if ws is not None:
        from pipeline.lab.image import engine, provision

        settings = provision.with_archive(workdir, settings)
        client = client or engine.client()
        result = provision.provision_workshop(ws, settings, revision=commit, client=client, on_line=on_line)
        if not engine.image_exists(client, result.tags[0]):  # found in the registry, not here: seats need it here
            engine.pull(client, result.tags[0])
        return ws.name, result.tags[0]
    # An image by name alone could be any archive's build: docpipe does not guess.
    image = f"{settings.repo(workshop_slug(ref))}:latest"
    where = "in the archive" if commit else f"(no archive in {workdir})"
    raise BadInput(f"no workshop named {ref!r} {where}; to start an image anyway, name it: --image {image}")


def make_backend(workdir: Path, settings: LabSettings, *, client: Any = None,
                 on_line: Callable[[str], None] | None = None) -> Backend:
    if settings.backend == "docker":
        from pipeline.lab.classroom.docker_seats import DockerBackend

        return DockerBackend(settings, workdir, client=client, on_line=on_line)
    if settings.backend == "kubernetes":
        try:
            from pipeline.lab.classroom.kube_seats import KubernetesBackend
        except ImportError as exc:
            raise BadInput(f"the kubernetes lab backend is not available here ({exc})") from None
        backend: Backend = KubernetesBackend(settings, workdir=workdir)
        return backend
    raise BadInput(f"lab backend {settings.backend!r} must be docker or kubernetes")


def public_url(settings: LabSettings) -> str:
    """[lab] public_url, else https://<this host's name>:<listen port>."""
    if settings.public_url:
        return settings.public_url.rstrip("/")
    port = settings.listen.rpartition(":")[2]
    scheme = "http" if settings.insecure_http else "https"
    return f"{scheme}://{socket.getfqdn() or socket.gethostname()}:{port}"


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    revision: str
    desktop_port: int
    ports: tuple[int, ...]
    memory: int
    cpus: float


def pinned(client: Any, ref: str) -> str:
    """`ref` by digest (registry/repo@sha256:...), as Kubernetes nodes must pull it: seats of one
    class then run the very same image even if the tag moves."""
    if "@sha256:" in ref:
        return ref
    repo = ref.rpartition(":")[0] if ":" in ref.rpartition("/")[2] else ref
    digests = [d for d in (client.images.get(ref).attrs.get("RepoDigests") or []) if d.startswith(repo + "@")]
    if not digests:
        raise BadInput(f"{ref} is not in a registry the cluster can pull from: set [lab] registry "
                       "(docpipe pushes the image there), or pass --image REGISTRY/REPO@sha256:...")
    return str(sorted(digests)[0])


def plain_image_info(ref: str) -> ImageInfo:
    """What a seat needs to know of an image docpipe cannot inspect (a digest for a remote
    cluster, planned without a Docker Engine): docpipe's own desktop base."""
    return ImageInfo(ref, "", NOVNC_DESKTOP_PORT, (), DEFAULT_MEMORY, DEFAULT_CPUS)


def image_info(client: Any, ref: str) -> ImageInfo:
    labels = client.images.get(ref).labels or {}
    profile = profile_for(labels.get(L.BASE_LABEL) or DEFAULT_BASE, "")
    return ImageInfo(ref, labels.get(L.REVISION_LABEL, ""),
                     int(labels.get(L.DESKTOP_PORT_LABEL, profile.desktop_port)),
                     tuple(int(p) for p in labels.get(L.PORTS_LABEL, "").split(",") if p.strip().isdigit()),
                     int(labels.get(L.MEMORY_LABEL, DEFAULT_MEMORY)),
                     float(labels.get(L.CPUS_LABEL, DEFAULT_CPUS)))


def class_request(workshop: str, image: ImageInfo, settings: LabSettings, *, count: int,
                  students: list[roster.Student] | None, existing: list[SeatRequest], now: dt.datetime,
                  class_token: str = "") -> ClassRequest:
    """Decide every seat before any backend runs; seats already running (as the backend reads them
    back: labels on Docker, the seat's Secret on Kubernetes) keep their tokens, passwords and expiry."""
    from pipeline.lab.image.bases import NOVNC_PROFILE

    expires = rfc3339(now + dt.timedelta(seconds=settings.ttl_seconds))
    wanted = ([(s.seat, s.name, s.email) for s in students] if students
              else [(f"seat-{i}", "", "") for i in range(1, count + 1)])
    running = {s.seat: s for s in existing if s.token and s.watch_token}
    seats = []
    for seat, name, email in wanted:
        old = running.get(seat)
        if old is not None:
            # A running seat keeps its links: the student's open desktop and the instructor's
            # open class page stay valid.
            seats.append(old)
            continue
        seats.append(SeatRequest(seat=seat, student=name, email=email, token=new_token(), watch_token=new_token(),
                                 password=new_password(NOVNC_PROFILE), view_password=new_password(NOVNC_PROFILE),
                                 expires=expires))
    return ClassRequest(workshop=workshop, class_id=workshop, class_token=class_token or new_token(),
                        image=image.ref, revision=image.revision, desktop_port=image.desktop_port,
                        ports=image.ports, memory=image.memory, cpus=image.cpus,
                        public_url=public_url(settings), egress=settings.egress, seats=tuple(seats))
