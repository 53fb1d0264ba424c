"""Stage 2: the store as git history (Contract 1 -> Contract 2).

`WORKDIR/archive` is a *bare* repository: blobs, trees and commits are written into one pack
(pipeline.replay.objects) and `refs/heads/main` is moved once at the end, so there is no working
tree to churn and a killed replay leaves `main` where it was (the next run recomputes the same
objects).
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

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2

from pipeline.archive import BRANCH, MANIFEST_DOCS, Key, key_from_trailers
from pipeline.errors import BadInput, DocpipeError
from pipeline.replay.authors import Authors, KnownEmails, load_authors
from pipeline.replay.conversion import Converted, convert_all, converter_version
from pipeline.replay.events import COMMENT_KINDS, Event, doc_events
from pipeline.replay.replayer import DocState, Replayer, legacy_layout
from pipeline.replay.spool import Spool
from pipeline.store import Snapshot, Store


@dataclass
class ReplayResult:
    archive: Path
    head: str | None
    commits: int
    events: int
    docs: int
    converted: int
    cached: int
    # Seconds per phase (read: store, history and plan; convert; write: objects, commits, pack),
    # and the write phase's CPU seconds (this process alone: steadier than the clock on a busy machine).
    timings: dict[str, float] = field(default_factory=dict)
    migrated: bool = False  # a legacy one-file manifest was split, in a commit of its own


    def to_json(self) -> dict[str, Any]:
        return {"archive": str(self.archive), "head": self.head, "commits": self.commits,
                "events": self.events, "docs": self.docs, "converted": self.converted, "cached": self.cached,
                "migrated": self.migrated, "seconds": {k: round(v, 3) for k, v in sorted(self.timings.items())}}

    def text(self) -> str:
        head = self.head[:12] if self.head else "none"
        if not self.commits:
            return f"archive {self.archive} is up to date (main at {head})"
        moved = f"; moved the manifest to {MANIFEST_DOCS}/ in one commit" if self.migrated else ""
        if not self.events:
            return f"moved the manifest of {self.archive} to {MANIFEST_DOCS}/ in one commit (main at {head})"
        return (f"replayed {self.events} new events of {self.docs} docs into {self.archive} (main at {head}); "
                f"converted {self.converted} revisions, {self.cached} from cache{moved}")


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
        migrate = tip is not None and legacy_layout(repo[tip].peel(pygit2.Commit).tree)
        if not spool.events and not migrate:
            return result
        converted = Converted(workdir / "cache" / "markdown", converter_version())
        # The operator's authors file wins over what the revisions tell.
        replayer = Replayer(repo, store, {**emails.authors(), **authors}, tip, spool, docs, replayed, converted)
        replayer.plan(spool.sorted_events())
        bar.total(spool.job_count() + spool.events)
        planned = time.perf_counter()
        convert_all(spool.jobs, store, converted, workers, on_done=bar.advance)
        writing, writing_cpu = time.perf_counter(), time.process_time()
        head = _write(repo, replayer, spool.sorted_events(), tip, bar)
    finally:
        spool.close()
    result.head, result.commits, result.events = str(head), spool.events + migrate, spool.events
    result.migrated = migrate
    result.converted, result.cached = converted.converted, converted.cached
    result.timings = {"read": planned - started, "convert": writing - planned, "write": time.perf_counter() - writing,
                      "write_cpu": time.process_time() - writing_cpu}
    return result


def _write(repo: pygit2.Repository, replayer: Replayer, events: Iterable[Event], tip: pygit2.Oid | None,
           bar: Any) -> pygit2.Oid:
    """One commit per event on top of `tip`, into one pack, then `main` moved to the last one."""
    head = tip.raw if tip is not None else None
    try:
        if replayer.legacy is not None and head is not None:
            head = replayer.migrate(head)
        for event in events:
            subject = replayer.apply(event)
            head = replayer.commit(event, subject, head)
            bar.advance(1)
        replayer.objects.close()  # objects reach disk before main may point at them
    except BaseException:
        replayer.objects.abort()
        raise
    # Compare-and-swap: a replay running at the same time must not be overwritten.
    current = repo.references.get(BRANCH)
    if (current.target if current is not None else None) != tip:
        raise DocpipeError("the archive's main moved during this replay (another replay running?); run it again")
    assert head is not None  # there were events, so there are commits
    new = pygit2.Oid(raw=head)
    repo.references.create(BRANCH, new, force=True)
    return new
