"""Pull's per-doc work: list a changed doc's revisions and comments, download the revisions not yet
stored (export HTML and its images), and write the doc's record when its last piece lands.

Blobs are written first, each doc's record last, so a run killed at any instant resumes from what
is on disk; the journal (pipeline/journal.py) remembers finished downloads of docs not yet
written, so a resumed run downloads nothing twice. Records are pipeline.store's DocRecord.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pipeline.drive import DriveCallError, DriveClient
from pipeline.drive.docs import HTML_MIME, list_comments, list_revisions
from pipeline.drive.images import google_image_host, image_sources
from pipeline.drive.walk import DocEntry, PageSizes
from pipeline.journal import Journal
from pipeline.store import DocRecord, Image, Revision, Store

# Drive merges an edit session into one revision dated at its last edit, so the first revision
# may trail the doc's creation a little; more than this means the older revisions are not listed.
PARTIAL_HISTORY_SLACK = timedelta(days=1)
DOC_WINDOW = 64


def partial_history(created: str, first_revision_time: str | None) -> bool:
    """Whether the first listed revision is later than the doc's creation (Google may omit old ones)."""
    if not created or not first_revision_time:
        return False
    try:
        return _parse_time(first_revision_time) - _parse_time(created) > PARTIAL_HISTORY_SLACK
    except ValueError:
        return False


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def counts(revisions: Sequence[Any], comments: Sequence[dict[str, Any]]) -> tuple[int, int, int]:
    """(revisions, comment threads, replies) of one doc, for the pull's summary."""
    return len(revisions), len(comments), sum(len(c.get("replies") or []) for c in comments)


@dataclass
class DocJob:
    entry: DocEntry
    stored: DocRecord | None
    known: dict[tuple[str, str], Revision]  # (revision id, modifiedTime) -> stored or journaled revision
    images: dict[str, tuple[str, str]]  # src -> (blob, mimeType), reused across revisions
    image_locks: dict[str, threading.Lock] = field(default_factory=dict)
    revisions: list[dict[str, Any]] | None = None  # Drive's listing
    comments: list[dict[str, Any]] | None = None
    records: dict[int, Revision] = field(default_factory=dict)
    pending: set[Future[Any]] = field(default_factory=set)
    failed: DriveCallError | None = None
    failed_kind: str = ""
    new: int = 0
    written: tuple[int, int, int, bool] | None = None  # (revisions, threads, replies, partial) once stored
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def of(cls, entry: DocEntry, stored: DocRecord | None, journal: Journal) -> DocJob:
        known = {r.key: r for r in (stored.revisions if stored else ())}
        for key, rec in journal.read(entry.id).items():
            try:
                known[key] = Revision.from_json(rec)
            except (KeyError, TypeError, AttributeError):
                continue  # a line of another version: downloaded again
        images = {i.src: (i.blob, i.mime_type) for r in known.values() for i in r.images}
        return cls(entry, stored, known, images)


def _user(u: Any) -> dict[str, str] | None:
    if not isinstance(u, dict):
        return None
    kept = {k: str(u[k]) for k in ("displayName", "emailAddress", "permissionId") if u.get(k) is not None}
    return kept or None


class Puller:
    def __init__(self, client: DriveClient, store: Store, journal: Journal, sizes: PageSizes,
                 incremental: bool = False) -> None:
        self.client, self.store, self.journal, self.sizes = client, store, journal, sizes
        self.incremental = incremental

    def list_revisions(self, job: DocJob) -> list[dict[str, Any]]:
        return list_revisions(self.client, job.entry.id, self.sizes.revisions)

    def list_comments(self, job: DocJob) -> list[dict[str, Any]]:
        old = list(job.stored.comments) if job.stored and self.incremental else []
        # A reply, resolve, reopen or delete moves its thread's modifiedTime, so the threads modified
        # since the newest stored one are all that can differ; the bound is inclusive, so a thread
        # changed within the same second is fetched again rather than missed.
        since = max((str(c.get("modifiedTime") or "") for c in old), default="")
        comments = list_comments(self.client, job.entry.id, self.sizes.comments, since)
        if not since:
            return comments
        merged = {str(c.get("id")): c for c in old}
        merged.update({str(c["id"]): c for c in comments})
        return sorted(merged.values(), key=lambda c: (str(c["createdTime"]), str(c["id"])))

    def fetch_revision(self, job: DocJob, rev: dict[str, Any]) -> Revision:
        """Download one revision's HTML and its images; blobs first, then the journal line."""
        fid, rid = job.entry.id, str(rev["id"])
        url = rev["exportLinks"][HTML_MIME]
        html, _ = self.client.download(url, f"doc {fid} revision {rid} export")
        html_blob = self.store.put_blob(html)
        export_host = urllib.parse.urlsplit(url).netloc
        images = []
        for src in image_sources(html):
            with job.lock:
                src_lock = job.image_locks.setdefault(src, threading.Lock())
            with src_lock:  # revisions sharing an image fetch it once, the others wait for it
                cached = self._image(job, src, export_host, f"doc {fid} revision {rid} image")
            if cached is not None:
                images.append(Image(src, cached[0], cached[1]))
        record = Revision(rid, str(rev["modifiedTime"]), _user(rev.get("lastModifyingUser")), html_blob, tuple(images))
        self.journal.append(fid, record.to_json())
        return record

    def _image(self, job: DocJob, src: str, export_host: str, what: str) -> tuple[str, str] | None:
        with job.lock:
            cached = job.images.get(src)
        if cached is None or not self.store.has_blob(cached[0]):
            # Credentials go only to the host that served the export, never to another site; and
            # only Google's image hosts are fetched at all, so a doc cannot aim docpipe at an
            # address of the operator's network. Such an image stays a remote link.
            same_host = urllib.parse.urlsplit(src).netloc == export_host
            if not same_host and not google_image_host(src):
                return None
            try:
                data, ctype = self.client.download(src, what, authorized=same_host)
            except DriveCallError as exc:
                if exc.exhausted or exc.status is None:
                    raise
                return None  # an image the server no longer has: the doc shows it broken too
            cached = (self.store.put_blob(data), ctype if ctype.startswith("image/") else "application/octet-stream")
            with job.lock:
                job.images[src] = cached
        return cached

    def reusable(self, job: DocJob, rev: dict[str, Any]) -> Revision | None:
        old = job.known.get((str(rev["id"]), str(rev["modifiedTime"])))
        if old is None or not self.store.has_blob(old.html):
            return None
        if not all(self.store.has_blob(i.blob) for i in old.images):
            return None
        # Who made a revision can be re-read for free from the listing; the content cannot.
        return dataclasses.replace(old, user=_user(rev.get("lastModifyingUser")))

    def build_record(self, job: DocJob) -> DocRecord:
        e, stored = job.entry, job.stored
        revisions = tuple(job.records[i] for i in range(len(job.revisions or [])))
        titles = list(stored.titles) if stored else []
        if not titles:
            titles = [{"name": e.name, "time": revisions[0].modified_time if revisions else e.modifiedTime}]
        elif titles[-1].get("name") != e.name:
            titles.append({"name": e.name, "time": e.modifiedTime})
        created = e.createdTime or (stored.created_time if stored else "")
        return DocRecord(
            id=e.id, name=e.name, titles=tuple(titles), folder_path=tuple(e.folder_path),
            folder_ids=tuple(e.folder_ids), version=e.version, modified_time=e.modifiedTime,
            web_view_link=e.webViewLink, created_time=created,
            partial_history=partial_history(created, revisions[0].modified_time if revisions else None),
            removed=None, revisions=revisions, comments=tuple(job.comments or ()),
            extra=stored.extra if stored else {})


def skip_reason(job: DocJob) -> str:
    exc = job.failed
    assert exc is not None
    if exc.status == 404:
        return "deleted during the pull (HTTP 404)"
    if exc.status == 403:
        what = {"revisions": "its revisions", "comments": "its comments"}.get(job.failed_kind, "its revision exports")
        return f"no permission to read {what} (HTTP 403{' ' + exc.reason if exc.reason else ''})"
    return exc.message


def sync_docs(puller: Puller, pool: ThreadPoolExecutor, jobs: list[DocJob], on_done: Callable[[], None]) -> list[DocJob]:
    """Run every job's listings and downloads on the pool; write each doc when its last piece lands."""
    futures: dict[Future[Any], tuple[DocJob, str, int]] = {}
    finished: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()  # O(1) per completion, unlike wait()

    def submit(job: DocJob, kind: str, fn: Callable[..., Any], *args: Any, index: int = -1) -> None:
        fut = pool.submit(fn, *args)
        futures[fut] = (job, kind, index)
        job.pending.add(fut)
        fut.add_done_callback(finished.put)

    # Docs enter the pool a window at a time, so memory holds the listings and pending downloads
    # of DOC_WINDOW docs, not of the whole folder; the window keeps every worker busy.
    waiting = iter(jobs)

    def start_next() -> None:
        job = next(waiting, None)
        if job is not None:
            submit(job, "revisions", puller.list_revisions, job)
            submit(job, "comments", puller.list_comments, job)

    for _ in range(DOC_WINDOW):
        start_next()

    failed: list[DocJob] = []
    while futures:
        fut = finished.get()  # each future lands here exactly once, cancelled ones included
        job, kind, index = futures.pop(fut)
        job.pending.discard(fut)
        if fut.cancelled() or job.failed is not None:
            continue
        exc = fut.exception()
        if isinstance(exc, DriveCallError):
            job.failed, job.failed_kind = exc, kind
            for other in job.pending:
                other.cancel()
            failed.append(job)
            on_done()
            start_next()
            continue
        if exc is not None:
            raise exc
        result = fut.result()
        if kind == "revisions":
            job.revisions = result
            for i, rev in enumerate(result):
                record = puller.reusable(job, rev)
                if record is not None:
                    job.records[i] = record
                else:
                    submit(job, "export", puller.fetch_revision, job, rev, index=i)
        elif kind == "comments":
            job.comments = result
        else:
            job.records[index] = result
            job.new += 1
        if not job.pending and job.revisions is not None and job.comments is not None:
            doc = puller.build_record(job)
            puller.store.write_record(doc)
            puller.journal.drop(job.entry.id)
            job.written = (*counts(doc.revisions, doc.comments), doc.partial_history)
            # Memory stays flat: nothing of a stored doc is kept but its counts.
            job.revisions, job.comments, job.stored, job.known, job.images = [], [], None, {}, {}
            job.records.clear()
            on_done()
            start_next()
    return failed
