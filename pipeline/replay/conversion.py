"""The conversion cache: each distinct (HTML blob, converter args) converted once, over all cores,
and kept under WORKDIR/cache/markdown keyed by the converter's own source hash.

Conversion runs with a placeholder slug so its result does not depend on where the doc lands in
the tree (paths are decided in event order, after conversion). Workers die with docpipe."""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice
from pathlib import Path

from pipeline.comments import one_line
from pipeline.errors import DocpipeError
from pipeline.hashing import sha256_hex, sha256_parts
from pipeline.store import Snapshot

# Stands in for the doc's slug while converting; letters and digits only so no converter escapes it.
SLUG_PLACEHOLDER = "docpipe0slug0placeholder0c4f1e"


# ---------------------------------------------------------------- conversion

@dataclass(frozen=True)
class Job:
    """One conversion: a revision's HTML with the args the converter gets."""
    html: str                                  # sha256 of the export HTML
    title: str
    images: tuple[tuple[str, str], ...]        # (src in the HTML, link with the slug placeholder)
    comments: bool                             # whether to pass comments_href
    drive_id: str

    def cache_key(self, version: str) -> str:
        blob = json.dumps([version, self.html, self.title, self.images, self.comments, self.drive_id],
                          ensure_ascii=False)
        return sha256_hex(blob)


def converter_version() -> str:
    """The converter's declared version plus a hash of its source, so an edit invalidates the cache."""
    import pipeline.convert as conv

    root = Path(conv.__file__).parent
    digest = sha256_parts(source.relative_to(root).as_posix().encode() + b"\0" + source.read_bytes() + b"\0"
                          for source in sorted(root.rglob("*.py")))
    return f"{getattr(conv, '__version__', '')}:{digest[:16]}"


def _worker_init(parent: int) -> None:
    """Runs first in each conversion worker: die with docpipe (issue #13), never outlive it.

    A worker blocked on its task pipe exits when the parent's end closes; one busy converting
    would finish its chunk first, so the kernel kills it when the parent dies (Linux)."""
    from pipeline import children

    try:
        children.die_with_parent(parent)
    except OSError:  # no libc to reach: the closed task pipe still ends an idle worker
        if os.getppid() != parent:
            os._exit(1)


def _convert_one(job: Job, html_path: str, cache_path: str) -> None:
    """Runs in a worker process: convert one HTML blob and keep the result in the cache.

    Nothing comes back: the Markdown stays on disk until its commit is written, so memory holds
    one revision's Markdown at a time, not the whole history's."""
    from pipeline.convert import convert_html

    html = Path(html_path).read_bytes().decode("utf-8", errors="replace")
    try:
        md = convert_html(html, title=job.title, images=dict(job.images),
                          comments_href=f"{SLUG_PLACEHOLDER}.comments.md" if job.comments else None,
                          extra_meta={"drive_id": job.drive_id})
    except Exception as exc:  # a converter crash on hostile HTML: name the doc, not a traceback
        raise DocpipeError(f"converting doc {job.drive_id} ({one_line(job.title)[:80] or 'untitled'}) failed: "
                           f"{type(exc).__name__}: {one_line(exc)[:200]}") from None
    _atomic_write(Path(cache_path), md.encode("utf-8"))


def name_header(md: str) -> str | None:
    """The `name` front-matter key; YAML is parsed only when the block has such a line, and once
    per distinct block: a doc's revisions mostly share theirs, and parsing costs ~1 ms each."""
    end = md.find("\n---", 3) if md.startswith("---") else -1
    if end < 0 or not re.search(r"^name\s*:", md[:end], re.M):
        return None
    # front_matter reads up to the first "\n---\n" only, so that prefix parses as the whole would.
    block = md.find("\n---\n", 3)
    return _name_in(md[: block + 5] if block >= 0 else md)


@lru_cache(maxsize=4096)
def _name_in(front: str) -> str | None:
    from pipeline.convert import front_matter

    return front_matter(front).get("name") or None


def _atomic_write(path: Path, data: bytes) -> None:
    # Not pipeline.store.atomic_write: that one fsyncs file and directory, which for thousands of
    # cache entries costs more than converting them again; a cache entry only needs to be whole.
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class Converted:
    """Where each job's Markdown is (the cache, by the job's key under this converter version);
    nothing per job is held in memory: the writer reads each Markdown back when it needs it."""
    root: Path
    version: str
    converted: int = 0
    cached: int = 0

    def key(self, job: Job) -> str:
        return job.cache_key(self.version)

    def path(self, key: str) -> str:
        # A str, not a Path: pathlib interns every part it parses, and the interned-string table
        # keeps the size it grew to with every cache key of the replay.
        return os.path.join(self.root, key[:2], f"{key}.md")

    def markdown(self, job: Job) -> str:
        """A job's Markdown, read back from the cache when its commit is written."""
        try:
            with open(self.path(self.key(job)), encoding="utf-8") as fh:
                return fh.read()
        except (OSError, UnicodeDecodeError):  # removed or damaged since this replay converted it
            raise DocpipeError(f"the Markdown cache entry of doc {job.drive_id} under {self.root} went missing "
                               "during this replay; nothing was changed, run docpipe replay again") from None


def _convert_chunk(chunk: list[tuple[Job, str, str]]) -> int:
    for job, html_path, cache_path in chunk:
        _convert_one(job, html_path, cache_path)
    return len(chunk)


def convert_all(jobs: Callable[[], Iterable[tuple[str, Job]]], store: Snapshot, result: Converted,
                workers: int | None = None, on_done: Callable[[int], None] | None = None) -> None:
    """Every job's Markdown in the cache: already there, else converted in parallel (one process
    per core). `jobs()` lists the distinct jobs with their keys, each time it is called (twice:
    the misses are counted, then converted), so no list of them is held in memory; nor are more
    than a few chunks handed to the workers at a time."""

    def misses() -> Iterator[tuple[Job, str, str]]:
        for key, job in jobs():
            cache_path = result.path(key)
            if os.path.isfile(cache_path):
                continue
            html_path = store.blob_path(job.html)
            if not html_path.is_file():
                raise DocpipeError(f"store is incomplete: HTML blob {job.html[:12]} of doc {job.drive_id} is missing; "
                                   "run docpipe pull")
            yield job, str(html_path), cache_path

    total = todo = 0
    for key, _ in jobs():
        total += 1
        todo += not os.path.isfile(result.path(key))
    result.cached = total - todo
    if on_done and result.cached:
        on_done(result.cached)
    workers = workers or os.cpu_count() or 1
    try:
        if workers <= 1 or todo < 4:
            for item in misses():
                _convert_one(*item)
                if on_done:
                    on_done(1)
        else:
            with ProcessPoolExecutor(max_workers=min(workers, todo), initializer=_worker_init,
                                     initargs=(os.getpid(),)) as pool:
                size = max(1, min(32, todo // (workers * 8)))
                pending: deque[Future[int]] = deque()
                items = misses()
                while chunk := list(islice(items, size)):
                    pending.append(pool.submit(_convert_chunk, chunk))
                    while len(pending) > 4 * workers or (pending and pending[0].done()):
                        done = pending.popleft().result()
                        if on_done:
                            on_done(done)
                while pending:
                    done = pending.popleft().result()
                    if on_done:
                        on_done(done)
    except DocpipeError:
        raise
    except Exception as exc:  # a converter crash on hostile HTML: name the doc, not a traceback
        raise DocpipeError(f"converting a revision failed: {type(exc).__name__}: {one_line(exc)[:200]}") from None
    result.converted = todo
