"""Settings: command-line flags > DOCPIPE_* environment > docpipe.toml > built-in defaults.

The file is declarative and validated against SCHEMA: every problem is reported at once with its
key and line, and an unknown key gets a "did you mean" hint. One file may describe several Drive
folders (`[[folders]]`), each overriding any section for itself.

Environment variables are `DOCPIPE_<SECTION>_<KEY>` (e.g. DOCPIPE_GITEA_URL, DOCPIPE_LAB_REGISTRY),
`DOCPIPE_WORKDIR` for the top level, plus the short aliases in ENV_ALIASES.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import BadInput
from pipeline.slugs import workdir_slug

DEFAULT_WORKDIR = ".docpipe"
# What `docpipe init` writes for [drive] folder; `docpipe config check` refuses it.
PLACEHOLDER_FOLDER = "REPLACE-WITH-FOLDER-ID"
DEFAULT_ENDPOINT = "https://www.googleapis.com/"
# Drive allows 12,000 requests a minute per user (200/s). 50/s leaves room for the other tools
# and people sharing the same account's quota.
DEFAULT_MAX_QPS = 50.0


@dataclass(frozen=True)
class Key:
    kind: str  # "str", "int", "float", "bool", "list", "table"
    default: Any
    help: str
    check: Callable[[Any], str | None] | None = None


def _between(lo: float, hi: float) -> Callable[[Any], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be between {lo:g} and {hi:g}"


def _url(v: Any) -> str | None:
    return None if re.match(r"^https?://[^\s/]+", str(v)) else "must be an http(s) URL"


def _one_of(*choices: str) -> Callable[[Any], str | None]:
    return lambda v: None if v in choices else f"must be one of: {', '.join(choices)}"


def _matches(pattern: str, allowed: str) -> Callable[[Any], str | None]:
    """A check that the whole value matches `pattern`; `allowed` says in words what does."""
    compiled = re.compile(pattern)
    return lambda v: None if compiled.fullmatch(str(v)) else f"must be {allowed}"


def duration_seconds(text: str) -> int | None:
    """A lab TTL such as 90m, 3h or 2d in seconds; None when it is not one (or not 1s..30d)."""
    m = re.fullmatch(r"([0-9]+)([smhd])", text.strip())
    seconds = int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] if m else 0
    return seconds if 0 < seconds <= 30 * 86400 else None


def _duration(v: Any) -> str | None:
    return None if duration_seconds(str(v)) is not None else "must be a duration like 90m, 3h or 2d (at most 30d)"


def _quantity(v: Any) -> str | None:
    """A Kubernetes storage quantity docpipe accepts: a whole number (up to six digits) of Mi/Gi/Ti or M/G/T."""
    m = re.fullmatch(r"([1-9][0-9]{0,5})([MGT]i?)", str(v))
    return None if m else "must be a size like 512Mi, 1Gi or 10Gi"
def size_bytes(text: str) -> int | None:
    """A size such as 100MB, 512KiB or 2G in bytes; None when it is not one (or not 1KB..100GB)."""
    m = re.fullmatch(r"([0-9]+)\s*([kmg]?)(i?)b?", text.strip(), re.I)
    if not m:
        return None
    base = 1024 if m.group(3) else 1000
    size = int(m.group(1)) * base ** " kmg".index(m.group(2).lower() or " ")
    return size if 1000 <= size <= 100 * 1000**3 else None


def _size(v: Any) -> str | None:
    return None if size_bytes(str(v)) is not None else "must be a size like 100MB, 512KiB or 2GB (1KB to 100GB)"


def _listen(v: Any) -> str | None:
    m = re.fullmatch(r"(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]*):([0-9]{1,5})", str(v))
    return None if m and 1 <= int(m.group(1)) <= 65535 else "must be HOST:PORT with a port 1-65535, e.g. 0.0.0.0:8443"


def _public_url(v: Any) -> str | None:  # what every seat link is made from (lab/classroom/links.py)
    u = urlsplit(str(v))
    ok = u.scheme in ("http", "https") and u.hostname and not u.username and not u.path.strip("/") \
        and not u.query and not u.fragment
    return None if ok else "must look like https://host[:port] (no path: every seat gets a host or a port of its own)"


# Kubernetes object names (DNS-1123 labels) and the seats' base host name.
_K8S_NAME = _matches(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", "a DNS-1123 label (a-z, 0-9, '-', at most 63)")
_HOST = _matches(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*\.?",
                 "a DNS name like lab.example.org (seats get s-<id>.<host>)")
_REGISTRY = _matches(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?", "HOST or HOST:PORT, e.g. registry.example.org:5000")
# The start of every image's repository: lowercase path components (the OCI distribution spec's).
_PREFIX = _matches(r"[a-z0-9]+(?:[._\-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._\-][a-z0-9]+)*)*",
                   "lowercase path components like 'docpipe' or 'cswg/labs' (a-z, 0-9, '.', '_', '-')")


def _ipv4_pool(v: Any) -> str | None:
    try:
        net = ipaddress.IPv4Network(str(v))
    except ValueError:
        net = None
    ok = net is not None and 8 <= net.prefixlen <= 26
    return None if ok else "must be an IPv4 network like 10.213.0.0/16 (prefix /8 to /26, no host bits)"


SCHEMA: dict[str, dict[str, Key]] = {
    "": {
        "workdir": Key("str", DEFAULT_WORKDIR, "where the store, archive and site live"),
    },
    "drive": {
        "folder": Key("str", None, "the Drive folder id to pull"),
        "endpoint": Key("str", DEFAULT_ENDPOINT, "Drive API root URL (the emulator's URL in tests)", _url),
        "credentials": Key("str", None, "service-account or authorized-user JSON file"),
        "jobs": Key("int", 8, "parallel downloads", _between(1, 64)),
        "max_qps": Key("float", DEFAULT_MAX_QPS, "client-side request rate limit", _between(0.1, 200)),
        "reconcile_every": Key("int", 24, "every Nth pull walks the whole tree to catch what the changes feed missed",
                               _between(1, 100000)),
    },
    "replay": {
        "authors": Key("str", None, "TOML map of display name to 'Name <email>'"),
    },
    "gitea": {
        "url": Key("str", None, "Gitea base URL; push is skipped when unset", _url),
        "owner": Key("str", None, "user or organisation that owns the repository"),
        "repo": Key("str", None, "repository name [default: slug of the folder name]"),
        "private": Key("bool", True, "create the repository as private"),
        "token": Key("str", None, "API token (prefer the GITEA_TOKEN environment variable)"),
    },
    "render": {
        "templates": Key("str", None, "directory of templates overriding docpipe's, file by file"),
    },
    "publish": {
        "enabled": Key("bool", True, "build the static site with MkDocs"),
        "site_branch": Key("bool", False, "commit the rendered site to the archive's `site` branch"),
    },
    "hooks": {
        "enabled": Key("bool", True, "run hooks at all"),
        "builtin": Key("bool", True, "run docpipe's built-in `workshop` hook, the lab image builder (off: planned only)"),
        "dirs": Key("list", [], "more directories to look for hooks in"),
        "timeout": Key("float", 1800.0, "seconds before a hook is killed", _between(1, 86400)),
        "pass_env": Key("list", [], "secret environment variables hooks may see"),
    },
    "lab": {
        "registry": Key("str", None, "registry HOST:PORT to push lab images to", _REGISTRY),
        "prefix": Key("str", "docpipe", "image name prefix", _PREFIX),
        "allowed_bases": Key("table", None, "alias = image reference; replaces the default allow-list"),
        "max_seats": Key("int", 30, "most seats `lab up` may start", _between(1, 500)),
        "allow_shell_steps": Key("bool", False, "let docs run shell setup steps in their image"),
        "build_timeout": Key("float", 1800.0, "seconds an image build may take", _between(10, 86400)),
        "dry_run": Key("bool", False, "plan lab images without building them"),
        "namespace": Key("str", "docpipe", "Kubernetes namespace of the seats", _K8S_NAME),
        "ingress_class": Key("str", None, "Kubernetes IngressClass routing the seats", _K8S_NAME),
        "tls_secret": Key("str", None, "Kubernetes TLS secret for *.host (wildcard)", _K8S_NAME),
        "host": Key("str", None, "Kubernetes: seats get s-<label>.<host>", _HOST),
        "context": Key("str", None, "kubeconfig context (default: current, or in-cluster)"),
        "ingress_namespace": Key("str", "ingress-nginx", "namespace of the ingress controller", _K8S_NAME),
        "listen": Key("str", "0.0.0.0:8443", "address:port the lab gateway listens on", _listen),
        "public_url": Key("str", None, "base of every lab link [default: https://<host name>:<port>]", _public_url),
        "tls_cert": Key("str", None, "PEM certificate (chain) for the lab gateway"),
        "tls_key": Key("str", None, "PEM private key for the lab gateway"),
        "ttl": Key("str", "4h", "how long a seat lives, e.g. 90m, 3h, 2d", _duration),
        "backend": Key("str", "docker", "where seats run: docker or kubernetes", _one_of("docker", "kubernetes")),
        "egress": Key("str", "none", "seats' outbound traffic: none, or internet (never the host or private ranges)",
                      _one_of("none", "internet")),
        "upload_limit": Key("str", "100MB", "largest upload a student may send into their seat's home at once", _size),
        "subnet_pool": Key("str", "10.213.0.0/16", "addresses the Docker seats' own small networks (a /29 each) come from",
                           _ipv4_pool),
        "home_size": Key("str", "1Gi", "Kubernetes: each student's home volume (a PersistentVolumeClaim), e.g. 1Gi",
                         _quantity),
        "storage_class": Key("str", None, "Kubernetes StorageClass of the homes [default: the cluster's]", _K8S_NAME),
        "warm": Key("int", 0, "`lab serve`: started seats kept ready per workshop", _between(0, 100)),
        "starts_per_hour": Key("int", 10, "`lab serve`: desktops one client address may start per hour",
                               _between(1, 10000)),
        "keep_home": Key("str", "7d", "`lab serve`: how long a visitor is remembered (and their home kept)",
                         _duration),
    },
}
SECTIONS = tuple(s for s in SCHEMA if s)
FOLDER_KEYS = {"id": Key("str", None, "Drive folder id"), "name": Key("str", None, "label for logs"),
               "workdir": Key("str", None, "this folder's working directory")}

ENV_ALIASES: dict[str, tuple[str, str]] = {
    "DOCPIPE_FOLDER": ("drive", "folder"),
    "DOCPIPE_JOBS": ("drive", "jobs"),
    "DOCPIPE_MAX_QPS": ("drive", "max_qps"),
    "DOCPIPE_CREDENTIALS": ("drive", "credentials"),
    "DOCPIPE_AUTHORS": ("replay", "authors"),
    "GITEA_TOKEN": ("gitea", "token"),
    "DOCPIPE_REGISTRY": ("lab", "registry"),
}


def _section_type(section: str, keys: Mapping[str, Key]) -> type:
    """A frozen dataclass with one field per Key of a SCHEMA section, so adding a Key to SCHEMA
    is the whole change: its typed field follows."""
    name = "".join(part.title() for part in (section or "top").split("_")) + "Settings"
    return make_dataclass(name, [(key, Any) for key in keys], frozen=True)


# Section name -> its settings type, e.g. SECTION_TYPES["drive"](folder=..., jobs=8, ...).
SECTION_TYPES: dict[str, type] = {section: _section_type(section, keys) for section, keys in SCHEMA.items()}


@dataclass
class FolderSettings:
    """Everything one folder's run needs, fully resolved.

    Read a section as a frozen dataclass, `f.drive.jobs`, `f.gitea.url` (types and defaults from
    SCHEMA); `values` keeps the plain dicts for code that wants the whole table."""

    id: str | None
    name: str | None
    workdir: Path
    values: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Any:
        return self.values[section][key]

    def section(self, name: str) -> Any:
        """The frozen settings of one SCHEMA section."""
        return SECTION_TYPES[name](**self.values[name])

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: the SCHEMA sections.
        if name in SECTION_TYPES and name:
            return self.section(name)
        raise AttributeError(name)


@dataclass
class Settings:
    path: Path | None
    folders: list[FolderSettings]


# ----------------------------------------------------------------------------- reading


def env_names(section: str, key: str) -> list[str]:
    """The environment variables of one setting: the canonical name first, then its aliases."""
    canonical = f"DOCPIPE_{section.upper()}_{key.upper()}" if section else f"DOCPIPE_{key.upper()}"
    return [canonical, *(a for a, target in ENV_ALIASES.items() if target == (section, key))]


def config_path() -> Path | None:
    explicit = os.environ.get("DOCPIPE_CONFIG")
    if explicit:
        return Path(explicit)
    candidate = Path("docpipe.toml")
    return candidate if candidate.is_file() else None


# ----------------------------------------------------------------------------- validation


def _key_lines(text: str) -> dict[str, int]:
    """Dotted key path -> line number, found by reading the TOML text (tomllib keeps no lines)."""
    lines: dict[str, int] = {}
    table = ""
    folder_index = -1
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            name = line.strip("[] ")
            if name == "folders":
                folder_index += 1
                table = f"folders[{folder_index}]"
            else:
                table = name
            lines.setdefault(table, no)
            continue
        if line.startswith("["):
            name = line.strip("[] ")
            if name.startswith("folders.") and folder_index >= 0:
                name = f"folders[{folder_index}]." + name[len("folders."):]
            table = name
            lines.setdefault(table, no)
            continue
        m = re.match(r'^([A-Za-z0-9_\-."]+)\s*=', line)
        if m:
            key = m.group(1).replace('"', "")
            lines.setdefault(f"{table}.{key}" if table else key, no)
    return lines


def _coerce(kind: str, raw: Any) -> tuple[Any, str | None]:
    if kind == "str":
        return (raw, None) if isinstance(raw, str) else (raw, "must be a string")
    if kind == "bool":
        return (raw, None) if isinstance(raw, bool) else (raw, "must be true or false")
    if kind == "int":
        ok = isinstance(raw, int) and not isinstance(raw, bool)
        return (raw, None) if ok else (raw, "must be a whole number")
    if kind == "float":
        ok = isinstance(raw, (int, float)) and not isinstance(raw, bool)
        return (float(raw), None) if ok else (raw, "must be a number")
    if kind == "list":
        ok = isinstance(raw, list) and all(isinstance(x, str) for x in raw)
        return (raw, None) if ok else (raw, "must be a list of strings")
    if kind == "table":
        ok = isinstance(raw, dict) and all(isinstance(v, str) for v in raw.values())
        return (raw, None) if ok else (raw, "must be a table of strings")
    raise AssertionError(kind)


def _parse_env(kind: str, raw: str) -> tuple[Any, str | None]:
    try:
        if kind == "int":
            return int(raw), None
        if kind == "float":
            return float(raw), None
        if kind == "bool":
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True, None
            if low in ("0", "false", "no", "off", ""):
                return False, None
            return raw, "must be true or false"
        if kind == "list":
            return [p.strip() for p in raw.split(",") if p.strip()], None
        if kind == "table":
            pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
            return {k.strip(): v.strip() for k, v in pairs}, None
    except ValueError:
        return raw, {"int": "must be a whole number", "float": "must be a number"}.get(kind, "is malformed")
    return raw, None


def _hint(key: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(key, choices, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class _Problems:
    def __init__(self, path: Path | None, lines: dict[str, int]) -> None:
        self.path, self.lines = path, lines
        self.items: list[str] = []

    def add(self, dotted: str, message: str) -> None:
        where = f"{self.path}:{self.lines[dotted]}" if dotted in self.lines and self.path else str(self.path or "settings")
        self.items.append(f"{where}: {dotted}: {message}")


def _check_section(section: str, table: Any, prefix: str, problems: _Problems) -> dict[str, Any]:
    dotted_section = f"{prefix}{section}" if section else prefix.rstrip(".")
    if not isinstance(table, dict):
        problems.add(dotted_section, "must be a table")
        return {}
    out: dict[str, Any] = {}
    schema = SCHEMA[section]
    for key, raw in table.items():
        dotted = f"{dotted_section}.{key}" if dotted_section else key
        if key not in schema:
            problems.add(dotted, f"unknown key{_hint(key, list(schema))}")
            continue
        spec = schema[key]
        val, err = _coerce(spec.kind, raw)
        if err is None and spec.check is not None:
            err = spec.check(val)
        if err:
            problems.add(dotted, f"{err} (got {raw!r})")
            continue
        out[key] = val
    return out


def _check_file(data: dict[str, Any], problems: _Problems) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    base: dict[str, dict[str, Any]] = {s: {} for s in SCHEMA}
    folders: list[dict[str, Any]] = []
    top_keys = list(SCHEMA[""]) + list(SECTIONS) + ["folders"]
    for key, raw in data.items():
        if key in SCHEMA[""]:
            base[""].update(_check_section("", {key: raw}, "", problems))
        elif key in SECTIONS:
            base[key] = _check_section(key, raw, "", problems)
        elif key == "folders":
            if not isinstance(raw, list):
                problems.add("folders", "must be an array of tables ([[folders]])")
                continue
            for i, entry in enumerate(raw):
                folders.append(_check_folder(entry, i, problems))
        else:
            problems.add(key, f"unknown key{_hint(key, top_keys)}")
    return base, folders


def _check_folder(entry: Any, index: int, problems: _Problems) -> dict[str, Any]:
    prefix = f"folders[{index}]"
    if not isinstance(entry, dict):
        problems.add(prefix, "must be a table")
        return {}
    out: dict[str, Any] = {"sections": {}}
    for key, raw in entry.items():
        if key in FOLDER_KEYS:
            if not isinstance(raw, str) or not raw:
                problems.add(f"{prefix}.{key}", f"must be a non-empty string (got {raw!r})")
            else:
                out[key] = raw
        elif key in SECTIONS:
            out["sections"][key] = _check_section(key, raw, f"{prefix}.", problems)
        else:
            problems.add(f"{prefix}.{key}", f"unknown key{_hint(key, list(FOLDER_KEYS) + list(SECTIONS))}")
    if "id" not in out:
        problems.add(prefix, "needs an id (the Drive folder id)")
    return out


def _env_values(env: Mapping[str, str], problems: _Problems) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {s: {} for s in SCHEMA}
    wanted: dict[str, tuple[str, str]] = {"DOCPIPE_WORKDIR": ("", "workdir")}
    for section in SECTIONS:
        for key in SCHEMA[section]:
            wanted[f"DOCPIPE_{section.upper()}_{key.upper()}"] = (section, key)
    wanted.update(ENV_ALIASES)
    for name in sorted(wanted):
        if name not in env:
            continue
        section, key = wanted[name]
        if out[section].get(key) is not None:  # canonical name wins over an alias
            continue
        spec = SCHEMA[section][key]
        val, err = _parse_env(spec.kind, env[name])
        if err is None and spec.check is not None:
            err = spec.check(val)
        if err:
            problems.items.append(f"environment: {name}: {err}")
            continue
        out[section][key] = val
    return out


def _cli_values(cli: Mapping[tuple[str, str], Any], problems: _Problems) -> dict[tuple[str, str], Any]:
    """Flags are checked like the file and the environment: a bad --ttl is refused here, once."""
    out: dict[tuple[str, str], Any] = {}
    for (section, key), raw in cli.items():
        if raw is None:
            continue
        spec = SCHEMA[section][key]
        val, err = _coerce(spec.kind, raw)
        if err is None and spec.check is not None:
            err = spec.check(val)
        if err:
            problems.items.append(f"command line: {f'{section}.' if section else ''}{key}: {err} (got {raw!r})")
            continue
        out[(section, key)] = val
    return out


def load_settings(path: Path | None = None, *, cli: Mapping[tuple[str, str], Any] | None = None,
                  env: Mapping[str, str] | None = None, strict: bool = True) -> tuple[Settings, list[str]]:
    """Resolve every setting for every folder. Returns the settings and the list of problems;
    with strict=True any problem raises BadInput listing them all."""
    env = os.environ if env is None else env
    if path is None:
        path = config_path()
    text = ""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise BadInput(f"config file {path} does not exist") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BadInput(f"config file {path} is not valid TOML: {exc}") from None
    problems = _Problems(Path(path) if path else None, _key_lines(text))
    base, folder_entries = _check_file(data, problems)
    env_vals = _env_values(env, problems)
    cli = _cli_values(cli or {}, problems)

    def resolve(overrides: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        values: dict[str, dict[str, Any]] = {}
        for section, keys in SCHEMA.items():
            values[section] = {}
            for key, spec in keys.items():
                v = spec.default
                for layer in (base.get(section, {}), overrides.get(section, {}), env_vals[section]):
                    if key in layer:
                        v = layer[key]
                if (section, key) in cli:
                    v = cli[(section, key)]
                values[section][key] = v
        return values

    folders: list[FolderSettings] = []
    if folder_entries:
        many = len(folder_entries) > 1
        for entry in folder_entries:
            values = resolve(entry.get("sections", {}))
            root = Path(values[""]["workdir"])
            wd = Path(entry["workdir"]) if entry.get("workdir") else (
                root / workdir_slug(entry.get("name") or entry.get("id", "folder")) if many else root)
            values["drive"]["folder"] = entry.get("id") or values["drive"]["folder"]
            folders.append(FolderSettings(id=values["drive"]["folder"], name=entry.get("name"), workdir=wd, values=values))
        if ("drive", "folder") in cli:  # a folder named on the command line picks one of them
            folders = [f for f in folders if f.id == cli[("drive", "folder")]] or folders[:1]
            folders[0].values["drive"]["folder"] = folders[0].id = cli[("drive", "folder")]
    else:
        values = resolve({})
        folders.append(FolderSettings(id=values["drive"]["folder"], name=None,
                                      workdir=Path(values[""]["workdir"]), values=values))
    settings = Settings(path=Path(path) if path else None, folders=folders)
    if strict and problems.items:
        raise BadInput(f"{len(problems.items)} problem(s) in the configuration: " + "; ".join(problems.items))
    return settings, problems.items


def folder_for(path: Path | None, workdir: Path | None = None,
               cli: Mapping[tuple[str, str], Any] | None = None) -> FolderSettings:
    """The one folder a single-stage or `docpipe lab` command works on, resolved as `docpipe run`
    resolves it: the configured folder whose workdir --workdir is, else the first folder (or the
    one --folder names), working in --workdir when one is given."""
    settings, _ = load_settings(path, cli=cli)
    if workdir is None:
        return settings.folders[0]
    wanted = Path(workdir).resolve()
    for f in settings.folders:
        if f.workdir.resolve() == wanted:
            return f
    settings, _ = load_settings(path, cli={**(cli or {}), ("", "workdir"): str(workdir)})
    folder = settings.folders[0]
    folder.workdir = Path(workdir)
    return folder
