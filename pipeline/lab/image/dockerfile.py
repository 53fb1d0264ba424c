"""Workshop Dockerfile and build context from a validated LabSpec. No engine needed.

The context is a hand-made tar: doc-derived file contents travel as files (COPY), never through
a shell or a Dockerfile line. The tar is deterministic (fixed mtime/owner, sorted), so its hash
and the Dockerfile's make the image tag: an unchanged spec gives an unchanged tag.
"""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from pipeline.errors import BadInput
from pipeline.lab import labels as L
from pipeline.lab.image.bases import NOVNC_REPO, BaseProfile, check_image_ref, profile_for
from pipeline.lab.image.spec import LabSpec
from pipeline.resources import shipped
from pipeline.slugs import workshop_slug

TEMPLATE = "Dockerfile.j2"
NOVNC_DIR = "debian-novnc"
# What runs inside a seat (pipeline/lab/seat), copied into the images as build-context files.
SEAT_DIR = Path(__file__).resolve().parents[1] / "seat"
RUNNER = "docpipe-check"  # context name of the check runner (seat/check.py)
AGENT = "docpipe-agent"  # context name of the seat agent (seat/agent.py)


def _jarg(value: object) -> str:
    """A JSON string for an exec-form array: Docker decodes it, no shell, no substitution."""
    return json.dumps(str(value), ensure_ascii=True)


def _dq(value: object) -> str:
    """A double-quoted word for LABEL/ENV: Docker unescapes \\ and \" and expands $ there."""
    # Docker ends an instruction at a newline only; every other control becomes a space so
    # the value's own spacing (which the spec keeps) is written exactly.
    text = "".join(" " if ord(c) < 32 or c == "\x7f" else c for c in str(value))
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def templates_dir(override: Path | None = None) -> Path:
    return Path(override) if override else shipped("templates") / "desktop"


def _env(directory: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(directory), str(templates_dir())]),
        undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True,
    )
    env.filters["jarg"] = _jarg
    env.filters["dq"] = _dq
    return env


@dataclass(frozen=True)
class Context:
    dockerfile: str
    files: dict[str, bytes]  # path in the context -> bytes (Dockerfile included)
    tag: str  # content hash: Dockerfile + every context file
    base_ref: str  # what FROM names (docpipe's own base is built first when missing)

    def tar(self) -> bytes:
        return make_tar(self.files, {RUNNER: 0o755})


def make_tar(files: dict[str, bytes], modes: dict[str, int] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs: set[str] = set()
        for name in sorted(files):
            parts = name.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(files[name]), 0
            info.mode = (modes or {}).get(name, 0o644)
            tar.addfile(info, io.BytesIO(files[name]))
    return buf.getvalue()


def content_hash(files: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()[:16]


def novnc_context(tdir: Path | None = None) -> tuple[dict[str, bytes], dict[str, int], str]:
    """The debian-novnc base recipe as context files, modes and its image ref (tag = recipe hash)."""
    root = templates_dir(tdir) / NOVNC_DIR
    if not root.is_dir():
        root = templates_dir() / NOVNC_DIR
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    files.update(seat_files())
    modes = {name: 0o755 for name in files if name.endswith(".sh") or name in (RUNNER, AGENT)}
    return files, modes, f"{NOVNC_REPO}:{content_hash(files)}"


def seat_files() -> dict[str, bytes]:
    """The check runner and the seat agent, as the base recipe's context carries them."""
    return {RUNNER: (SEAT_DIR / "check.py").read_bytes(), AGENT: (SEAT_DIR / "agent.py").read_bytes()}


def checks_file(spec: LabSpec) -> bytes:
    """/etc/docpipe/checks.json: data the seat's runner reads, never a Dockerfile line or a shell word."""
    return (json.dumps({"checks": spec.checks_json()}, ensure_ascii=False, indent=1, sort_keys=True) + "\n").encode()


def desktop_entry(index: int, argv: tuple[str, ...]) -> bytes:
    # Tokens are validated to a charset with no quoting/field codes; shlex.join is belt and braces.
    return (f"[Desktop Entry]\nType=Application\nName=docpipe autostart {index}\n"
            f"Exec={shlex.join(argv)}\nX-GNOME-Autostart-enabled=true\n").encode()


def render(spec: LabSpec, *, workshop: str, title: str = "", revision: str = "", source: str = "",
           tdir: Path | None = None, archive: str = "") -> Context:
    """The Dockerfile and build context for one workshop."""
    base_ref = check_image_ref(spec.base_image)
    profile: BaseProfile = profile_for(spec.base, spec.base_image)
    if base_ref == NOVNC_REPO:
        base_ref = novnc_context(tdir)[2]  # pin the exact recipe, so a recipe change rebuilds
    labels = [
        (L.TITLE_LABEL, title or workshop),
        (L.REVISION_LABEL, revision),
        (L.SOURCE_LABEL, source),
        (L.ARCHIVE_LABEL, archive),
        (L.WORKSHOP_IMAGE_LABEL, workshop_slug(workshop)),
        (L.SPEC_LABEL, spec.digest()),
        (L.BASE_LABEL, spec.base),
        (L.MEMORY_LABEL, str(spec.memory)),
        (L.CPUS_LABEL, f"{spec.cpus:g}"),
        (L.DESKTOP_PORT_LABEL, str(profile.desktop_port)),
        (L.PORTS_LABEL, ",".join(str(p) for p in spec.ports)),
    ]
    try:
        template = _env(templates_dir(tdir)).get_template(TEMPLATE)
        dockerfile = template.render(spec=spec, base_ref=base_ref, profile=profile, labels=labels)
    except jinja2.TemplateError as exc:
        raise BadInput(f"desktop template {TEMPLATE}: {' '.join(str(exc).split())}") from None
    files: dict[str, bytes] = {"Dockerfile": dockerfile.encode("utf-8")}
    for path, content in spec.files:
        files[f"home/{path}"] = content.encode("utf-8")
    for i, argv in enumerate(spec.autostart, 1):
        files[f"autostart/docpipe-{i:02d}.desktop"] = desktop_entry(i, argv)
    if spec.setup:
        files["setup.sh"] = ("\n".join(spec.setup) + "\n").encode("utf-8")
    if spec.checks:  # the runner too: a webtop base has no docpipe-check of its own
        files["checks.json"] = checks_file(spec)
        files[RUNNER] = seat_files()[RUNNER]
    # Labels that change with every commit (revision) stay out of the tag: the tag says "same
    # desktop", so an unchanged spec on a new commit builds nothing.
    hashed = dict(files)
    hashed["Dockerfile"] = template.render(spec=spec, base_ref=base_ref, profile=profile,
                                           labels=[kv for kv in labels if L.in_image_tag(kv[0])]).encode()
    return Context(dockerfile=dockerfile, files=files, tag=content_hash(hashed), base_ref=base_ref)
