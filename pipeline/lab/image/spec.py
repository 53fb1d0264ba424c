"""The lab spec: what a workshop's desktop is made of, once read and validated (see `parse`).

A LabSpec holds only values that passed the allow-lists in `parse`; its canonical JSON and digest
are what images are labelled with, render shows and the `workshop` hook event carries.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import BadInput

# alias -> image reference. The doc names an alias; only the operator (config) names images.
# Debian/Ubuntu only: `packages` are Debian package names installed with apt.
DEFAULT_BASES: dict[str, str] = {
    "debian-novnc": "docpipe/debian-novnc",  # docpipe's own recipe, templates/desktop/debian-novnc
    "debian-xfce": "lscr.io/linuxserver/webtop:debian-xfce",
    "debian-kde": "lscr.io/linuxserver/webtop:debian-kde",
    "debian-mate": "lscr.io/linuxserver/webtop:debian-mate",
    "ubuntu-xfce": "lscr.io/linuxserver/webtop:ubuntu-xfce",
    "ubuntu-kde": "lscr.io/linuxserver/webtop:ubuntu-kde",
    "ubuntu-mate": "lscr.io/linuxserver/webtop:ubuntu-mate",
}
DEFAULT_BASE = "debian-novnc"

# What a seat gets when the doc asks for nothing else.
DEFAULT_MEMORY = 2 * 1024**3  # bytes
DEFAULT_CPUS = 1.0

# Every key a "Lab desktop" section may set.
KEYS = ("base", "packages", "pip", "ports", "env", "files", "memory", "cpus", "autostart", "setup", "checks")


class LabSpecError(BadInput):
    """An invalid lab spec: one line naming the doc, the key and the bad value."""

    def __init__(self, doc: str, key: str, value: Any, reason: str) -> None:
        shown = _show(value)
        super().__init__(f"{doc}: lab desktop {key} {shown}: {reason}")
        self.doc, self.key, self.value, self.reason = doc, key, value, reason


def _show(value: Any, limit: int = 60) -> str:
    # repr() escapes newlines and control characters so the message stays one honest line.
    text = repr(value if isinstance(value, str) else str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


@dataclass(frozen=True)
class LabSpec:
    base: str = DEFAULT_BASE
    base_image: str = DEFAULT_BASES[DEFAULT_BASE]
    packages: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    ports: tuple[int, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    files: tuple[tuple[str, str], ...] = ()  # (path relative to home, text content)
    memory: int = DEFAULT_MEMORY  # bytes
    cpus: float = DEFAULT_CPUS
    autostart: tuple[tuple[str, ...], ...] = ()  # argv lists
    setup: tuple[str, ...] = ()  # shell lines; only present when the operator allowed them
    # Progress checks: (step name, shell command run in the seat as the student, timeout seconds).
    checks: tuple[tuple[str, str, int], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["env"] = {k: v for k, v in self.env}
        data["files"] = [{"path": p, "content": c} for p, c in self.files]
        data["autostart"] = [list(argv) for argv in self.autostart]
        for key in ("packages", "pip", "ports", "setup"):
            data[key] = list(getattr(self, key))
        # Left out when empty: specs without checks keep the digest (and image tag) they had.
        data.pop("checks")
        if self.checks:
            data["checks"] = self.checks_json()
        return data

    def checks_json(self) -> list[dict[str, Any]]:
        """The checks as the seat's runner reads them (/etc/docpipe/checks.json)."""
        return [{"name": n, "command": c, "timeout": t} for n, c, t in self.checks]

    def digest(self) -> str:
        """sha256 of the canonical JSON: equal specs hash equal, whatever the doc's layout."""
        blob = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


__all__ = ["DEFAULT_BASES", "DEFAULT_BASE", "LabSpec", "LabSpecError", "KEYS"]
