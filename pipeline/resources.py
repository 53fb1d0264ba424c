"""Where docpipe's shipped files (templates, built-in hooks, sample data) live."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def project_root() -> Path:
    """The source tree root (an editable install or a checkout)."""
    return _PKG.parent


def shipped(name: str) -> Path:
    """Path of a shipped top-level folder: 'templates', 'hooks' or 'sample-data'."""
    # A checkout or editable install first, then the copy a wheel carries (see pyproject.toml).
    for candidate in (_PKG.parent / name, _PKG / "_data" / name.replace("-", "_")):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"docpipe installation is missing its {name}/ folder")
