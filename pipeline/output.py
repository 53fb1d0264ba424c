"""What every command prints on stdout: one JSON object for machines, or text for people."""

from __future__ import annotations

import json
from typing import Any

from pipeline import __version__


def emit(summary: dict[str, Any], as_json: bool, text: str) -> None:
    """Print a summary: as JSON naming the docpipe that wrote it (a CI log then says which
    release produced a site), else `text`."""
    if as_json:
        print(json.dumps({**summary, "docpipe_version": __version__}, sort_keys=True))
    else:
        print(text)
