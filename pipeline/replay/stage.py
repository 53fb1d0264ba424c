"""Stage 2: the store as git history (Contract 1 -> Contract 2), written with pygit2 objects only.

`WORKDIR/archive` is a *bare* repository: blobs, trees and commits are made in the object
database and `refs/heads/main` is moved once at the end, so there is no working tree to churn
and a killed replay leaves `main` where it was (the next run recomputes the same objects).
Read it with `git --git-dir WORKDIR/archive …`, pygit2, or clone it.

Incremental and idempotent without a side file: every commit's trailers name the event it
records (see `pipeline.replay.events`), so the replayed set is read back from history. Events that
are not there yet are appended after the tip in event order; nothing new means no commit.

Conversion is the costly part: each distinct (HTML blob, converter args) is converted once,
over all cores, and kept under WORKDIR/cache/markdown keyed by the converter's own source hash,
so later replays reuse it. Conversion runs with a placeholder slug so its result does not depend
on where the doc lands in the tree (paths are decided in event order, after conversion).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from pipeline.archive import BRANCH, MANIFEST, Key, Manifest, key_from_trailers
from pipeline.comments import render_comments
from pipeline.errors import BadInput, DocpipeError
from pipeline.replay import paths
from pipeline.replay.authors import Authors, KnownEmails, identity, load_authors
from pipeline.replay.conversion import SLUG_PLACEHOLDER, Converted, Job, convert_all, converter_version, name_header
from pipeline.replay.events import COMMENT_KINDS, Event, doc_events, initial_title, trailers_of
from pipeline.replay.objects import ObjectBuffer, Tree
from pipeline.replay.spool import Spool
from pipeline.store import Snapshot, Store

BLOB, TREE = pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.TREE
COMMITTER = ("docpipe", "docpipe@localhost")


# ---------------------------------------------------------------- replay state

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
    md_blob: tuple[Job, str, pygit2.Oid] | None = None
    web_link: str = ""
    first_rev: Any = None                # the first revision the store lists
    partial_created: str | None = None   # the doc's createdTime ("" unknown) when its history is partial
    comment_events: int = 0              # comment events applied in this replay
    # The comments file last written for (title, comment_events), which decide it: a revision
    # event keeps it without reading the doc's threads again.
    comments_blob: tuple[str, int, pygit2.Oid] | None = None

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


@dataclass
class ReplayResult:
    archive: Path
    head: str | None
    commits: int
    events: int
    docs: int
    converted: int
    cached: int
    # Seconds per phase (read: store, history and plan; convert; write: objects, commits, pack).
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"archive": str(self.archive), "head": self.head, "commits": self.commits,
                "events": self.events, "docs": self.docs, "converted": self.converted, "cached": self.cached,
                "seconds": {k: round(v, 3) for k, v in sorted(self.timings.items())}}

    def text(self) -> str:
        head = self.head[:12] if self.head else "none"
        if not self.commits:
            return f"archive {self.archive} is up to date (main at {head})"
        return (f"replayed {self.commits} new events of {self.docs} docs into {self.archive} (main at {head}); "
                f"converted {self.converted} revisions, {self.cached} from cache")


def open_archive(path: Path) -> pygit2.Repository:
    if path.exists() and any(path.iterdir()):
        try:
            repo = pygit2.Repository(str(path), pygit2.enums.RepositoryOpenFlag.NO_SEARCH)
        except pygit2.GitError:
            raise BadInput(f"{path} exists and is not a git repository; move it away or pick another --workdir") from None
        if not repo.is_bare:
            raise BadInput(f"{path} is not the bare repository docpipe replay writes")
        return repo
    path.mkdir(parents=True, exist_ok=True)
    return pygit2.init_repository(str(path), bare=True, initial_head="main")


def scan_history(repo: pygit2.Repository, tip: pygit2.Oid | None, spool: Spool) -> dict[str, str]:
    """Puts the events already in the archive into `spool`; returns each doc's newest replayed
    revision id."""
    latest: dict[str, str] = {}
    if tip is None:
        return latest

    def keys() -> Iterable[Key]:
        for commit in repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL):
            key = key_from_trailers(commit.message_trailers)
            if key is None:
                continue
            if key[0] == "revision":
                latest.setdefault(key[1], key[2])
            yield key

    spool.add_applied(keys())
    return latest


def read_store(store: Snapshot, latest: dict[str, str], spool: Spool, emails: KnownEmails
               ) -> tuple[dict[str, DocState], dict[str, dict[str, Any] | None]]:
    """One pass over the store, a doc at a time: the events not yet in the archive into `spool`,
    what replay keeps of each doc, and the revision record of each doc's newest replayed revision
    (`latest`)."""
    docs: dict[str, DocState] = {}
    replayed: dict[str, dict[str, Any] | None] = {}
    for doc in store.docs():
        file_id = doc["id"]
        state = docs[file_id] = DocState.of(doc)
        revisions = doc.get("revisions") or []
        emails.add(revisions)
        if file_id in latest:
            rev_id = latest[file_id]
            replayed[file_id] = DocState.slim(next((r for r in revisions if r.get("id") == rev_id), None))
        done = spool.applied_of(file_id)
        state.commented = any(key[0] in COMMENT_KINDS for key in done)
        spool.add_events(e for e in doc_events(doc) if e.key not in done)
    return docs, replayed


class Replayer:
    """Applies events to the tree and makes one commit per event."""

    def __init__(self, repo: pygit2.Repository, store: Snapshot, authors: Authors, tip: pygit2.Oid | None,
                 spool: Spool, docs: dict[str, DocState], replayed: dict[str, dict[str, Any] | None],
                 converted: Converted) -> None:
        self.repo, self.store, self.authors = repo, store, authors
        self.spool = spool
        self.tip = tip
        self.buffer = ObjectBuffer(repo)
        self.tree = Tree(repo, repo[tip].peel(pygit2.Commit).tree_id if tip else None, self.buffer)
        self.table = paths.PathTable()
        self.docs = docs
        self.converted = converted
        self.image_oids: dict[str, pygit2.Oid] = {}
        self.manifest = self._load_manifest()
        self._manifest_dirty = True  # serializing it is costly: only when an entry changed
        for file_id, entry in sorted(self.manifest.docs.items()):
            state = self.docs.get(file_id)
            if state is None or not isinstance(entry, dict) or not str(entry.get("path", "")).endswith(".md"):
                continue
            state.stem = entry["path"][:-3]
            state.title = str(entry.get("title", state.title))
            state.rev = replayed.get(file_id)
            blob = self.tree.get(entry["path"])
            if isinstance(blob, tuple):
                state.name_header = name_header(self.repo[blob[0]].peel(pygit2.Blob).data.decode("utf-8", "replace"))
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
            self.manifest.docs.pop(state.file_id, None)
            self._manifest_dirty = True
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
                oid = self.blob(text.encode("utf-8"))
                state.md_blob = (state.job, slug, oid)
            self.tree.set(f"{state.stem}.md", oid)
            self.tree.remove(f"{state.stem}.assets")
            for image in state.rev.get("images") or [] if state.rev else []:
                blob = image.get("blob")
                if not isinstance(blob, str) or not re.fullmatch(r"[0-9a-f]{64}", blob):
                    continue
                if blob not in self.image_oids:
                    data = self.store.read_blob(blob, f"doc {state.file_id} image")
                    self.image_oids[blob] = self.blob(data)
                self.tree.set(f"{state.stem}.assets/{paths.image_name(blob, image.get('mimeType'))}", self.image_oids[blob])
        if state.commented:
            if not (state.comments_blob and state.comments_blob[:2] == (state.title, state.comment_events)):
                comments = self.store.doc(state.file_id).get("comments") or []
                text = render_comments(state.title, comments, self.spool.applied_of(state.file_id), state.file_id)
                state.comments_blob = (state.title, state.comment_events, self.blob(text.encode("utf-8")))
            self.tree.set(f"{state.stem}.comments.md", state.comments_blob[2])
            entry["comments"] = f"{state.stem}.comments.md"
        if state.job is not None and self.manifest.docs.get(state.file_id) != entry:
            self.manifest.docs[state.file_id] = entry
            self._manifest_dirty = True

    def _load_manifest(self) -> Manifest:
        blob = self.tree.get(MANIFEST)
        # A corrupt manifest is refused (as render and push refuse it), never silently replaced.
        manifest = Manifest.from_bytes(self.repo[blob[0]].peel(pygit2.Blob).data) if isinstance(blob, tuple) else Manifest()
        folder = self.store.folder
        manifest.folder = {"id": str(folder.get("id") or ""), "name": str(folder.get("name") or ""),
                           "webViewLink": str(folder.get("webViewLink") or "")}
        return manifest

    def write_manifest(self) -> None:
        if self._manifest_dirty:
            self.tree.set(MANIFEST, self.blob(self.manifest.to_bytes()))
            self._manifest_dirty = False

    def commit(self, event: Event, subject: str, parent: pygit2.Oid | None) -> pygit2.Oid:
        self.write_manifest()
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
        oid = self.repo.create_commit(None, author, committer, message, tree, [parent] if parent else [])
        return self.buffer.added(oid, len(message) + 200)  # + tree, parent, author and committer lines

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

    def blob(self, data: bytes) -> pygit2.Oid:
        return self.buffer.added(self.repo.create_blob(data), len(data))


def replay(workdir: Path, *, authors: Path | None = None, workers: int | None = None,
           quiet: bool = False) -> ReplayResult:
    """Append every store event not yet in WORKDIR/archive as commits on `main`."""
    from pipeline.progress import progress as progress_bar

    with progress_bar("replay", quiet=quiet, every=1000) as bar:
        return _replay(Path(workdir), load_authors(authors), workers, bar)


# libgit2 maps pack files in windows of up to 1 GB and keeps up to 8 GB of them mapped; reading
# the history back (scan_history) touches every pack, so the whole archive (~200 MB at 1,000 docs)
# would stay resident. Small windows under a small cap keep it to what is being read.
PACK_WINDOW, PACK_WINDOWS_MAPPED = 8 << 20, 64 << 20


def _replay(workdir: Path, authors: Authors, workers: int | None, bar: Any) -> ReplayResult:
    started = time.perf_counter()
    pygit2.settings.mwindow_size = PACK_WINDOW
    pygit2.settings.mwindow_mapped_limit = PACK_WINDOWS_MAPPED
    store = Store.at(workdir).snapshot()
    archive = workdir / "archive"
    repo = open_archive(archive)
    ref = repo.references.get(BRANCH)
    tip = ref.resolve().target if ref is not None else None
    assert tip is None or isinstance(tip, pygit2.Oid)  # a resolved reference names an object
    spool = Spool()
    try:
        latest = scan_history(repo, tip, spool)
        emails = KnownEmails()
        docs, replayed = read_store(store, latest, spool, emails)
        result = ReplayResult(archive, str(tip) if tip else None, 0, 0, len(docs), 0, 0)
        if not spool.events:
            return result
        converted = Converted(workdir / "cache" / "markdown", converter_version())
        # The operator's authors file wins over what the revisions tell.
        replayer = Replayer(repo, store, {**emails.authors(), **authors}, tip, spool, docs, replayed, converted)
        replayer.plan(spool.sorted_events())
        bar.total(spool.job_count() + spool.events)
        planned = time.perf_counter()
        convert_all(spool.jobs, store, converted, workers, on_done=bar.advance)
        writing = time.perf_counter()
        head = _write(repo, replayer, spool.sorted_events(), tip, bar)
    finally:
        spool.close()
    result.head, result.commits, result.events = str(head), spool.events, spool.events
    result.converted, result.cached = converted.converted, converted.cached
    result.timings = {"read": planned - started, "convert": writing - planned, "write": time.perf_counter() - writing}
    return result


def _write(repo: pygit2.Repository, replayer: Replayer, events: Iterable[Event], tip: pygit2.Oid | None,
           bar: Any) -> pygit2.Oid:
    """One commit per event on top of `tip`, packed, then `main` moved to the last one."""
    head = tip
    # Trees and commits only name objects this replay just made or read: skip libgit2's
    # per-entry existence check (a lookup per tree entry).
    pygit2.settings.enable_strict_object_creation(False)
    try:
        for event in events:
            subject = replayer.apply(event)
            head = replayer.commit(event, subject, head)
            bar.advance(1)
        replayer.buffer.close()  # objects reach disk before main may point at them
    except BaseException:
        replayer.buffer.close(keep=False)
        raise
    finally:
        pygit2.settings.enable_strict_object_creation(True)
    # Compare-and-swap: a replay running at the same time must not be overwritten.
    current = repo.references.get(BRANCH)
    if (current.target if current is not None else None) != tip:
        raise DocpipeError("the archive's main moved during this replay (another replay running?); run it again")
    assert head is not None  # there were events, so there are commits
    repo.references.create(BRANCH, head, force=True)
    return head
