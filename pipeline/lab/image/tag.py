"""The one question render asks the lab: what a doc's workshop desktop is, and its image tag.

Pure (no engine, no archive): the doc's Markdown and the settings a spec is checked against in,
the validated spec and the tag `docpipe provision` gives its image out, found exactly as provision
finds it (workshops.workshop_of, dockerfile.render), so the page shows the tag that gets built.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.lab.image import dockerfile
from pipeline.lab.image.provision import archive_id
from pipeline.lab.image.spec import DEFAULT_BASES
from pipeline.lab.image.workshops import workshop_of
from pipeline.lab.settings import LabSettings, desktop_templates


@dataclass(frozen=True)
class WorkshopImage:
    name: str  # the workshop's name, what `docpipe lab up` takes
    lab: dict[str, Any] | None  # the validated spec as JSON, with its `digest` and `image_tag`
    error: str | None = None  # why the spec is invalid (then `lab` is None): a bad spec never fails render


def workshop_image(markdown: str, path: str, *, folder_id: str, templates: Path | None = None,
                   allowed_bases: Mapping[str, str] | None = None, allow_setup: bool = False) -> WorkshopImage | None:
    """The workshop the doc at archive `path` describes, or None when it has no "Lab desktop"
    heading. `folder_id` is the archive's Drive folder (whose images these are: it is part of
    the tag); `templates` is render's templates dir (its desktop/ may override the Dockerfile)."""
    settings = LabSettings(templates=desktop_templates(templates), allowed_bases=allowed_bases or DEFAULT_BASES,
                           allow_setup=allow_setup, archive=archive_id(folder_id))
    ws = workshop_of(markdown, path, allowed_bases=settings.allowed_bases, allow_setup=settings.allow_setup)
    if ws is None:
        return None
    if ws.spec is None:
        return WorkshopImage(ws.name, None, ws.error)
    data = ws.spec.to_json()
    data["digest"] = ws.spec.digest()
    data["image_tag"] = dockerfile.render(ws.spec, workshop=ws.name, title=ws.title, tdir=settings.templates,
                                          archive=settings.archive).tag
    return WorkshopImage(ws.name, data)
