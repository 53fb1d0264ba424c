"""Safe, stable archive paths for Docs (Contract 2): slugs, collision suffixes, asset names.

Doc titles, folder names and `Name:` headers are untrusted: anyone who can edit a Doc chooses
them. A slug keeps only letters and digits (any script) joined by single dashes, so it can never
be `..`, contain a separator, start with a dot (`.git`, `.docpipe`) or hold control characters.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from pipeline.hashing import sha256_hex
from pipeline.slugs import path_slug

slugify = path_slug  # the rules live in pipeline/slugs.py

IMAGE_EXTENSIONS = {
    "image/png": "png", "image/jpeg": "jpg", "image/jpg": "jpg", "image/gif": "gif",
    "image/webp": "webp", "image/svg+xml": "svg", "image/bmp": "bmp", "image/tiff": "tiff",
}


def folder_slugs(names: list[str]) -> tuple[str, ...]:
    return tuple(slugify(n, "folder") for n in names)


def image_name(blob_sha: str, mime_type: str | None) -> str:
    """File name of an image in `<slug>.assets/`: content-addressed, so renames never touch it."""
    ext = IMAGE_EXTENSIONS.get((mime_type or "").lower().split(";")[0].strip(), "bin")
    return f"{blob_sha[:16]}.{ext}"


def placeholder_email(display_name: str) -> str:
    """A stable made-up address for a user Google gives no email for."""
    local = slugify(unicodedata.normalize("NFKD", display_name).encode("ascii", "ignore").decode(), "")
    if not local:
        local = "user-" + sha256_hex(display_name)[:10]
    return f"{local}@users.noreply.docs.google.com"


@dataclass
class PathTable:
    """Which doc holds which path stem (`folder/…/slug`, no extension).

    A doc keeps its stem while its wanted stem (folder slugs + slug) does not change. A doc that
    needs a stem takes the plain one if free, else `-2`, `-3`… : the first to need it wins,
    and docs needing one at the same instant are served in fileId order (the replay's event
    order), so the result is stable and later docs never move earlier ones.
    """

    holder: dict[str, str] = field(default_factory=dict)  # casefolded stem -> fileId
    stems: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)  # fileId -> (wanted, stem)

    def claim(self, file_id: str, folders: tuple[str, ...], slug: str) -> str:
        wanted = (*folders, slug)
        current = self.stems.get(file_id)
        if current and current[0] == wanted:
            return current[1]
        self.release(file_id)
        base = "/".join(wanted)
        n = 1
        while True:
            stem = base if n == 1 else f"{base}-{n}"
            if stem.casefold() not in self.holder:
                break
            n += 1
        self.holder[stem.casefold()] = file_id
        self.stems[file_id] = (wanted, stem)
        return stem

    def adopt(self, file_id: str, stem: str, wanted: tuple[str, ...]) -> None:
        """Record a stem already in the archive (incremental replay); `wanted` is what the doc
        would ask for now, so a doc whose folder or name changed since moves on its next event."""
        self.holder[stem.casefold()] = file_id
        self.stems[file_id] = (wanted, stem)

    def release(self, file_id: str) -> None:
        current = self.stems.pop(file_id, None)
        if current:
            self.holder.pop(current[1].casefold(), None)
