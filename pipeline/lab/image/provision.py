"""Provision lab desktops: workshop docs -> Dockerfile + context -> image -> registry.

An image's tag is the hash of its Dockerfile and context, so an unchanged spec finds its tag
(locally or in the registry) and builds nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import BadInput, DocpipeError
from pipeline.lab.image import dockerfile, workshops
from pipeline.lab.image.bases import NOVNC_REPO
from pipeline.lab.image.workshops import Workshop
from pipeline.lab.labels import ARCHIVE_LABEL
from pipeline.lab.settings import LabSettings


@dataclass(frozen=True)
class Plan:
    workshop: str
    title: str
    repo: str
    tag: str
    context: dockerfile.Context

    @property
    def tags(self) -> list[str]:
        return [f"{self.repo}:{self.tag}", f"{self.repo}:latest"]


@dataclass
class Result:
    workshop: str
    image: str = ""
    tags: list[str] = field(default_factory=list)
    digest: str = ""
    built: bool = False
    pushed: bool = False
    seconds: float = 0.0
    error: str | None = None
    exit_code: int | None = None  # with error: 2 for an invalid spec, 1 for engine/registry trouble
    dockerfile: str | None = None  # dry runs only

    def to_json(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if v is not None}
        data["seconds"] = round(self.seconds, 3)
        return data


# ------------------------------------------------------------------ finding workshops


def workshop_of(markdown: str, path: str, settings: LabSettings) -> Workshop | None:
    """The workshop a Markdown doc describes, or None when it has no "Lab desktop" heading."""
    return workshops.workshop_of(markdown, path, allowed_bases=settings.allowed_bases, allow_setup=settings.allow_setup)


def archive_workshops(workdir: Path, settings: LabSettings) -> tuple[str, list[Workshop]]:
    """(tip commit, workshops) from WORKDIR/archive's main branch (pipeline.workshops decides)."""
    from pipeline.archive import open_main

    repo, commit = open_main(workdir)
    return str(commit.id), workshops.find_workshops(repo, commit, allowed_bases=settings.allowed_bases,
                                                    allow_setup=settings.allow_setup)


def archive_id(folder_id: str, source: str = "") -> str:
    """Whose images these are: the archive's Drive folder (what render also knows), else its Gitea repository."""
    return f"drive:{folder_id}" if folder_id else source


def with_archive(workdir: Path, settings: LabSettings) -> LabSettings:
    """`settings` naming the archive in WORKDIR (see archive_id)."""
    import dataclasses

    from pipeline.archive import open_main, read_manifest

    if settings.archive:
        return settings
    try:
        repo, commit = open_main(workdir)
    except DocpipeError:  # no archive here: only the Gitea repository can name it
        return dataclasses.replace(settings, archive=settings.source)
    manifest = read_manifest(repo, commit)
    folder = str((manifest.folder if manifest else {}).get("id") or "")
    return dataclasses.replace(settings, archive=archive_id(folder, settings.source))


def _ours(client: Any, ref: str, settings: LabSettings) -> bool:
    """Whether the image at `ref` is missing or was built for this archive (so docpipe may move it)."""
    from docker.errors import ImageNotFound

    try:
        labels = client.images.get(ref).labels or {}
    except ImageNotFound:
        return True
    return bool(labels.get(ARCHIVE_LABEL) == settings.archive)


def _move_latest(client: Any, p: Plan, settings: LabSettings) -> bool:
    """Point REPO:latest at this build unless :latest is another archive's image."""
    if not _ours(client, p.tags[1], settings):
        return False
    client.images.get(p.tags[0]).tag(p.repo, "latest")
    return True


# ------------------------------------------------------------------ planning and building


def doc_link(doc_id: str) -> str:
    """The doc's Google Docs link: the image's source when no Gitea repository is configured."""
    import re

    return f"https://docs.google.com/document/d/{doc_id}/edit" if re.fullmatch(r"[A-Za-z0-9_-]{10,128}", doc_id) else ""


def plan(ws: Workshop, settings: LabSettings, *, revision: str = "") -> Plan:
    assert ws.spec is not None
    ctx = dockerfile.render(ws.spec, workshop=ws.name, title=ws.title, revision=revision,
                            source=settings.source or doc_link(ws.doc_id), tdir=settings.templates,
                            archive=settings.archive)
    return Plan(ws.name, ws.title, settings.repo(ws.name), ctx.tag, ctx)


def ensure_novnc_base(client: Any, settings: LabSettings, on_line: Callable[[str], None] | None = None) -> str:
    """Build docpipe's debian-novnc base from its recipe when this exact recipe is missing."""
    from pipeline.lab.image import engine

    files, modes, ref = dockerfile.novnc_context(settings.templates)
    if not engine.image_exists(client, ref):
        engine.build(client, dockerfile.make_tar(files, modes), [ref, f"{NOVNC_REPO}:latest"],
                     timeout=settings.build_timeout, on_line=on_line, what="the debian-novnc base")
    return ref


def build_plan(client: Any, p: Plan, settings: LabSettings,
               on_line: Callable[[str], None] | None = None) -> Result:
    from pipeline.lab.image import engine

    start = time.monotonic()
    result = Result(workshop=p.workshop, image=p.repo, tags=p.tags)
    ref = p.tags[0]
    local = engine.image_exists(client, ref)
    # A local image is pushed anyway, so the registry is asked only about a missing one.
    remote = engine.remote_digest(client, ref) if settings.registry and not local else None
    latest = False
    if local:
        latest = _move_latest(client, p, settings)
    elif remote is None:
        if p.context.base_ref.split(":")[0] == NOVNC_REPO:
            ensure_novnc_base(client, settings, on_line)
        engine.build(client, p.context.tar(), p.tags[:1], timeout=settings.build_timeout, on_line=on_line,
                     what=f"workshop {p.workshop}")
        latest = _move_latest(client, p, settings)
        result.built = True
    if settings.registry and (local or result.built):
        # Pushing layers the registry already has costs only a manifest check.
        result.digest = f"{p.repo}@{engine.push(client, ref)}"
        if latest:
            engine.push(client, p.tags[1])
        result.pushed = True
    elif remote is not None:
        result.digest = f"{p.repo}@{remote}"
    else:
        result.digest = client.images.get(ref).id
    result.seconds = time.monotonic() - start
    return result


def provision_workshop(ws: Workshop, settings: LabSettings, *, revision: str = "", dry_run: bool = False,
                       client: Any = None, on_line: Callable[[str], None] | None = None) -> Result:
    """Plan (dry run) or build and push one workshop. Raises for an invalid spec."""
    if ws.spec is None:
        raise BadInput(ws.error or f"{ws.name}: invalid lab spec")
    p = plan(ws, settings, revision=revision)
    if dry_run:
        return Result(workshop=ws.name, image=p.repo, tags=p.tags, dockerfile=p.context.dockerfile)
    if client is None:
        from pipeline.lab.image import engine

        client = engine.client()
    return build_plan(client, p, settings, on_line)


def provision(workdir: Path, settings: LabSettings, *, dry_run: bool = False,
              on_line: Callable[[str], None] | None = None) -> tuple[str, list[Result]]:
    """Every workshop of the archive's tip. One workshop's failure never stops the others."""
    settings = with_archive(workdir, settings)
    commit, workshops = archive_workshops(workdir, settings)
    results: list[Result] = []
    client = None
    for ws in workshops:
        try:
            if not dry_run and client is None and ws.spec is not None:
                from pipeline.lab.image import engine

                client = engine.client()
            results.append(provision_workshop(ws, settings, revision=commit, dry_run=dry_run,
                                              client=client, on_line=on_line))
        except DocpipeError as exc:
            results.append(Result(workshop=ws.name, error=exc.message, exit_code=exc.exit_code))
    return commit, results
