"""Pull as a stage: what changed in Drive, each changed doc fetched, the folder's record, a summary.

Order of work: learn what changed (pipeline/drive/plan.py: the changes feed, or a walk of the
tree), then for each Doc whose `version` differs from the stored one list revisions and comments
and download the revisions not yet stored (pipeline/pull/docs.py), all on one pool of `jobs`
threads under one rate limit; then mark what left the folder, write folder.json and, last, where
the changes feed left off (pipeline/pull/feed.py).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.drive import DEFAULT_ENDPOINT, DEFAULT_MAX_QPS, DriveCallError, DriveClient, RetryPolicy
from pipeline.drive.auth import ensure_fresh, load_credentials
from pipeline.drive.plan import Plan, now, plan_pull
from pipeline.drive.walk import DOC_MIME, DocEntry, PageSizes, Skipped, doc_entry, get_file
from pipeline.errors import BadInput, DocpipeError
from pipeline.journal import Journal
from pipeline.lock import workdir_lock
from pipeline.pull import feed
from pipeline.pull.docs import DocJob, Puller, counts, skip_reason, sync_docs
from pipeline.store import Store, valid_file_id


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
        record = store.read_record(fid)
        if record is not None:
            store.write_record(dataclasses.replace(record, removed=removed))


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
    state_path = feed.state_path(store.root.parent)
    if only_file_ids is None:
        state = feed.read_state(state_path, folder_id)
        plan, root, found, skipped = plan_pull(client, pool, old_folder, state, lambda fid: _where(store, fid),
                                               folder_id, sizes, full, reconcile_every)
    else:
        root, found, skipped = _only(client, pool, folder_id, only_file_ids, store)
        plan = Plan("only")
    for fid, (path, ids) in sorted(plan.moved.items()):  # below a renamed or moved folder: new paths
        moved = store.read_record(fid)
        if moved is not None:
            store.write_record(dataclasses.replace(moved, folder_path=tuple(path), folder_ids=tuple(ids)))
    # Revisions, comment threads and replies of every doc in the store, noted as each doc is read
    # or written, so the summary needs no second pass over the store.
    tally: dict[str, tuple[int, int, int]] = {}
    partial: dict[str, bool] = {}
    todo = []
    for entry in found.values():
        stored = store.read_record(entry.id)
        if stored:
            tally[entry.id] = counts(stored.revisions, stored.comments)
            partial[entry.id] = stored.partial_history
        if stored and stored.version == entry.version and stored.removed is None \
                and stored.name == entry.name and stored.folder_ids == tuple(entry.folder_ids):
            continue  # unchanged since the last pull: no revisions, comments or export calls
        todo.append(DocJob.of(entry, stored, journal))
    todo.sort(key=lambda j: j.entry.id)
    with progress("pull", quiet=quiet, every=10) as bar:
        bar.total(len(todo))
        puller = Puller(client, store, journal, sizes, incremental=plan.how == "changes")
        failed = sync_docs(puller, pool, todo, lambda: bar.advance())
    for job in todo:
        if job.written is not None:
            tally[job.entry.id], partial[job.entry.id] = job.written[:3], job.written[3]
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
            tally[fid], partial[fid] = (int(hit[2]), int(hit[3]), int(hit[4])), bool(hit[5])
            plan.counts[fid] = hit
            continue
        record = store.read_record(fid)
        if record is not None:
            if fid in plan.removed and record.removed is None:
                record = dataclasses.replace(record, removed=plan.removed[fid])
                store.write_record(record)
            tally[fid] = counts(record.revisions, record.comments)
            partial[fid] = record.partial_history and record.removed is None
            if record.removed is None:
                gone.append(fid)
    reconciled: list[str] = []
    if plan.how == "walk":
        _mark_removed(client, store, pool, gone)
        if plan.touched is not None:
            reconciled = sorted({j.entry.id for j in todo} - plan.touched | set(gone) - plan.touched)

    for job in failed:
        assert job.failed is not None
        reason = skip_reason(job)
        skipped[job.entry.id] = Skipped(job.entry.id, job.entry.name, reason)
        log(f"docpipe: skipped doc {job.entry.id} ({job.entry.name}): {reason}")  # stderr, even with --json
        if job.failed.status == 404 and job.stored is not None:
            # Deleted between the listing and its revisions: its history stays, marked as gone.
            store.write_record(dataclasses.replace(job.stored, removed={"time": now(), "reason": "deleted"}))
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
        _remember_counts(store, plan, tally, partial)
        feed.write_state(state_path, root["id"], plan, root.get("driveId"))
    exhausted = [j.failed for j in failed if j.failed is not None and j.failed.exhausted]
    if exhausted:
        more = f" (and {len(exhausted) - 1} more docs)" if len(exhausted) > 1 else ""
        raise DocpipeError(exhausted[0].message + more)
    revisions, comments, replies = (sum(c[i] for c in tally.values()) for i in range(3))
    return PullSummary(root["id"], len(tally), revisions, comments, replies, sum(j.new for j in todo if j.failed is None),  # a skipped doc stored nothing new
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
        stored = store.read_record(info["id"])
        found[info["id"]] = doc_entry(info, list(stored.folder_path) if stored else [],
                                      list(stored.folder_ids) if stored else [])
    return root, found, {}


def _get_or_bad(client: DriveClient, fid: str) -> dict[str, Any]:
    try:
        return get_file(client, fid, f"doc {fid}")
    except DriveCallError as exc:
        if exc.status in (403, 404):
            raise BadInput(f"doc {fid} not found, or not shared with these credentials") from None
        raise


def _where(store: Store, file_id: str) -> tuple[list[str], list[str]] | None:
    record = store.read_record(file_id)
    return (list(record.folder_path), list(record.folder_ids)) if record else None


def _remember_counts(store: Store, plan: Plan, tally: dict[str, tuple[int, int, int]], partial: dict[str, bool]) -> None:
    # Keyed by each doc JSON's mtime and size: any later write, by any pull, invalidates its entry.
    for fid, c in tally.items():
        if fid not in plan.counts:
            try:
                st = store.doc_path(fid).stat()
            except FileNotFoundError:
                continue
            plan.counts[fid] = [st.st_mtime_ns, st.st_size, *c, partial.get(fid, False)]


