"""Commit authors: Drive users as git identities, with the operator's --authors map."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pipeline.comments import one_line
from pipeline.errors import BadInput
from pipeline.replay import paths

_EMAIL = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
_AUTHOR = re.compile(r"^\s*([^<>]*?)\s*<([^<>\s]+@[^<>\s]+)>\s*$")


# ---------------------------------------------------------------- authors

Authors = dict[str, tuple[str, str]]


def load_authors(path: Path | None) -> Authors:
    """`"Display Name" = "Name <email>"` lines (TOML), like `git svn --authors-file`."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise BadInput(f"authors file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"authors file {path} is not valid TOML: {one_line(exc)}") from None
    out: Authors = {}
    for display, value in data.items():
        match = _AUTHOR.match(value) if isinstance(value, str) else None
        if not match or not match.group(1):
            raise BadInput(f'authors file {path}: entry "{one_line(display)[:60]}" must be "Name <email>"')
        out[display] = (match.group(1), match.group(2))
    return out


def _clean_name(name: Any) -> str:
    # git refuses angle brackets in names; newlines would break the commit header.
    return one_line(str(name or "").replace("<", "").replace(">", "")) or "Unknown"


def identity(user: dict[str, Any] | None, authors: Authors) -> tuple[str, str]:
    """(name, email) of a Drive user: Google's email, else the authors map, else a placeholder."""
    display = one_line((user or {}).get("displayName")) or "Unknown"
    email = one_line((user or {}).get("emailAddress"))
    if email and _EMAIL.match(email):
        return _clean_name(display), email
    if display in authors:
        return authors[display]
    return _clean_name(display), paths.placeholder_email(display)


class KnownEmails:
    """Display name -> identity for people whose email Google gave on some revision, gathered a
    doc at a time (`add`), so no list of every revision is needed.

    Google never gives a commenter's email, but the same person's revisions often carry it; a
    name seen with two different emails is ambiguous and left out."""

    def __init__(self) -> None:
        self.seen: dict[str, set[str]] = {}

    def add(self, revisions: Iterable[dict[str, Any]]) -> None:
        for rev in revisions:
            user = rev.get("lastModifyingUser") or {}
            display, email = one_line(user.get("displayName")), one_line(user.get("emailAddress"))
            if display and email and _EMAIL.match(email):
                self.seen.setdefault(display, set()).add(email)

    def authors(self) -> Authors:
        return {d: (_clean_name(d), next(iter(e))) for d, e in sorted(self.seen.items()) if len(e) == 1}
