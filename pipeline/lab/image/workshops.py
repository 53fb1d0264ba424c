"""Which docs of the archive are workshops: one answer for `docpipe provision`, `docpipe run`
and the built-in `workshop` hook.

Driven by the archive's manifest (pipeline.archive), so only the docs replay wrote count: a
stray Markdown file in the archive is no workshop. A workshop doc is one whose Markdown has a
"Lab desktop" heading; its spec is validated here, once, against the lab settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

import pygit2

from pipeline import frontmatter
from pipeline.archive import read_manifest
from pipeline.lab.image.parse import spec_from_section
from pipeline.lab.image.section import extract_lab_section
from pipeline.lab.image.spec import LabSpec, LabSpecError
from pipeline.slugs import workshop_slug


@dataclass(frozen=True)
class Workshop:
    """One workshop doc of the archive (spec None and error set when its spec is invalid)."""

    name: str  # slug: the Name: header, else the path's stem
    title: str
    path: str
    doc_id: str
    spec: LabSpec | None
    error: str | None = None


def workshop_of(markdown: str, path: str, *, allowed_bases: Mapping[str, str] | None = None,
                allow_setup: bool = False, doc_id: str = "") -> Workshop | None:
    """The workshop a Markdown doc describes, or None when it has no "Lab desktop" heading."""
    section = extract_lab_section(markdown)
    if section is None:
        return None
    meta = frontmatter.read(markdown)
    name = str(meta.get("name") or "") or PurePosixPath(path).stem
    title = str(meta.get("title") or name)
    doc_id = doc_id or str(meta.get("drive_id") or "")
    slug = workshop_slug(name)
    try:
        spec = spec_from_section(section, doc=name, allowed_bases=allowed_bases, allow_setup=allow_setup)
    except LabSpecError as exc:
        return Workshop(slug, title, path, doc_id, None, exc.message)
    return Workshop(slug, title, path, doc_id, spec)


def find_workshops(repo: pygit2.Repository, commit: pygit2.Commit, *, allowed_bases: Mapping[str, str] | None = None,
                   allow_setup: bool = False) -> list[Workshop]:
    """Every workshop doc the manifest of `commit` names, sorted by (name, path)."""
    manifest = read_manifest(repo, commit)
    found: list[Workshop] = []
    for file_id, entry in sorted((manifest.docs if manifest else {}).items()):
        path = str(entry["path"])
        try:
            blob = repo[commit.tree[path].id]
        except KeyError:
            continue  # not in this tree: nothing to provision
        if not isinstance(blob, pygit2.Blob):
            continue
        text = blob.data.decode("utf-8", errors="replace")
        ws = workshop_of(text, path, allowed_bases=allowed_bases, allow_setup=allow_setup, doc_id=file_id)
        if ws is not None:
            found.append(ws)
    found.sort(key=lambda w: (w.name, w.path))
    return found
