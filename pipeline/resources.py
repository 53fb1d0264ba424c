"""Where docpipe's shipped files (templates, example hooks, sample data) live."""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """Path of a shipped top-level folder: 'templates', 'hooks' or 'sample-data'."""
    # The copy an installed wheel carries first (see setup.py), then a checkout or editable
    # install's: beside an installed package sits site-packages, where another distribution may
    # well have put a top-level templates/ of its own.
    for candidate in (_PKG / "_data" / name.replace("-", "_"), _PKG.parent / name):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"docpipe installation is missing its {name}/ folder")
