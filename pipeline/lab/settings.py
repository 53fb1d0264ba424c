"""The lab's slice of the configuration, from docpipe.toml/env/flags or from a hook event."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pipeline.errors import BadInput
from pipeline.lab.image.engine import DEFAULT_BUILD_TIMEOUT
from pipeline.lab.image.spec import DEFAULT_BASES

_REGISTRY = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?")
_PREFIX = re.compile(r"[a-z0-9]+(?:[._\-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._\-][a-z0-9]+)*)*")


@dataclass(frozen=True)
class LabSettings:
    registry: str | None = None
    prefix: str = "docpipe"
    allowed_bases: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_BASES))
    allow_setup: bool = False
    build_timeout: float = DEFAULT_BUILD_TIMEOUT
    templates: Path | None = None
    source: str = ""  # the Gitea repo URL, for the image's source label (labels.SOURCE_LABEL)
    # Whose images these are (labels.ARCHIVE_LABEL): the Gitea repository, else "drive:<folder id>".
    # docpipe moves `:latest` only on images of its own archive: engines are shared.
    archive: str = ""
    max_seats: int = 30
    dry_run: bool = False
    # Kubernetes backend (pipeline/lab/kubernetes.py)
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
    insecure_http: bool = False
    egress: str = "none"  # "none" | "internet" (through the gateway's proxy; never the host or private ranges)
    subnet_pool: str = "10.213.0.0/16"  # Docker seats: a /29 network each, from this range

    def repo(self, workshop_slug: str) -> str:
        path = f"{self.prefix}/{workshop_slug}"
        return f"{self.registry}/{path}" if self.registry else path


_LISTEN = re.compile(r"(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]*):([0-9]{1,5})")
_TTL = re.compile(r"([0-9]+)([smhd])")


def check_listen(listen: str) -> str:
    m = _LISTEN.fullmatch(listen)
    if not m or not 1 <= int(m.group(1)) <= 65535:
        raise BadInput(f"lab listen address {listen!r} must be HOST:PORT, e.g. 0.0.0.0:8443")
    return listen


def ttl_seconds(ttl: str) -> int:
    m = _TTL.fullmatch(ttl.strip())
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] if m else 0
    if not 0 < seconds <= 30 * 86400:
        raise BadInput(f"lab ttl {ttl!r} must be a duration like 90m, 3h or 2d (at most 30d)")
    return seconds


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


def _templates(value: Any) -> Path | None:
    """A render templates dir may hold desktop/Dockerfile.j2, or be the desktop dir itself."""
    if not value:
        return None
    path = Path(value)
    return path / "desktop" if (path / "desktop").is_dir() else path


def from_values(values: Mapping[str, Any], *, registry: str | None = None) -> LabSettings:
    """From a flat mapping (a hook event's `settings`, or the [lab] section plus gitea keys)."""
    reg = registry if registry is not None else values.get("registry")
    if reg and not _REGISTRY.fullmatch(str(reg)):
        raise BadInput(f"lab registry {reg!r} must be HOST or HOST:PORT")
    prefix = values.get("prefix") or LabSettings.prefix
    if not _PREFIX.fullmatch(str(prefix)):
        raise BadInput(f"lab prefix {prefix!r} must be lowercase path components like 'docpipe'")
    bases = values.get("allowed_bases") or DEFAULT_BASES
    if not isinstance(bases, Mapping):
        raise BadInput("lab allowed_bases must be a table of alias = image reference")
    return LabSettings(
        registry=str(reg) if reg else None,
        prefix=str(prefix),
        allowed_bases={str(k): str(v) for k, v in bases.items()},
        allow_setup=bool(values.get("allow_shell_steps") or values.get("allow_setup")),
        build_timeout=float(values.get("build_timeout") or LabSettings.build_timeout),
        templates=_templates(values.get("templates")),
        archive=str(values.get("archive") or ""),
        source=values.get("source") or source_url(values.get("gitea_url"), values.get("gitea_owner"),
                                                   values.get("gitea_repo")),
        max_seats=int(values.get("max_seats") or LabSettings.max_seats),
        dry_run=bool(values.get("dry_run")),
        namespace=str(values.get("namespace") or LabSettings.namespace),
        ingress_class=str(values.get("ingress_class") or ""),
        tls_secret=str(values.get("tls_secret") or ""),
        host=str(values.get("host") or ""),
        context=str(values.get("context") or ""),
        ingress_namespace=str(values.get("ingress_namespace") or LabSettings.ingress_namespace),
        listen=check_listen(str(values.get("listen") or LabSettings.listen)),
        public_url=str(values.get("public_url") or ""),
        tls_cert=str(values.get("tls_cert") or ""),
        tls_key=str(values.get("tls_key") or ""),
        ttl=str(values.get("ttl") or LabSettings.ttl),
        backend=str(values.get("backend") or LabSettings.backend),
        insecure_http=bool(values.get("insecure_http")),
        egress=str(values.get("egress") or LabSettings.egress),
        subnet_pool=str(values.get("subnet_pool") or LabSettings.subnet_pool),
    )


def load(workdir: Path | None, *, registry: str | None = None, config_file: Path | None = None,
         lab: Mapping[str, Any] | None = None) -> tuple[Path, LabSettings]:
    """The workdir and lab settings from docpipe.toml / DOCPIPE_* / flags (`lab`: [lab] keys
    given on the command line)."""
    from pipeline import config

    cli: dict[tuple[str, str], Any] = {("lab", k): v for k, v in (lab or {}).items() if k in config.SCHEMA["lab"]}
    if workdir is not None:
        cli[("", "workdir")] = str(workdir)
    if registry is not None:
        cli[("lab", "registry")] = registry
    settings, _ = config.load_settings(config_file, cli=cli)
    folder = settings.folders[0]
    if workdir is not None:
        folder = next((f for f in settings.folders if Path(f.workdir) == Path(workdir)), folder)
    lab_values = dict(folder.values.get("lab", {}))
    gitea = folder.values.get("gitea", {})
    lab_values.update(templates=folder.values.get("render", {}).get("templates"), gitea_url=gitea.get("url"),
               gitea_owner=gitea.get("owner"), gitea_repo=gitea.get("repo"))
    lab_values.update({k: v for k, v in (lab or {}).items() if k not in config.SCHEMA["lab"] and v is not None})
    return Path(workdir) if workdir is not None else Path(folder.workdir), from_values(lab_values)
