"""The lab's settings: a typed view of one folder's resolved settings, made once.

pipeline/config.py declares and checks every [lab] key (`docpipe config check` refuses a bad one
with its line); this view only gives the lab typed fields, adds what the lab takes from other
sections (render's templates, the Gitea repository its images name as their source), and checks
nothing again. A field named like a [lab] key takes that key's value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.config import duration_seconds, size_bytes
from pipeline.lab.image.engine import DEFAULT_BUILD_TIMEOUT
from pipeline.lab.image.spec import DEFAULT_BASES

if TYPE_CHECKING:
    from pipeline.config import FolderSettings


@dataclass(frozen=True)
class LabSettings:
    registry: str | None = None
    prefix: str = "docpipe"
    allowed_bases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BASES))
    allow_setup: bool = False  # [lab] allow_shell_steps
    build_timeout: float = DEFAULT_BUILD_TIMEOUT
    templates: Path | None = None  # the desktop templates: [render] templates' desktop/
    source: str = ""  # the Gitea repo URL, for the image's source label (labels.SOURCE_LABEL)
    # Whose images these are (labels.ARCHIVE_LABEL): the Gitea repository, else "drive:<folder id>".
    # docpipe moves `:latest` only on images of its own archive: engines are shared.
    archive: str = ""
    max_seats: int = 30
    dry_run: bool = False
    # Kubernetes backend (pipeline/lab/classroom/kube_seats.py)
    namespace: str = "docpipe"
    ingress_class: str = ""
    tls_secret: str = ""
    host: str = ""  # seats are s-<label>.<host>; tls_secret should hold *.<host>
    context: str = ""  # kubeconfig context; "" = current context (or in-cluster)
    ingress_namespace: str = "ingress-nginx"  # the only namespace seats accept traffic from
    listen: str = "0.0.0.0:8443"
    public_url: str = ""  # "" = https://<host name>:<port>
    tls_cert: str = ""
    tls_key: str = ""
    ttl: str = "4h"
    backend: str = "docker"
    insecure_http: bool = False  # `lab up --insecure-http` only, never from a file
    egress: str = "none"  # "none" | "internet" (through the gateway's proxy; never the host or private ranges)
    subnet_pool: str = "10.213.0.0/16"  # Docker seats: a /29 network each, from this range
    home_size: str = "1Gi"  # Kubernetes: each seat's home (a PersistentVolumeClaim)
    storage_class: str = ""  # Kubernetes: the homes' StorageClass; "" = the cluster's default
    upload_limit: str = "100MB"  # the seat agent's limit on one upload into a home

    @property
    def upload_limit_bytes(self) -> int:
        return _parsed(size_bytes, self.upload_limit, "upload_limit", "a size")

    # `lab serve` (pipeline/lab/launcher/)
    warm: int = 0  # started seats kept ready per workshop
    starts_per_hour: int = 10  # per client address
    keep_home: str = "7d"  # how long a visitor (and their home) is remembered

    @property
    def keep_home_seconds(self) -> int:
        return _parsed(duration_seconds, self.keep_home, "keep_home", "a duration")

    def repo(self, workshop_slug: str) -> str:
        path = f"{self.prefix}/{workshop_slug}"
        return f"{self.registry}/{path}" if self.registry else path

    @property
    def ttl_seconds(self) -> int:
        return _parsed(duration_seconds, self.ttl, "ttl", "a duration")


def _parsed(parse: Callable[[str], int | None], value: str, key: str, what: str) -> int:
    """A quantity setting's number; only settings made in code can fail here (config refuses a
    bad value with its own one-line error first)."""
    number = parse(value)
    if number is None:
        raise ValueError(f"lab {key} {value!r} is not {what}")
    return number


def _public_url(url: str | None) -> str:
    """A URL without credentials: it ends up in an image label anyone can read."""
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.removesuffix(".git"), "", ""))


def source_url(gitea_url: str | None, owner: str | None, repo: str | None) -> str:
    if not (gitea_url and owner and repo):
        return ""
    return _public_url(f"{gitea_url.rstrip('/')}/{owner}/{repo}")


def desktop_templates(templates: str | Path | None) -> Path | None:
    """A render templates dir may hold desktop/Dockerfile.j2, or be the desktop dir itself."""
    if not templates:
        return None
    path = Path(templates)
    return path / "desktop" if (path / "desktop").is_dir() else path


_FIELDS = frozenset(f.name for f in dataclasses.fields(LabSettings))


def lab_settings(f: FolderSettings, **overrides: Any) -> LabSettings:
    """The lab's view of folder `f`; `overrides` are fields no config file sets (--insecure-http)."""
    lab: Mapping[str, Any] = f.values["lab"]
    # An unset optional key (None) leaves the field's default ("" for the Kubernetes names).
    values: dict[str, Any] = {k: v for k, v in lab.items() if k in _FIELDS and v is not None}
    if not values.get("allowed_bases"):
        values.pop("allowed_bases", None)
    values["allow_setup"] = bool(lab.get("allow_shell_steps"))
    g = f.values["gitea"]
    values["templates"] = desktop_templates(f.values["render"].get("templates"))
    values["source"] = source_url(g.get("url"), g.get("owner"), g.get("repo"))
    return LabSettings(**{**values, **overrides})
