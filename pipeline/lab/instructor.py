"""`docpipe lab up WORKSHOP`: from a workshop name (or a Google Docs link) to running seats."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from pipeline.errors import BadInput
from pipeline.lab import provision, seats
from pipeline.lab.settings import LabSettings
from pipeline.lab.spec import workshop_slug

_DOC_LINK = re.compile(r"https://docs\.google\.com/document/(?:u/\d+/)?d/([A-Za-z0-9_-]{20,})")
_FILE_ID = re.compile(r"[A-Za-z0-9_-]{25,}")


def doc_id_of(ref: str) -> str | None:
    """The Drive file id when WORKSHOP is a Docs link or a bare file id, else None."""
    m = _DOC_LINK.match(ref.strip())
    if m:
        return m.group(1)
    return ref if _FILE_ID.fullmatch(ref) and not re.fullmatch(r"[a-z0-9-]+", ref) else None


def _pull_doc(workdir: Path, file_id: str) -> None:
    """Pull just this doc with the configured credentials and replay it into the archive."""
    from pipeline import config
    from pipeline.pull import pull
    from pipeline.replay import replay

    folder = config.load_settings(cli={("", "workdir"): str(workdir)})[0].folders[0]
    folder_id = folder.get("drive", "folder") or ""
    creds = folder.get("drive", "credentials")
    pull(folder_id, workdir=workdir, endpoint=folder.get("drive", "endpoint"),
         credentials=Path(creds) if creds else None, only_file_ids=[file_id], quiet=True)
    replay(workdir, quiet=True)


def resolve_workshop(workdir: Path, ref: str, settings: LabSettings) -> tuple[str, provision.Workshop | None]:
    """(archive commit, the workshop WORKSHOP names); a Docs link or file id is pulled first."""
    file_id = doc_id_of(ref)
    if file_id:
        _pull_doc(workdir, file_id)
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


def resolve_image(workdir: Path, ref: str, settings: LabSettings, *,
                  on_line: Callable[[str], None] | None = None, client: Any = None) -> tuple[str, str]:
    """(workshop slug, image ref) for WORKSHOP; builds the image when the archive has a newer spec."""
    commit, ws = resolve_workshop(workdir, ref, settings)
    if ws is not None:
        result = provision.provision_workshop(ws, settings, revision=commit, client=client, on_line=on_line)
        return ws.name, result.tags[0]
    slug = workshop_slug(ref)
    image = f"{settings.repo(slug)}:latest"
    if client is not None:
        from pipeline.lab import engine

        if engine.image_exists(client, image):
            return slug, image
    raise BadInput(f"no workshop named {ref!r} in the archive and no image {image}")


def up(workdir: Path, ref: str, count: int, settings: LabSettings,
       on_line: Callable[[str], None] | None = None) -> tuple[str, list[seats.Seat]]:
    from pipeline.lab import engine

    if not 1 <= count <= settings.max_seats:
        raise BadInput(f"--seats must be between 1 and {settings.max_seats}")
    client = engine.client()
    name, image = resolve_image(workdir, ref, settings, on_line=on_line, client=client)
    return name, seats.up(client, name, image, count, bind=settings.bind, max_seats=settings.max_seats)
