"""Every slug docpipe makes from a name someone typed: the rules in one place, one function per use.

Names (doc titles, folder names, `Name:` headers, students) are untrusted and slugs end up in
paths, image names, labels and DNS names, so each variant keeps only characters safe where it goes.
Each output is also an identity: archive paths (hence commit SHAs), workdirs, image repositories
and seat names are made of them, so a variant's output never changes for any input.

| function | for | keeps | at most | empty gives |
|---|---|---|---|---|
| `path_slug` | archive files and folders (replay) | letters and digits of any script | 80 | "untitled" (or `fallback`) |
| `workdir_slug` | one workdir per Drive folder (config) | ASCII letters, digits, `.`, `_`, `-` | - | "folder" |
| `repo_slug` | the Gitea repository name (push) | a-z, 0-9 after folding accents | 100 | "docs" |
| `seat_slug` | a seat's name from a student's (roster) | a-z, 0-9 after folding accents | 40 | "student" |
| `workshop_slug` | a workshop's image repository and labels | a-z, 0-9; other letters dropped | 63 | "workshop" |
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

MAX_PATH_SLUG = 80  # characters; keeps every component far below the 255-byte file name limit
MAX_REPO = 100  # Gitea's limit on a repository name
MAX_SEAT = 40  # shorter than a DNS-1123 label (63): seat names are joined to class ids
MAX_WORKSHOP = 63  # a DNS-1123 label
# Names Windows refuses as file names (even with an extension): a clone there must still work.
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_DASHES = re.compile(r"-{2,}")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_NOT_DIR = re.compile(r"[^A-Za-z0-9._-]+")


def _label(text: str, limit: int, fallback: str) -> str:
    """Runs of anything but a-z0-9 become one dash, none at either end, cut to `limit`."""
    return _NOT_ALNUM.sub("-", text).strip("-")[:limit].strip("-") or fallback


def _fold(text: str) -> str:
    """ASCII only, accents folded (Zoë -> Zoe); letters with no ASCII form are dropped."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


@lru_cache(maxsize=4096)
def path_slug(text: str | None, fallback: str = "untitled") -> str:
    """A lower-case slug of `text` for the archive: letters/digits of any script, dashes between runs.

    Accents on Latin letters are dropped (café -> cafe); other scripts are kept as they are,
    so a Japanese title keeps a readable name. Never `..`, a separator, a leading dot (`.git`,
    `.docpipe`), a control character or a name Windows refuses.
    """
    chars = []
    for c in unicodedata.normalize("NFKC", text or ""):
        parts = unicodedata.normalize("NFKD", c)
        # Only Latin letters lose their accents; elsewhere (ド, é in other scripts' sense) the
        # mark is part of the letter and stays.
        chars.append(parts[0] if parts[0].isascii() and parts[0].isalpha() else c)
    folded = "".join(chars).lower()
    slug = "".join(c if c.isalnum() and c.isprintable() else "-" for c in folded)
    slug = _DASHES.sub("-", slug).strip("-")[:MAX_PATH_SLUG].rstrip("-")
    if not slug:
        return fallback
    return f"{slug}-doc" if slug in _RESERVED else slug


def workdir_slug(name: str) -> str:
    """A directory name for one Drive folder's workdir: ASCII letters, digits, `.`, `_` and `-`,
    lower-cased, no leading or trailing dot or dash."""
    return _NOT_DIR.sub("-", name).strip("-.").lower() or "folder"


def repo_slug(name: str) -> str:
    """A Gitea-valid repository name (AlphaDashDot, at most 100) from a folder name."""
    return _label(_fold(name).lower(), MAX_REPO, "docs")


def seat_slug(name: str) -> str:
    """A seat's name from a student's display name: a DNS-1123 label, accents folded (Zoë -> zoe)."""
    return _label(_fold(name).lower(), MAX_SEAT, "student")


def workshop_slug(name: str) -> str:
    """A workshop's name in image repository paths, container and Kubernetes labels: a DNS-1123
    label. Unlike `seat_slug`, letters outside a-z are dropped, not folded (café -> caf), as
    docpipe always did: the names of images already built depend on it."""
    return _label(name.lower(), MAX_WORKSHOP, "workshop")
