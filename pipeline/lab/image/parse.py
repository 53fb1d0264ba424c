"""Reading a lab spec: a workshop doc's "Lab desktop" section -> LabSpec.
Pure, no I/O.

Docs are editable by anyone, so every value here is hostile until proven otherwise. Validation
is by allow-list (character sets, bounded sizes, operator-controlled base aliases); values that
pass are later placed only in JSON-array / quoted positions of a Dockerfile or in build-context
files, never parsed by a shell.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping

from packaging.requirements import InvalidRequirement, Requirement

from pipeline.lab.image.section import FENCE, extract_lab_section
from pipeline.lab.image.spec import DEFAULT_BASE, DEFAULT_BASES, DEFAULT_CPUS, DEFAULT_MEMORY, KEYS, LabSpec, LabSpecError

# Bounds. Generous for a teaching desktop, small enough that one doc cannot take the host.
MAX_PACKAGES = 100
MAX_PIP = 100
MAX_PORTS = 16
MAX_ENV = 32
MAX_ENV_VALUE = 256
MAX_FILES = 32
MAX_FILE_BYTES = 64 * 1024
MAX_FILES_TOTAL = 256 * 1024
MAX_PATH = 200
MAX_PATH_DEPTH = 6
MAX_AUTOSTART = 8
MAX_SETUP_LINES = 50
MAX_CHECKS = 20
MAX_CHECK_NAME = 80
MAX_CHECK_COMMAND = 500
DEFAULT_CHECK_TIMEOUT = 10  # seconds
MAX_CHECK_TIMEOUT = 300
MIN_MEMORY = 256 * 1024**2
MAX_MEMORY = 16 * 1024**3
MIN_CPUS = 0.1
MAX_CPUS = 8.0

_ALIASES = {"package": "packages", "apt": "packages", "port": "ports", "file": "files",
            "cpu": "cpus", "mem": "memory", "ram": "memory", "environment": "env"}
_LIST_KEYS = {"packages", "pip", "ports", "env", "files", "autostart", "setup", "checks"}

_DEBIAN_NAME = re.compile(r"[a-z0-9][a-z0-9+.\-]{1,99}")
_ALIAS = re.compile(r"[a-z0-9][a-z0-9._\-]{0,63}")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")
# No quotes, backslash, $, backtick, ;, |, &, <, >, (, ), newline: inert in any quoted position.
_ENV_VALUE = re.compile(r"[A-Za-z0-9 ._,:/@%+=~^#\-]*")
_PATH_PART = re.compile(r"[A-Za-z0-9._\-]{1,64}")
# argv tokens for autostart: no shell metacharacters, no glob characters, no '=' first.
_ARGV_TOKEN = re.compile(r"[A-Za-z0-9_./:@%+,\-][A-Za-z0-9_./:@%+,=\-]{0,199}")
_PIP_CHARS = re.compile(r"[A-Za-z0-9._\-\[\],<>=!~* ]+")
_RESERVED_ENV = {"PATH", "HOME", "USER", "SHELL", "DISPLAY", "HOSTNAME", "TERM", "PWD"}
_RESERVED_ENV_PREFIXES = ("LD_", "DOCPIPE_", "VNC_", "PYTHON", "PIP_", "APT_", "DEBIAN_")


# ------------------------------------------------------------------ section -> raw key/values

# Marks an entry's value as the raw text of a fenced code block (or a JSON string), not a line.
_BLOCK = "\x00block\x00"
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~=&$])")
_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]*)>")
_LIST_MARK = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")
_KEY_LINE = re.compile(
    r"^(?:\*\*|__)?`?(?P<key>[A-Za-z][A-Za-z _\-]{0,30}?)`?(?:(?:\*\*|__)\s*:|:\s*(?:\*\*|__)|:)\s*(?P<value>.*)$"
)


def _clean(value: str) -> str:
    """Undo what a Docs-to-Markdown converter adds: HTML entities, backslash escapes, links,
    emphasis markers and code spans wrapping a whole value."""
    value = html.unescape(value)
    value = _LINK.sub(lambda m: m.group(2) if m.group(1) in (m.group(2), "") else m.group(1), value)
    value = _AUTOLINK.sub(r"\1", value)
    value = _MD_ESCAPE.sub(r"\1", value)
    value = value.replace("\u00a0", " ").strip()
    for mark in ("**", "__", "`"):
        if len(value) >= 2 * len(mark) and value.startswith(mark) and value.endswith(mark):
            value = value[len(mark): -len(mark)].strip()
    return value


def _split_row(line: str) -> list[str]:
    body = line.strip()
    if body.startswith("|"):
        body = body[1:]
    if body.endswith("|") and not body.endswith("\\|"):
        body = body[:-1]
    return [c.strip() for c in re.split(r"(?<!\\)\|", body)]


def _normal_key(raw: str) -> str:
    key = " ".join(_clean(raw).replace("*", "").replace("_", " ").split()).lower().replace(" ", "_")
    return _ALIASES.get(key, key)


def _raw_entries(section: str, doc: str) -> list[tuple[str, str]]:
    """(key, value) pairs in document order. A key line with an empty value takes the nested
    list items or the fenced block that follow it as its values."""
    entries: list[tuple[str, str]] = []
    lines = section.split("\n")
    i = 0
    current: str | None = None  # key awaiting nested items / a code block
    while i < len(lines):
        line = lines[i]
        fence = FENCE.match(line)
        if fence:
            mark = fence.group(1)
            block: list[str] = []
            i += 1
            while i < len(lines) and not (lines[i].strip().startswith(mark[0] * len(mark))
                                          and lines[i].strip().strip(mark[0]) == ""):
                block.append(lines[i])
                i += 1
            i += 1
            if current is not None:
                entries.append((current, _BLOCK + "\n".join(block)))
                current = None
            continue
        stripped = line.strip()
        if not stripped:
            i += 1
            continue
        if stripped.startswith("|"):
            cells = _split_row(stripped)
            if all(re.fullmatch(r":?-{1,}:?", c.replace(" ", "")) for c in cells if c):
                i += 1
                continue
            if len(cells) >= 2:
                key = _normal_key(cells[0])
                if key in KEYS:
                    entries.append((key, cells[1]))
                elif re.fullmatch(r"[a-z]{2,20}", _clean(cells[0])) and key not in {"key", "setting", "name", "option", "field", "value"}:
                    raise LabSpecError(doc, key, cells[1], f"unknown key (known: {', '.join(KEYS)})")
            i += 1
            current = None
            continue
        indented = line[: len(line) - len(line.lstrip())]
        is_item = bool(_LIST_MARK.match(line))
        body = _LIST_MARK.sub("", line, count=1) if is_item else stripped
        m = _KEY_LINE.match(body.strip())
        # Under `checks:` every list item is a check ("Step name: command"), whatever its indent,
        # unless it names another lab key.
        if current == "checks" and is_item and not (m and _normal_key(m.group("key")) in KEYS):
            entries.append((current, body.strip()))
            i += 1
            continue
        if m and not (current is not None and indented and is_item and _normal_key(m.group("key")) not in KEYS):
            key = _normal_key(m.group("key"))
            value = m.group("value").strip()
            if key in KEYS:
                if value in ("", "**", "__"):
                    current = key
                else:
                    entries.append((key, value))
                    current = key if key in ("files", "checks") else None
            else:
                current = None
                # Lowercase one-word keys look like a typo of a real key; prose ("Note:") passes.
                if re.fullmatch(r"[a-z]{2,20}", m.group("key").strip()) and not value.startswith("//"):
                    raise LabSpecError(doc, key, value, f"unknown key (known: {', '.join(KEYS)})")
            i += 1
            continue
        if current is not None and is_item:
            entries.append((current, body.strip()))
        i += 1
    return entries


# ------------------------------------------------------------------ field validators


def _items(value: str, pattern: str = r"[,\s]+") -> list[str]:
    return [v for v in (s.strip() for s in re.split(pattern, value)) if v]


def _check_no_controls(doc: str, key: str, value: str) -> None:
    if any(ord(c) < 32 and c not in "\t" for c in value) or "\x7f" in value:
        raise LabSpecError(doc, key, value, "control characters and newlines are not allowed")


def validate_base(doc: str, value: str, bases: Mapping[str, str]) -> tuple[str, str]:
    alias = _clean(value).lower()
    if not _ALIAS.fullmatch(alias) or alias not in bases:
        raise LabSpecError(doc, "base", value, f"not an allowed base (allowed: {', '.join(sorted(bases))})")
    return alias, bases[alias]


def validate_package(doc: str, value: str) -> str:
    name = _clean(value)
    if not _DEBIAN_NAME.fullmatch(name):
        raise LabSpecError(doc, "packages", value, "not a Debian package name")
    return name


def validate_pip(doc: str, value: str) -> str:
    text = _clean(value)
    _check_no_controls(doc, "pip", text)
    if not text or not _PIP_CHARS.fullmatch(text) or text.startswith("-") or " - " in text:
        raise LabSpecError(doc, "pip", value, "not a PEP 508 name with version specifiers")
    try:
        req = Requirement(text)
    except InvalidRequirement:
        raise LabSpecError(doc, "pip", value, "not a PEP 508 name with version specifiers") from None
    if req.url or req.marker:
        raise LabSpecError(doc, "pip", value, "URLs and markers are not allowed")
    return str(req)


def validate_port(doc: str, value: str) -> int:
    text = _clean(value)
    text = text[:-4] if text.lower().endswith("/tcp") else text
    if not re.fullmatch(r"[0-9]{1,5}", text) or not 1 <= int(text) <= 65535:
        raise LabSpecError(doc, "ports", value, "not a port number 1-65535")
    return int(text)


def validate_env(doc: str, name: str, value: str) -> tuple[str, str]:
    name = _clean(name)
    if not _ENV_NAME.fullmatch(name):
        raise LabSpecError(doc, "env", name, "names must match [A-Z_][A-Z0-9_]*")
    if name in _RESERVED_ENV or name.startswith(_RESERVED_ENV_PREFIXES):
        raise LabSpecError(doc, "env", name, "this variable is reserved")
    _check_no_controls(doc, "env", value)
    if len(value) > MAX_ENV_VALUE or not _ENV_VALUE.fullmatch(value) or "&&" in value:
        raise LabSpecError(doc, "env", f"{name}={value}",
                           "values may hold only letters, digits, spaces and ._,:/@%+=~^#-")
    return name, value


def validate_file_path(doc: str, value: str) -> str:
    path = _clean(value)
    _check_no_controls(doc, "files", path)
    parts = path.split("/")
    if (not path or len(path) > MAX_PATH or path.startswith("/") or len(parts) > MAX_PATH_DEPTH
            or any(p in ("", ".", "..") or not _PATH_PART.fullmatch(p) for p in parts)):
        raise LabSpecError(doc, "files", value, "file names must be relative paths inside the home")
    return path


def validate_file_content(doc: str, path: str, content: str) -> str:
    if "\x00" in content:
        raise LabSpecError(doc, "files", path, "file content must be text")
    if len(content.encode("utf-8")) > MAX_FILE_BYTES:
        raise LabSpecError(doc, "files", path, f"file is larger than {MAX_FILE_BYTES} bytes")
    return content


_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(i?b?)", re.I)


def validate_memory(doc: str, value: str) -> int:
    text = _clean(value)
    m = _SIZE.fullmatch(text)
    if not m:
        raise LabSpecError(doc, "memory", value, "not a size such as 512m or 2g")
    unit = {"": 1024**2 if not m.group(3) else 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[m.group(2).lower()]
    size = int(float(m.group(1)) * unit)
    if not MIN_MEMORY <= size <= MAX_MEMORY:
        raise LabSpecError(doc, "memory", value, f"must be between {MIN_MEMORY // 1024**2}m and {MAX_MEMORY // 1024**3}g")
    return size


def validate_cpus(doc: str, value: str) -> float:
    text = _clean(value)
    if not re.fullmatch(r"[0-9]{1,2}(?:\.[0-9]{1,2})?", text) or not MIN_CPUS <= float(text) <= MAX_CPUS:
        raise LabSpecError(doc, "cpus", value, f"must be a number between {MIN_CPUS} and {MAX_CPUS:g}")
    return float(text)


def validate_autostart(doc: str, value: str) -> tuple[str, ...]:
    text = _clean(value)
    _check_no_controls(doc, "autostart", text)
    argv = tuple(text.split())
    if not argv or len(argv) > 16 or not all(_ARGV_TOKEN.fullmatch(t) for t in argv) or argv[0].startswith("-"):
        raise LabSpecError(doc, "autostart", value, "must be a program and plain arguments, no shell syntax")
    return argv


def validate_setup(doc: str, value: str) -> str:
    line = value.rstrip()
    _check_no_controls(doc, "setup", line)
    if len(line) > 500:
        raise LabSpecError(doc, "setup", value, "setup lines are limited to 500 characters")
    return line


# "Step name: `command`", the name optionally followed by its timeout: "Step name (30s): `command`".
_CHECK = re.compile(r"^(?P<name>[^:`]+?)\s*(?:\((?:timeout\s*:?\s*)?(?P<timeout>[^)]*)\))?\s*:\s+(?P<command>\S.*)$",
                    re.S)
_CHECK_TIMEOUT = re.compile(r"([0-9]{1,4})\s*(s|sec|secs|seconds?|m|min|mins|minutes?)?", re.I)


def validate_check(doc: str, value: str) -> tuple[str, str, int]:
    """One check: (step name, command, timeout seconds). The command runs only inside the seat,
    as the student, through the image's runner; here it is only kept to one bounded line."""
    text = value.strip()
    _check_no_controls(doc, "checks", text)
    m = _CHECK.match(text)
    if not m:
        raise LabSpecError(doc, "checks", value, "expected 'step name: command' (optionally 'step name (30s): command')")
    name = " ".join(_clean(m.group("name")).split())
    command = m.group("command").strip()
    ticks = len(command) - len(command.lstrip("`"))
    if ticks and command.endswith("`" * ticks) and len(command) > 2 * ticks:
        command = command[ticks:-ticks].strip()  # a code span: its text verbatim (no Markdown escapes)
    else:
        command = _clean(command)
    if not name or len(name) > MAX_CHECK_NAME or not name.isprintable():
        raise LabSpecError(doc, "checks", name or value, f"a step name must be 1 to {MAX_CHECK_NAME} printable characters")
    if not command or len(command) > MAX_CHECK_COMMAND or "\t" in command:
        raise LabSpecError(doc, "checks", command or value,
                           f"a check's command must be one line of 1 to {MAX_CHECK_COMMAND} characters")
    timeout = DEFAULT_CHECK_TIMEOUT
    if m.group("timeout") is not None:
        t = _CHECK_TIMEOUT.fullmatch(m.group("timeout").strip())
        seconds = int(t.group(1)) * (60 if t and (t.group(2) or "s")[0].lower() == "m" else 1) if t else 0
        if not 1 <= seconds <= MAX_CHECK_TIMEOUT:
            raise LabSpecError(doc, "checks", m.group("timeout"), f"a timeout must be 1s to {MAX_CHECK_TIMEOUT}s")
        timeout = seconds
    return name, command, timeout


# ------------------------------------------------------------------ assembling a spec


def _build(doc: str, entries: Iterable[tuple[str, str]], bases: Mapping[str, str], allow_setup: bool) -> LabSpec:
    scalars: dict[str, str] = {}
    packages: list[str] = []
    pips: list[str] = []
    ports: list[int] = []
    env: dict[str, str] = {}
    files: dict[str, str] = {}
    autostart: list[tuple[str, ...]] = []
    setup: list[str] = []
    checks: list[tuple[str, str, int]] = []
    pending_file: str | None = None
    for key, raw in entries:
        block = raw.startswith(_BLOCK)
        value = raw[len(_BLOCK):] if block else raw
        text = value if block else _clean(value)  # a block is taken verbatim
        if key != "files":
            pending_file = None
        if key in ("base", "memory", "cpus"):
            if block:
                raise LabSpecError(doc, key, value, "expected one value, not a block")
            if key in scalars and scalars[key] != text:
                raise LabSpecError(doc, key, value, f"given twice ({scalars[key]!r} before)")
            scalars[key] = text
        elif key == "packages":
            packages += [validate_package(doc, v) for v in _items(text)]
        elif key == "pip":
            # A comma or space starts a new requirement only when a name follows it, so
            # "numpy>=1.26,<2" stays one requirement.
            pips += [validate_pip(doc, v) for v in _items(text, r"(?<![<>=!~,\s])[,\s]+(?=[A-Za-z0-9])|\n")]
        elif key == "ports":
            ports += [validate_port(doc, v) for v in _items(text)]
        elif key == "env":
            for item in _items(text, r"\n|,\s*(?=[A-Za-z_][A-Za-z0-9_]*\s*=)"):
                if "=" not in item:
                    raise LabSpecError(doc, "env", item, "expected NAME=value")
                name, val = item.split("=", 1)
                name, val = validate_env(doc, name.strip(), val.strip())
                if name in env:
                    raise LabSpecError(doc, "env", name, "given twice")
                env[name] = val
        elif key == "files":
            if block:
                if pending_file is None:
                    raise LabSpecError(doc, "files", value[:40], "a code block needs a file name before it")
                files[pending_file] = validate_file_content(doc, pending_file, value + ("\n" if value else ""))
                pending_file = None
                continue
            m = re.match(r"^(.*?)\s*(?:=|:)\s+(.*)$", text)
            if m and m.group(2):
                path = validate_file_path(doc, m.group(1))
                content = validate_file_content(doc, path, m.group(2) + "\n")
                files[path] = content
                pending_file = None
            else:
                pending_file = validate_file_path(doc, value.rstrip(":").strip())
                files.setdefault(pending_file, "")
        elif key == "autostart":
            for item in (value.split("\n") if block else _items(text, r",")):
                autostart.append(validate_autostart(doc, item))
        elif key == "setup":
            if not allow_setup:
                raise LabSpecError(doc, "setup", value.split("\n")[0], "shell setup steps are disabled by the operator")
            setup += [validate_setup(doc, v) for v in value.split("\n") if v.strip()]
        elif key == "checks":
            if block:
                raise LabSpecError(doc, "checks", value[:40], "list checks as 'step name: command' items, not a block")
            check = validate_check(doc, value)
            if any(check[0].lower() == c[0].lower() for c in checks):
                raise LabSpecError(doc, "checks", check[0], "step name given twice")
            checks.append(check)

    limits = (("packages", packages, MAX_PACKAGES), ("pip", pips, MAX_PIP), ("ports", ports, MAX_PORTS),
              ("env", env, MAX_ENV), ("files", files, MAX_FILES), ("autostart", autostart, MAX_AUTOSTART),
              ("setup", setup, MAX_SETUP_LINES), ("checks", checks, MAX_CHECKS))
    for key, seq, limit in limits:
        if len(seq) > limit:
            raise LabSpecError(doc, key, f"{len(seq)} entries", f"at most {limit} allowed")
    total = sum(len(c.encode("utf-8")) for c in files.values())
    if total > MAX_FILES_TOTAL:
        raise LabSpecError(doc, "files", f"{total} bytes", f"files may total at most {MAX_FILES_TOTAL} bytes")
    for path in files:  # a file cannot also be a directory of another
        if any(other.startswith(path + "/") for other in files):
            raise LabSpecError(doc, "files", path, "is both a file and a directory")

    base, image = validate_base(doc, scalars.get("base", DEFAULT_BASE), bases)
    return LabSpec(
        base=base,
        base_image=image,
        packages=tuple(sorted(set(packages))),
        pip=tuple(sorted(set(pips), key=str.lower)),
        ports=tuple(sorted(set(ports))),
        env=tuple(sorted(env.items())),
        files=tuple(sorted(files.items())),
        memory=validate_memory(doc, scalars["memory"]) if "memory" in scalars else DEFAULT_MEMORY,
        cpus=validate_cpus(doc, scalars["cpus"]) if "cpus" in scalars else DEFAULT_CPUS,
        autostart=tuple(autostart),
        setup=tuple(setup),
        checks=tuple(checks),  # in the doc's order: the steps' order
    )


def parse_lab_spec(markdown: str, *, doc: str, allowed_bases: Mapping[str, str] | None = None,
                   allow_setup: bool = False) -> LabSpec | None:
    """The validated spec of a workshop doc, or None when the doc has no "Lab desktop" heading.

    Raises LabSpecError (one line: doc, key, value) for anything that is not plainly safe.
    """
    section = extract_lab_section(markdown)
    if section is None:
        return None
    return spec_from_section(section, doc=doc, allowed_bases=allowed_bases, allow_setup=allow_setup)


def spec_from_section(section: str, *, doc: str, allowed_bases: Mapping[str, str] | None = None,
                      allow_setup: bool = False) -> LabSpec:
    """The validated spec of a section `extract_lab_section` returned (see parse_lab_spec)."""
    bases = DEFAULT_BASES if allowed_bases is None else allowed_bases
    return _build(doc, _raw_entries(section, doc), bases, allow_setup)
