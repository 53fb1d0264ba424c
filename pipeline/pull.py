"""Stage 1, pull: every revision and comment of the Docs in a Drive folder, into WORKDIR/store.

Order of work: walk the folder tree (one files.list page per folder when nothing changed), then for
each Doc whose `version` differs from the stored one list revisions and comments and download the
revisions not yet stored, all on one pool of `jobs` threads under one rate limit. Blobs are written
first, each doc's JSON last, so a run killed at any instant resumes from what is on disk; a journal
outside the store (WORKDIR/cache/pull/) remembers finished downloads of docs not yet written, so a
resumed run downloads nothing twice.
"""

from __future__ import annotations

import queue
import threading
import urllib.parse
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.drive import DEFAULT_ENDPOINT, DEFAULT_MAX_QPS, DriveCallError, DriveClient, RetryPolicy
from pipeline.drive.auth import ensure_fresh, load_credentials
from pipeline.drive.docs import HTML_MIME, list_comments, list_revisions
from pipeline.drive.images import google_image_host, image_sources
from pipeline.drive.plan import Plan, now, plan_pull, write_feed_state
from pipeline.drive.walk import DOC_MIME, DocEntry, PageSizes, Skipped, doc_entry, get_file
from pipeline.errors import BadInput, DocpipeError
from pipeline.journal import Journal
from pipeline.lock import workdir_lock
from pipeline.store import Store, valid_file_id

# Drive merges an edit session into one revision dated at its last edit, so the first revision
# may trail the doc's creation a little; more than this means the older revisions are not listed.
PARTIAL_HISTORY_SLACK = timedelta(days=1)


def partial_history(created: str, revisions: list[dict[str, Any]]) -> bool:
    """Whether the first listed revision is later than the doc's creation (Google may omit old ones)."""
    if not created or not revisions:
        return False
    try:
        first = _parse_time(str(revisions[0]["modifiedTime"]))
        return first - _parse_time(created) > PARTIAL_HISTORY_SLACK
    except ValueError:
        return False


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class PullSummary:
    folder: str
    docs: int
    revisions: int
    comments: int
    replies: int
    new_revisions: int
    skipped: list[Skipped]
    requests: int
    partial_history: list[str] = field(default_factory=list)  # docs whose history starts after their creation
    how: str = "walk"  # "walk" (the whole tree listed), "changes" (the changes feed only) or "only"
    reconciled: list[str] = field(default_factory=list)  # docs a reconcile walk fixed that the feed missed

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # asdict turns the Skipped entries into dicts too

    def text(self) -> str:
        lines = [
            f"pulled folder {self.folder}: {self.docs} docs, {self.revisions} revisions "
            f"({self.new_revisions} new), {self.comments} comment threads, {self.replies} replies, "
            f"{self.requests} requests"
        ]
        lines += [f"skipped {s.id} ({s.name}): {s.reason}" for s in self.skipped]
        if self.partial_history:
            lines.append(f"partial_history (Drive lists no revisions from these docs' creation): {', '.join(self.partial_history)}")
        if self.reconciled:
            lines.append(f"reconciled (missed by the changes feed): {', '.join(self.reconciled)}")
        return "\n".join(lines)


# ------------------------------------------------------------------ per-doc sync


@dataclass
class _DocJob:
    entry: DocEntry
    stored: dict[str, Any] | None
    known: dict[tuple[str, str], dict[str, Any]]  # (revision id, modifiedTime) -> stored record
    images: dict[str, tuple[str, str]]  # src -> (blob, mimeType), reused across revisions
    image_locks: dict[str, threading.Lock] = field(default_factory=dict)
    revisions: list[dict[str, Any]] | None = None
    comments: list[dict[str, Any]] | None = None
    records: dict[int, dict[str, Any]] = field(default_factory=dict)
    pending: set[Future[Any]] = field(default_factory=set)
    failed: DriveCallError | None = None
    failed_kind: str = ""
    new: int = 0
    written: tuple[int, int, int, bool] | None = None  # (revisions, threads, replies, partial) once stored
    lock: threading.Lock = field(default_factory=threading.Lock)


def _user(u: Any) -> dict[str, str] | None:
    if not isinstance(u, dict):
        return None
    kept = {k: str(u[k]) for k in ("displayName", "emailAddress", "permissionId") if u.get(k) is not None}
    return kept or None


class _Puller:
    def __init__(self, client: DriveClient, store: Store, journal: Journal, sizes: PageSizes,
                 incremental: bool = False) -> None:
        self.client, self.store, self.journal, self.sizes = client, store, journal, sizes
        self.incremental = incremental

    def list_revisions(self, job: _DocJob) -> list[dict[str, Any]]:
        return list_revisions(self.client, job.entry.id, self.sizes.revisions)

    def list_comments(self, job: _DocJob) -> list[dict[str, Any]]:
        old = list((job.stored or {}).get("comments") or []) if self.incremental else []
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

    def fetch_revision(self, job: _DocJob, rev: dict[str, Any]) -> dict[str, Any]:
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
                images.append({"src": src, "blob": cached[0], "mimeType": cached[1]})
        record = {
            "id": rid, "modifiedTime": str(rev["modifiedTime"]), "lastModifyingUser": _user(rev.get("lastModifyingUser")),
            "html": html_blob, "images": images,
        }
        self.journal.append(fid, record)
        return record

    def _image(self, job: _DocJob, src: str, export_host: str, what: str) -> tuple[str, str] | None:
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

    def reusable(self, job: _DocJob, rev: dict[str, Any]) -> dict[str, Any] | None:
        old = job.known.get((str(rev["id"]), str(rev["modifiedTime"])))
        if old is None or not self.store.has_blob(old["html"]):
            return None
        if not all(self.store.has_blob(i["blob"]) for i in old.get("images", [])):
            return None
        # Who made a revision can be re-read for free from the listing; the content cannot.
        return {**old, "lastModifyingUser": _user(rev.get("lastModifyingUser"))}

    def build_doc(self, job: _DocJob) -> dict[str, Any]:
        e, stored = job.entry, job.stored or {}
        revisions = [job.records[i] for i in range(len(job.revisions or []))]
        titles = list(stored.get("titles") or [])
        if not titles:
            first = revisions[0]["modifiedTime"] if revisions else e.modifiedTime
            titles = [{"name": e.name, "time": first}]
        elif titles[-1].get("name") != e.name:
            titles.append({"name": e.name, "time": e.modifiedTime})
        return {
            "id": e.id, "name": e.name, "titles": titles, "folder_path": e.folder_path, "folder_ids": e.folder_ids,
            "version": e.version, "modifiedTime": e.modifiedTime, "webViewLink": e.webViewLink, "removed": None,
            "revisions": revisions, "comments": job.comments or [],
            "createdTime": e.createdTime or stored.get("createdTime", ""),
            "partial_history": partial_history(e.createdTime or stored.get("createdTime", ""), revisions),
        }


def _skip_reason(job: _DocJob) -> str:
    exc = job.failed
    assert exc is not None
    if exc.status == 404:
        return "deleted during the pull (HTTP 404)"
    if exc.status == 403:
        what = {"revisions": "its revisions", "comments": "its comments"}.get(job.failed_kind, "its revision exports")
        return f"no permission to read {what} (HTTP 403{' ' + exc.reason if exc.reason else ''})"
    return exc.message


DOC_WINDOW = 64


def _sync_docs(puller: _Puller, pool: ThreadPoolExecutor, jobs: list[_DocJob], on_done: Callable[[], None]) -> list[_DocJob]:
    """Run every job's listings and downloads on the pool; write each doc when its last piece lands."""
    futures: dict[Future[Any], tuple[_DocJob, str, int]] = {}
    finished: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()  # O(1) per completion, unlike wait()

    def submit(job: _DocJob, kind: str, fn: Callable[..., Any], *args: Any, index: int = -1) -> None:
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

    failed: list[_DocJob] = []
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
            puller.store.write_doc(puller.build_doc(job))
            puller.journal.drop(job.entry.id)
            revs, comments = job.revisions, job.comments
            job.written = (*_counts(revs, comments), partial_history(job.entry.createdTime, revs))
            # Memory stays flat: nothing of a stored doc is kept but its counts.
            job.revisions, job.comments, job.stored, job.known, job.images = [], [], None, {}, {}
            job.records.clear()
            on_done()
            start_next()
    return failed


# ------------------------------------------------------------------ the stage




def _mark_removed(client: DriveClient, store: Store, pool: ThreadPoolExecutor, gone: list[str]) -> None:
    def check(fid: str) -> tuple[str, dict[str, Any] | None, DriveCallError | None]:
        try:
            return fid, get_file(client, fid, f"doc {fid}"), None
        except DriveCallError as exc:
            return fid, None, exc

    for fid, info, exc in pool.map(check, gone):
        if exc is not None and exc.exhausted:
            continue  # unknown for now; the next pull asks again
        if info is not None and info.get("trashed"):
            removed = {"time": str(info.get("trashedTime") or info.get("modifiedTime") or now()), "reason": "trashed"}
        elif exc is not None and exc.status == 404:
            removed = {"time": now(), "reason": "deleted"}
        else:
            removed = {"time": now(), "reason": "removed"}  # moved out of the folder, or access lost
        doc = store.read_doc(fid)
        if doc is not None:
            store.write_doc({**doc, "removed": removed})


def _open_client(endpoint: str, credentials: Path | None, max_qps: float, jobs: int, retry: RetryPolicy | None) -> DriveClient:
    loaded = load_credentials(credentials)
    ensure_fresh(loaded)
    return DriveClient(loaded, endpoint=endpoint, max_qps=max_qps, burst=jobs, retry=retry)


def pull(
    folder_id: str,
    *,
    workdir: Path,
    endpoint: str = DEFAULT_ENDPOINT,
    credentials: Path | None = None,
    jobs: int = 8,
    max_qps: float = DEFAULT_MAX_QPS,
    only_file_ids: list[str] | None = None,
    retry: RetryPolicy | None = None,
    page_sizes: PageSizes | None = None,
    quiet: bool = False,
    full: bool = False,
    reconcile_every: int = 24,
) -> PullSummary:
    """Pull `folder_id` (or just `only_file_ids`, without a folder walk) into `workdir/store`.

    Per-doc problems become `skipped` entries; a doc that still fails after every retry raises
    DocpipeError naming it, after everything else is stored. `quiet` hides the progress display.
    After the first pull only the changes feed is read, unless `full` is given or this is the
    `reconcile_every`-th pull since the last walk.
    """
    if jobs < 1:
        raise BadInput("--jobs must be at least 1")
    if reconcile_every < 1:
        raise BadInput("[drive] reconcile_every must be at least 1")
    workdir = Path(workdir)
    with workdir_lock(workdir, name=".pull.lock", what="pull"):
        store = Store.at(workdir)
        store.sweep_temp_files()
        client = _open_client(endpoint, credentials, max_qps, jobs, retry)
        with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pull") as pool:
            try:
                return _pull_locked(client, pool, store, Journal(workdir / "cache" / "pull"), folder_id,
                                    only_file_ids, page_sizes or PageSizes(), quiet, full, reconcile_every)
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def _pull_locked(client: DriveClient, pool: ThreadPoolExecutor, store: Store, journal: Journal, folder_id: str,
                 only_file_ids: list[str] | None, sizes: PageSizes, quiet: bool, full: bool = False,
                 reconcile_every: int = 24) -> PullSummary:
    from pipeline.progress import log, progress

    old_folder = store.read_folder() or {}
    state_path = journal.root.parent / "changes.json"
    if only_file_ids is None:
        plan, root, found, skipped = plan_pull(client, pool, store, state_path, folder_id, sizes, full, reconcile_every)
    else:
        root, found, skipped = _only(client, pool, folder_id, only_file_ids, store)
        plan = Plan("only")
    # Revisions, comment threads and replies of every doc in the store, noted as each doc is read
    # or written, so the summary needs no second pass over the store.
    counts: dict[str, tuple[int, int, int]] = {}
    partial: dict[str, bool] = {}
    todo = []
    for entry in found.values():
        stored = store.read_doc(entry.id)
        if stored:
            counts[entry.id] = _counts(stored.get("revisions", []), stored.get("comments", []))
            partial[entry.id] = bool(stored.get("partial_history"))
        if stored and stored.get("version") == entry.version and stored.get("removed") is None \
                and stored.get("name") == entry.name and stored.get("folder_ids") == entry.folder_ids:
            continue  # unchanged since the last pull: no revisions, comments or export calls
        known = {(r["id"], r["modifiedTime"]): r for r in (stored or {}).get("revisions", [])}
        known.update(journal.read(entry.id))
        images = {i["src"]: (i["blob"], i["mimeType"]) for r in known.values() for i in r.get("images", [])}
        todo.append(_DocJob(entry, stored, known, images))
    todo.sort(key=lambda j: j.entry.id)
    with progress("pull", quiet=quiet, every=10) as bar:
        bar.total(len(todo))
        puller = _Puller(client, store, journal, sizes, incremental=plan.how == "changes")
        failed = _sync_docs(puller, pool, todo, lambda: bar.advance())
    for job in todo:
        if job.written is not None:
            counts[job.entry.id], partial[job.entry.id] = job.written[:3], job.written[3]
    gone = []
    cache, plan.counts = plan.counts, {}
    for fid in store.doc_ids():
        if fid in found:
            continue
        try:
            st = store.doc_path(fid).stat()
        except FileNotFoundError:
            continue
        hit = cache.get(fid)
        if fid not in plan.removed and isinstance(hit, list) and len(hit) == 6 and hit[:2] == [st.st_mtime_ns, st.st_size]:
            counts[fid], partial[fid] = (int(hit[2]), int(hit[3]), int(hit[4])), bool(hit[5])
            plan.counts[fid] = hit
            continue
        doc = store.read_doc(fid)
        if doc is not None:
            if fid in plan.removed and doc.get("removed") is None:
                doc = {**doc, "removed": plan.removed[fid]}
                store.write_doc(doc)
            counts[fid] = _counts(doc.get("revisions", []), doc.get("comments", []))
            partial[fid] = bool(doc.get("partial_history")) and doc.get("removed") is None
            if doc.get("removed") is None:
                gone.append(fid)
    reconciled: list[str] = []
    if plan.how == "walk":
        _mark_removed(client, store, pool, gone)
        if plan.touched is not None:
            reconciled = sorted({j.entry.id for j in todo} - plan.touched | set(gone) - plan.touched)

    for job in failed:
        assert job.failed is not None
        reason = _skip_reason(job)
        skipped[job.entry.id] = Skipped(job.entry.id, job.entry.name, reason)
        log(f"docpipe: skipped doc {job.entry.id} ({job.entry.name}): {reason}")  # stderr, even with --json
        if job.failed.status == 404 and job.stored is not None:
            # Deleted between the listing and its revisions: its history stays, marked as gone.
            store.write_doc({**job.stored, "removed": {"time": now(), "reason": "deleted"}})
            found.pop(job.entry.id, None)
            plan.removed.setdefault(job.entry.id, {"time": now(), "reason": "deleted"})
    present = [fid for fid in found if store.doc_path(fid).is_file()]
    if plan.how != "walk":
        old = old_folder
        present = sorted((set(old.get("docs", [])) - set(plan.removed)) | set(present))
        skipped = {**{s["id"]: Skipped(s["id"], s["name"], s["reason"]) for s in old.get("skipped", [])
                      if s.get("id") not in found}, **skipped}
    skipped_list = sorted(skipped.values(), key=lambda s: s.id)
    store.write_folder({
        "id": root["id"], "name": root.get("name", ""),
        "webViewLink": root.get("webViewLink") or f"https://drive.google.com/drive/folders/{root['id']}",
        "docs": sorted(present), "skipped": [asdict(s) for s in skipped_list],
    })
    if plan.how != "only":
        _remember_counts(store, plan, counts, partial)
        write_feed_state(state_path, root["id"], plan, root.get("driveId"))
    exhausted = [j.failed for j in failed if j.failed is not None and j.failed.exhausted]
    if exhausted:
        more = f" (and {len(exhausted) - 1} more docs)" if len(exhausted) > 1 else ""
        raise DocpipeError(exhausted[0].message + more)
    revisions, comments, replies = (sum(c[i] for c in counts.values()) for i in range(3))
    return PullSummary(root["id"], len(counts), revisions, comments, replies, sum(j.new for j in todo if j.failed is None),  # a skipped doc stored nothing new
                       skipped_list, client.requests, sorted(k for k, v in partial.items() if v), plan.how, reconciled)


def _only(client: DriveClient, pool: ThreadPoolExecutor, folder_id: str, file_ids: list[str], store: Store
          ) -> tuple[dict[str, Any], dict[str, DocEntry], dict[str, Skipped]]:
    """The instructor flow: named docs only, no folder walk; folder.json keeps what it had."""
    old = store.read_folder() or {}
    root = {"id": old.get("id") or folder_id, "name": old.get("name", ""), "webViewLink": old.get("webViewLink", "")}
    found: dict[str, DocEntry] = {}
    for fid in file_ids:
        if not valid_file_id(fid):
            raise BadInput(f"{fid!r} is not a Drive file id")
    infos = list(pool.map(lambda fid: _get_or_bad(client, fid), file_ids))
    for info in infos:
        if info.get("mimeType") != DOC_MIME:
            raise BadInput(f"{info['id']} is not a Google Doc ({info.get('mimeType', 'unknown type')})")
        stored = store.read_doc(info["id"]) or {}
        found[info["id"]] = doc_entry(info, list(stored.get("folder_path", [])), list(stored.get("folder_ids", [])))
    return root, found, {}


def _get_or_bad(client: DriveClient, fid: str) -> dict[str, Any]:
    try:
        return get_file(client, fid, f"doc {fid}")
    except DriveCallError as exc:
        if exc.status in (403, 404):
            raise BadInput(f"doc {fid} not found, or not shared with these credentials") from None
        raise


def _remember_counts(store: Store, plan: Plan, counts: dict[str, tuple[int, int, int]], partial: dict[str, bool]) -> None:
    # Keyed by each doc JSON's mtime and size: any later write, by any pull, invalidates its entry.
    for fid, c in counts.items():
        if fid not in plan.counts:
            try:
                st = store.doc_path(fid).stat()
            except FileNotFoundError:
                continue
            plan.counts[fid] = [st.st_mtime_ns, st.st_size, *c, partial.get(fid, False)]


def _counts(revisions: list[Any], comments: list[Any]) -> tuple[int, int, int]:
    return len(revisions), len(comments), sum(len(c.get("replies") or []) for c in comments)
