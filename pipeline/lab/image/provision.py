"""Provision lab desktops: workshop docs -> Dockerfile + context -> image -> registry.

An image's tag is the hash of its Dockerfile and context, so an unchanged spec finds its tag
(locally or in the registry) and builds nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import EXIT_BAD_INPUT, EXIT_FAILURE, BadInput, DocpipeError
from pipeline.hashing import sha256_hex
from pipeline.lab.image import dockerfile, workshops
from pipeline.lab.image.bases import NOVNC_REPO
from pipeline.lab.image.spec import LabSpec
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
    if not local and settings.registry:
        # Built here before a registry was set: the same image (same tag) under the plain name
        # is this one. Tag it for the registry, and it is pushed below, not built again.
        plain = f"{dataclasses.replace(settings, registry=None).repo(p.workshop)}:{p.tag}"
        if engine.image_exists(client, plain):
            client.images.get(plain).tag(p.repo, p.tag)
            local = True
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


@dataclass
class Outcome:
    """One workshop of a provision: its image (planned, built, or why not), and its `workshop` hooks."""

    workshop: str
    result: Result
    status: str = "changed"  # "unchanged": skipped, as it was at its last success (see `unchanged`)
    key: str = ""  # what it was provisioned from: its spec and the image settings
    hooks: list[dict[str, Any]] = field(default_factory=list)  # each hook's {"hook", "event", "output"}

    @property
    def ok(self) -> bool:
        return self.result.error is None

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "name": self.workshop, "ok": self.ok, "status": self.status,
                "outputs": [h.get("output") for h in self.hooks]}


@dataclass
class ProvisionSummary:
    commit: str
    dry_run: bool
    workshops: list[Outcome] = field(default_factory=list)

    @property
    def results(self) -> list[Result]:
        return [o.result for o in self.workshops]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.workshops if not o.ok]

    @property
    def exit_code(self) -> int:
        """0; 2 (bad input) when every failure is an invalid spec; 1 otherwise."""
        codes = {o.result.exit_code or EXIT_FAILURE for o in self.failed}
        return 0 if not codes else EXIT_BAD_INPUT if codes == {EXIT_BAD_INPUT} else EXIT_FAILURE

    def to_json(self) -> dict[str, Any]:
        return {"commit": self.commit, "dry_run": self.dry_run, "workshops": [o.to_json() for o in self.workshops]}

    def text(self) -> str:
        lines = []
        for o in self.workshops:
            r = o.result
            if r.error:
                lines.append(f"{o.workshop}: FAILED: {r.error}")
            elif o.status == "unchanged":
                lines.append(f"{o.workshop}: unchanged since the last run")
            elif r.dockerfile is not None:
                lines.append(f"{o.workshop}: would build {r.tags[0]} (and :latest)\n" +
                             "\n".join(f"    {line}" for line in r.dockerfile.rstrip("\n").split("\n")))
            else:
                state = f"built in {r.seconds:.1f}s" if r.built else "unchanged"
                lines.append(f"{o.workshop}: {state}: {r.digest}" + (" (pushed)" if r.pushed else ""))
        if not self.workshops:
            lines.append(f"no workshop docs (no \"Lab desktop\" heading) at {self.commit[:12]}")
        return "\n".join(lines)


def lab_json(spec: LabSpec, tag: str) -> dict[str, Any]:
    """A workshop's validated spec as events and pages show it: with its digest and image tag."""
    return {**spec.to_json(), "digest": spec.digest(), "image_tag": tag}


def _key(ws: Workshop, settings: LabSettings, dry_run: bool) -> str:
    """What a workshop is provisioned from: its spec (or why it is invalid) and the image settings.
    Seat settings (ttl, listen, ...) are not in it: changing them builds nothing."""
    image = {k: getattr(settings, k) for k in ("registry", "prefix", "allow_setup", "build_timeout", "source",
                                                "archive")}
    image.update(allowed_bases=dict(settings.allowed_bases), templates=str(settings.templates or ""))
    spec = ws.spec.to_json() if ws.spec is not None else None
    return sha256_hex(json.dumps([spec, ws.error, ws.title, image, dry_run], sort_keys=True).encode())


After = Callable[[Workshop, dict[str, Any], dict[str, Any]], list[dict[str, Any]]]


def provision(workdir: Path, settings: LabSettings, *, dry_run: bool = False,
              on_step: Callable[[str], None] | None = None, unchanged: Mapping[str, str] | None = None,
              after: After | None = None) -> ProvisionSummary:
    """Every workshop of the archive's tip, planned (dry run) or built and pushed; then `after`
    (the `workshop` event: the workshop, its image and its spec as JSON) for each one that got
    an image. A workshop whose key is in `unchanged` is skipped. One workshop's failure, an
    invalid spec included, never stops the others. `on_step`: one line per Dockerfile step."""
    settings = with_archive(workdir, settings)
    commit, workshops = archive_workshops(workdir, settings)
    summary = ProvisionSummary(commit, dry_run)
    client = None
    for ws in workshops:
        key = _key(ws, settings, dry_run)
        if (unchanged or {}).get(ws.name) == key:
            summary.workshops.append(Outcome(ws.name, Result(workshop=ws.name), "unchanged", key))
            continue
        outcome = Outcome(ws.name, Result(workshop=ws.name), key=key)
        try:
            if not dry_run and client is None and ws.spec is not None:
                from pipeline.lab.image import engine

                client = engine.client()
            outcome.result = provision_workshop(ws, settings, revision=commit, dry_run=dry_run, client=client,
                                                on_line=_steps(ws.name, on_step))
            if after is not None and ws.spec is not None:
                tag = outcome.result.tags[0].rpartition(":")[2]
                outcome.hooks = after(ws, outcome.result.to_json(), lab_json(ws.spec, tag))
        except DocpipeError as exc:
            outcome.result.error, outcome.result.exit_code = exc.message, exc.exit_code
        summary.workshops.append(outcome)
    return summary


def _steps(workshop: str, on_step: Callable[[str], None] | None) -> Callable[[str], None] | None:
    """The engine's `Step i/n : ...` lines of one workshop's build, one line each, to `on_step`."""
    if on_step is None:
        return None
    return lambda line: on_step(f"{workshop}: build {line[:200]}") if line.startswith("Step ") else None
