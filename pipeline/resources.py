"""Where docpipe's shipped files (templates, built-in hooks, sample data) live."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def project_root() -> Path:
    """The source tree root (an editable install or a checkout)."""
    return _PKG.parent


def shipped(name: str) -> Path:
    """Path of a shipped top-level folder: 'templates', 'hooks' or 'sample-data'."""
    for base in (_PKG.parent, _PKG / "data"):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"docpipe installation is missing its {name}/ folder")
