"""A replay's tree and commits: what replay keeps of each doc (`DocState`) and the `Replayer`,
which applies events in order, writing each doc's Markdown, comments file, images and manifest
entry (Contract 2) and one commit per event."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pygit2

from pipeline.archive import (
    LEGACY_MANIFEST,
    MANIFEST,
    MANIFEST_DOCS,
    Manifest,
    canonical,
    doc_entry_path,
    folder_bytes,
    read_manifest,
)
from pipeline.comments import render_comments
from pipeline.errors import BadInput, DocpipeError
from pipeline.replay import paths
from pipeline.replay.authors import Authors, identity
from pipeline.replay.conversion import SLUG_PLACEHOLDER, Converted, Job, name_header
from pipeline.replay.events import COMMENT_KINDS, Event, initial_title, trailers_of
from pipeline.replay.objects import Objects, Tree
from pipeline.replay.packwriter import Stored
from pipeline.replay.spool import Spool
from pipeline.store import Snapshot

COMMITTER = ("docpipe", "docpipe@localhost")


def legacy_layout(tree: pygit2.Tree) -> bool:
    """Whether `tree` keeps the manifest in one file, as replays before its split wrote it."""
    return LEGACY_MANIFEST in tree and MANIFEST not in tree and MANIFEST_DOCS not in tree


@dataclass
class DocState:
    file_id: str
    title: str
    folders: tuple[str, ...]
    rev: dict[str, Any] | None = None
    job: Job | None = None
    stem: str | None = None
    name_header: str | None = None
    has_comments: bool = False
    commented: bool = False              # has a comments file: a comment event is in the archive
    # The Markdown blob last written for (job, slug): a comment event rewrites the doc unchanged, and
    # (job, slug) decides the Markdown, so its blob is reused without reading the cache again.
    md_blob: tuple[Job, str, bytes] | None = None
    md_at: Stored | None = None          # where this replay's pack has that blob (the next one's delta base)
    web_link: str = ""
    entry: dict[str, Any] | None = None  # its manifest entry as the tree holds it
    entry_at: Stored | None = None       # where this replay's pack has it
    first_rev: Any = None                # the first revision the store lists
    partial_created: str | None = None   # the doc's createdTime ("" unknown) when its history is partial
    comment_events: int = 0              # comment events applied in this replay
    # The comments file last written for (title, comment_events), which decide it: a revision
    # event keeps it without reading the doc's threads again.
    comments_blob: tuple[str, int, bytes] | None = None

    @staticmethod
    def slim(rev: dict[str, Any] | None) -> dict[str, Any] | None:
        """What the tree needs of a revision (its HTML and images), not its author and times."""
        return None if rev is None else {"id": rev.get("id"), "html": rev.get("html"), "images": rev.get("images")}

    @classmethod
    def of(cls, doc: dict[str, Any]) -> DocState:
        """What replay keeps of a doc for the whole run; the rest is read again when needed."""
        revisions = doc.get("revisions") or []
        partial = bool(doc.get("partial_history")) and bool(revisions)
        return cls(doc["id"], initial_title(doc), paths.folder_slugs(list(doc.get("folder_path") or [])),
                   has_comments=bool(doc.get("comments")), web_link=str(doc.get("webViewLink") or ""),
                   first_rev=revisions[0].get("id") if revisions else None,
                   partial_created=str(doc.get("createdTime") or "") if partial else None)


class Replayer:
    """Applies events to the tree and makes one commit per event."""

    def __init__(self, repo: pygit2.Repository, store: Snapshot, authors: Authors, tip: pygit2.Oid | None,
                 spool: Spool, docs: dict[str, DocState], replayed: dict[str, dict[str, Any] | None],
                 converted: Converted) -> None:
        self.repo, self.store, self.authors = repo, store, authors
        self.spool = spool
        self.tip = tip
        self.objects = Objects(repo, spool)
        self.tree = Tree(repo, repo[tip].peel(pygit2.Commit).tree_id.raw if tip else None, self.objects)
        self.table = paths.PathTable()
        self.docs = docs
        self.converted = converted
        self.image_oids: dict[str, bytes] = {}
        head = repo[tip].peel(pygit2.Commit) if tip else None
        # A corrupt manifest is refused (as render and push refuse it), never silently replaced.
        manifest = read_manifest(repo, head) or Manifest()
        # An archive replayed before the manifest was split: moved in the first commit (migrate).
        self.legacy = manifest if head is not None and legacy_layout(head.tree) else None
        folder = self.store.folder
        self.folder = folder_bytes({k: str(folder.get(k) or "") for k in ("id", "name", "webViewLink")})
        self._folder_written = False
        for file_id, entry in sorted(manifest.docs.items()):
            state = self.docs.get(file_id)
            if state is None:
                continue
            state.entry = entry
            state.stem = entry["path"][:-3]
            state.title = str(entry.get("title", state.title))
            state.rev = replayed.get(file_id)
            blob = self.tree.get(entry["path"])
            if isinstance(blob, tuple):
                data = self.repo[pygit2.Oid(raw=blob[0])].peel(pygit2.Blob).data
                state.name_header = name_header(data.decode("utf-8", "replace"))
            self.table.adopt(file_id, state.stem, (*state.folders, self._slug(state)))

    # -- planning

    def job_for(self, state: DocState) -> Job | None:
        rev = state.rev
        if rev is None:
            return None
        html = rev.get("html")
        if not isinstance(html, str) or not re.fullmatch(r"[0-9a-f]{64}", html):
            raise BadInput(f"store: doc {state.file_id} revision {rev.get('id')} has no valid html blob")
        images = []
        for image in rev.get("images") or []:
            src, blob = image.get("src"), image.get("blob")
            if isinstance(src, str) and isinstance(blob, str) and re.fullmatch(r"[0-9a-f]{64}", blob):
                images.append((src, f"{SLUG_PLACEHOLDER}.assets/{paths.image_name(blob, image.get('mimeType'))}"))
        return Job(html, state.title, tuple(sorted(set(images))), state.has_comments, state.file_id)

    def plan(self, events: Iterable[Event]) -> None:
        """The conversions the events will need, found by replaying titles and revisions only, into
        the spool."""
        revs = {fid: (s.rev, s.title) for fid, s in self.docs.items()}
        touched: set[str] = set()
        for event in events:
            touched.add(event.file_id)
            state = self.docs[event.file_id]
            rev, title = revs[event.file_id]
            if event.kind == "revision":
                rev = event.revision
            elif event.kind == "title":
                title = event.title or ""
            else:
                continue
            revs[event.file_id] = (DocState.slim(rev), title)
            probe = DocState(state.file_id, title, state.folders, rev=rev, has_comments=state.has_comments)
            if (job := self.job_for(probe)) is not None:
                self.spool.add_job(job, self.converted.key(job))
        # A doc's current revision under its current title is needed to rewrite it on a comment event.
        for file_id in sorted(touched):
            if (job := self.job_for(self.docs[file_id])) is not None:
                self.spool.add_job(job, self.converted.key(job))

    # -- applying

    def _slug(self, state: DocState) -> str:
        if state.name_header:
            return paths.slugify(state.name_header)
        return paths.slugify(state.title)

    def apply(self, event: Event) -> str:
        """Change the tree for one event; returns the commit subject."""
        state = self.docs[event.file_id]
        old_stem = state.stem
        if event.kind == "removed":
            if state.stem:
                self._remove_files(state.stem)
            self.table.release(state.file_id)
            state.stem = None
            self.tree.remove(doc_entry_path(state.file_id))
            state.entry = None
            reason = re.sub(r"[^a-z]", "", event.reason.lower()) or "removed"
            return f"Remove {old_stem}.md ({reason})" if old_stem else f"Remove doc {state.file_id} ({reason})"
        if event.kind == "revision":
            state.rev = DocState.slim(event.revision)
        elif event.kind == "title":
            state.title = event.title or ""
        else:
            self.spool.add_applied([event.key])
            state.commented = True
            state.comment_events += 1
        state.job = self.job_for(state)
        md = None  # the job's Markdown, read once when the job changes: it names the doc
        if state.job is None:
            state.name_header = None
        elif state.md_blob is None or state.md_blob[0] != state.job:
            md = self.converted.markdown(state.job)
            state.name_header = name_header(md)
        state.stem = self.table.claim(state.file_id, state.folders, self._slug(state))
        if old_stem and old_stem != state.stem:
            self._remove_files(old_stem)
        self._write_files(state, md)
        where = f"{state.stem}.md"
        if event.kind == "revision":
            verb = "Add" if old_stem is None else "Update"
            moved = f" (moved from {old_stem}.md)" if old_stem and old_stem != state.stem else ""
            return f"{verb} {where}{moved}"
        if event.kind == "title":
            if old_stem and old_stem != state.stem:
                return f"Rename {old_stem}.md to {where}"
            return f"Retitle {where}"
        return {"comment": "Comment on", "reply": "Reply on", "resolve": "Resolve a comment on",
                "reopen": "Reopen a comment on", "delete": "Delete a comment on"}[event.kind] + f" {where}"

    def _remove_files(self, stem: str) -> None:
        for suffix in (".md", ".comments.md", ".assets"):
            self.tree.remove(stem + suffix)

    def _write_files(self, state: DocState, md: str | None) -> None:
        assert state.stem is not None
        slug = state.stem.rsplit("/", 1)[-1]
        entry: dict[str, Any] = {"path": f"{state.stem}.md", "comments": None, "title": state.title,
                                 "webViewLink": state.web_link}
        if state.job is not None:
            if state.md_blob and state.md_blob[:2] == (state.job, slug):
                oid = state.md_blob[2]
            else:
                text = (md if md is not None else self.converted.markdown(state.job)).replace(SLUG_PLACEHOLDER, slug)
                base = None
                if state.md_at is not None and state.md_blob is not None:
                    # The doc's previous Markdown, made again from the cache: its delta base.
                    job, old_slug, _ = state.md_blob
                    base = (state.md_at, self.converted.markdown(job).replace(SLUG_PLACEHOLDER, old_slug).encode("utf-8"))
                oid, state.md_at = self.objects.blob(text.encode("utf-8"), base)
                state.md_blob = (state.job, slug, oid)
            self.tree.set(f"{state.stem}.md", oid)
            self.tree.remove(f"{state.stem}.assets")
            for image in state.rev.get("images") or [] if state.rev else []:
                blob = image.get("blob")
                if not isinstance(blob, str) or not re.fullmatch(r"[0-9a-f]{64}", blob):
                    continue
                if blob not in self.image_oids:
                    data = self.store.read_blob(blob, f"doc {state.file_id} image")
                    self.image_oids[blob] = self.objects.blob(data)[0]
                self.tree.set(f"{state.stem}.assets/{paths.image_name(blob, image.get('mimeType'))}", self.image_oids[blob])
        if state.commented:
            if not (state.comments_blob and state.comments_blob[:2] == (state.title, state.comment_events)):
                comments = self.store.doc(state.file_id).get("comments") or []
                text = render_comments(state.title, comments, self.spool.applied_of(state.file_id), state.file_id)
                oid = self.objects.keyed_blob(text.encode("utf-8"), f"comments:{state.file_id}")
                state.comments_blob = (state.title, state.comment_events, oid)
            self.tree.set(f"{state.stem}.comments.md", state.comments_blob[2])
            entry["comments"] = f"{state.stem}.comments.md"
        if state.job is not None and state.entry != entry:
            # The doc's own manifest file: a few hundred bytes, whatever the size of the folder.
            base = (state.entry_at, canonical(state.entry)) if state.entry_at and state.entry else None
            oid, state.entry_at = self.objects.blob(canonical(entry), base)
            self.tree.set(doc_entry_path(state.file_id), oid)
            state.entry = entry

    def migrate(self, parent: bytes) -> bytes:
        """One commit moving a legacy .docpipe/manifest.json to one file per doc, nothing else:
        by docpipe, at the time of the commit it follows, so the same archive migrates to the same
        SHA anywhere."""
        assert self.legacy is not None
        self.tree.remove(LEGACY_MANIFEST)
        self.tree.set(MANIFEST, self.objects.blob(folder_bytes(self.legacy.folder))[0])
        for file_id, entry in sorted(self.legacy.docs.items()):
            oid, stored = self.objects.blob(canonical(entry))
            self.tree.set(doc_entry_path(file_id), oid)
            if (state := self.docs.get(file_id)) is not None:
                state.entry_at = stored
        tree = self.tree.write()
        assert tree is not None
        when = self.repo[pygit2.Oid(raw=parent)].peel(pygit2.Commit).commit_time
        who = pygit2.Signature(*COMMITTER, when, 0)
        message = (f"Move the manifest to {MANIFEST} and {MANIFEST_DOCS}/, one file per doc\n\n"
                   f"{LEGACY_MANIFEST} held every doc and was rewritten whole for every doc\n"
                   "added; the same entries now live one file per doc, so a commit writes\n"
                   "only its own doc's.\n")
        self.legacy = None
        return self.objects.commit(tree, parent, who, who, message)

    def commit(self, event: Event, subject: str, parent: bytes | None) -> bytes:
        if not self._folder_written:  # the store's folder (its name may have changed since)
            self.tree.set(MANIFEST, self.objects.blob(self.folder)[0])
            self._folder_written = True
        tree = self.tree.write()
        if tree is None:  # cannot happen: the manifest is always there
            raise DocpipeError("internal error: empty archive tree")
        if event.kind == "revision":
            user = (event.revision or {}).get("lastModifyingUser")
            name, email = identity(user if isinstance(user, dict) else None, self.authors)
        elif event.kind in COMMENT_KINDS:
            source = event.reply if event.reply and event.kind != "delete" else event.comment
            name, email = identity((source or {}).get("author") or None, self.authors)
        else:  # title changes and removals have no author in Drive's data
            name, email = COMMITTER
        when = event.unix_time
        author = pygit2.Signature(name, email, when, 0)
        committer = pygit2.Signature(*COMMITTER, when, 0)
        trailers = trailers_of(event)
        note = self._partial_history_note(event)
        message = f"{subject}\n\n{note}{trailers}\n"
        return self.objects.commit(tree, parent, author, committer, message)

    def _partial_history_note(self, event: Event) -> str:
        """Said in a doc's first commit when Drive no longer lists the revisions since its creation
        (revisions.list may omit old ones), so nobody takes this commit for the doc's beginning."""
        if event.kind != "revision" or not event.revision:
            return ""
        state = self.docs[event.file_id]
        if state.partial_created is None or state.first_rev != event.revision.get("id"):
            return ""
        since = f" (created {state.partial_created})" if state.partial_created else ""
        return (f"Partial history: Drive lists no revision from this doc's creation{since}; "
                "older revisions are missing.\n\n")
