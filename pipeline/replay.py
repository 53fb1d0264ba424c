"""Stage 2: the store as git history (Contract 1 -> Contract 2), written with pygit2 objects only.

`WORKDIR/archive` is a *bare* repository: blobs, trees and commits are made in the object
database and `refs/heads/main` is moved once at the end, so there is no working tree to churn
and a killed replay leaves `main` where it was (the next run recomputes the same objects).
Read it with `git --git-dir WORKDIR/archive …`, pygit2, or clone it.

Incremental and idempotent without a side file: every commit's trailers name the event it
records (see `pipeline.timeline`), so the replayed set is read back from history. Events that
are not there yet are appended after the tip in event order; nothing new means no commit.

Conversion is the costly part: each distinct (HTML blob, converter args) is converted once,
over all cores, and kept under WORKDIR/cache/markdown keyed by the converter's own source hash,
so later replays reuse it. Conversion runs with a placeholder slug so its result does not depend
on where the doc lands in the tree (paths are decided in event order, after conversion).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
import tomllib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pygit2

from pipeline import paths
from pipeline.archive import BRANCH, MANIFEST, Key, Manifest, key_from_trailers
from pipeline.comments import one_line, render_comments
from pipeline.errors import BadInput, DocpipeError
from pipeline.hashing import sha256_hex, sha256_parts
from pipeline.store import Snapshot, Store
from pipeline.timeline import (
    COMMENT_KINDS,
    Event,
    all_events,
    initial_title,
    trailers_of,
)

BLOB, TREE = pygit2.enums.FileMode.BLOB, pygit2.enums.FileMode.TREE
COMMITTER = ("docpipe", "docpipe@localhost")
# Stands in for the doc's slug while converting; letters and digits only so no converter escapes it.
SLUG_PLACEHOLDER = "docpipe0slug0placeholder0c4f1e"
_EMAIL = re.compile(r"^[^<>\s@]+@[^<>\s@]+$")
_AUTHOR = re.compile(r"^\s*([^<>]*?)\s*<([^<>\s]+@[^<>\s]+)>\s*$")


# ---------------------------------------------------------------- authors

Authors = dict[str, tuple[str, str]]


def load_authors(path: Path | None) -> Authors:
    """`"Display Name" = "Name <email>"` lines (TOML), like `git svn --authors-file`."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise BadInput(f"authors file {path} does not exist") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise BadInput(f"authors file {path} is not valid TOML: {one_line(exc)}") from None
    out: Authors = {}
    for display, value in data.items():
        match = _AUTHOR.match(value) if isinstance(value, str) else None
        if not match or not match.group(1):
            raise BadInput(f'authors file {path}: entry "{one_line(display)[:60]}" must be "Name <email>"')
        out[display] = (match.group(1), match.group(2))
    return out


def _clean_name(name: Any) -> str:
    # git refuses angle brackets in names; newlines would break the commit header.
    return one_line(str(name or "").replace("<", "").replace(">", "")) or "Unknown"


def identity(user: dict | None, authors: Authors) -> tuple[str, str]:
    """(name, email) of a Drive user: Google's email, else the authors map, else a placeholder."""
    display = one_line((user or {}).get("displayName")) or "Unknown"
    email = one_line((user or {}).get("emailAddress"))
    if email and _EMAIL.match(email):
        return _clean_name(display), email
    if display in authors:
        return authors[display]
    return _clean_name(display), paths.placeholder_email(display)


def known_emails(store: Any) -> Authors:
    """Display name -> identity for people whose email Google gave on some revision.

    Google never gives a commenter's email, but the same person's revisions often carry it; a
    name seen with two different emails is ambiguous and left out."""
    seen: dict[str, set[str]] = {}
    for doc in store.docs.values():
        for rev in doc.get("revisions", []):
            user = rev.get("lastModifyingUser") or {}
            display, email = one_line(user.get("displayName")), one_line(user.get("emailAddress"))
            if display and email and _EMAIL.match(email):
                seen.setdefault(display, set()).add(email)
    return {d: (_clean_name(d), next(iter(e))) for d, e in sorted(seen.items()) if len(e) == 1}


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
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


def _convert_one(job: Job, html_path: str, cache_path: str) -> str:
    """Runs in a worker process: convert one HTML blob and keep the result in the cache."""
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
    return md


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
    markdown: dict[Job, str] = field(default_factory=dict)
    converted: int = 0
    cached: int = 0


def convert_all(jobs: Iterable[Job], store: Snapshot, cache_dir: Path, workers: int | None = None,
                on_done: Callable[[int], None] | None = None) -> Converted:
    """Markdown for every job: from the cache, else converted in parallel (one process per core)."""
    version = converter_version()
    result = Converted()
    todo: list[tuple[Job, str, str]] = []
    for key, job in sorted({job.cache_key(version): job for job in jobs}.items()):
        cache_path = cache_dir / "markdown" / key[:2] / f"{key}.md"
        try:
            result.markdown[job] = cache_path.read_text(encoding="utf-8")
            result.cached += 1
            if on_done:
                on_done(1)
            continue
        except (FileNotFoundError, UnicodeDecodeError):
            pass
        html_path = store.blob_path(job.html)
        if not html_path.is_file():
            raise DocpipeError(f"store is incomplete: HTML blob {job.html[:12]} of doc {job.drive_id} is missing; run docpipe pull")
        todo.append((job, str(html_path), str(cache_path)))
    workers = workers or os.cpu_count() or 1
    try:
        if workers <= 1 or len(todo) < 4:
            for job, html_path, cache_path in todo:
                result.markdown[job] = _convert_one(job, html_path, cache_path)
                if on_done:
                    on_done(1)
        else:
            with ProcessPoolExecutor(max_workers=min(workers, len(todo)), initializer=_worker_init,
                                     initargs=(os.getpid(),)) as pool:
                chunk = max(1, min(32, len(todo) // (workers * 8)))
                columns = list(zip(*todo))
                for job, md in zip(columns[0], pool.map(_convert_one, *columns, chunksize=chunk)):
                    result.markdown[job] = md
                    if on_done:
                        on_done(1)
    except DocpipeError:
        raise
    except Exception as exc:  # a converter crash on hostile HTML: name the doc, not a traceback
        raise DocpipeError(f"converting a revision failed: {type(exc).__name__}: {one_line(exc)[:200]}") from None
    result.converted = len(todo)
    return result


# ---------------------------------------------------------------- writing objects in bulk

class ObjectBuffer:
    """Keeps new git objects in libgit2's in-memory ODB backend (mempack) and writes them as
    one pack (pipeline.packwriter), instead of one loose file per object.

    A replay makes ~5 objects per commit; as loose files that is ~5 file creations per commit,
    which was most of its time. pygit2 does not wrap `git_mempack_new`, so it is reached through
    ctypes on the libgit2 pygit2 itself links; without it, objects are written loose as usual.
    A batch is packed once it reaches BATCH_OBJECTS or BATCH_BYTES, so memory stays bounded.
    """

    BATCH_OBJECTS, BATCH_BYTES = 200_000, 256 << 20

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self.oids: list[pygit2.Oid] = []
        self.bytes = 0
        self._lib: Any = None
        self._odb: Any = None
        self._backend: Any = None
        import ctypes

        self._ctypes = ctypes
        try:
            lib = ctypes.CDLL(pygit2._pygit2.__file__)  # its dependencies' symbols (libgit2) resolve too
            for name in ("git_repository_odb", "git_mempack_new", "git_odb_add_backend", "git_mempack_reset", "git_odb_free",
                         "git_odb_read", "git_odb_object_type"):
                getattr(lib, name).restype = ctypes.c_int
            lib.git_odb_object_data.restype = ctypes.c_void_p
            lib.git_odb_object_size.restype = ctypes.c_size_t
            lib.git_odb_object_free.restype = None
            odb, backend = ctypes.c_void_p(), ctypes.c_void_p()
            if lib.git_repository_odb(ctypes.byref(odb), ctypes.c_void_p.from_buffer_copy(repo._pointer)) != 0:
                return
            # The highest-priority backend gets every write.
            if lib.git_mempack_new(ctypes.byref(backend)) != 0 or \
                    lib.git_odb_add_backend(odb, backend, ctypes.c_int(1000)) != 0:
                lib.git_odb_free(odb)
                return
            self._lib, self._odb, self._backend = lib, odb, backend
        except (OSError, AttributeError, TypeError, ValueError):
            self._lib = None

    def added(self, oid: pygit2.Oid, size: int = 0) -> pygit2.Oid:
        if self._lib is not None:
            self.oids.append(oid)
            self.bytes += size
            if len(self.oids) >= self.BATCH_OBJECTS or self.bytes >= self.BATCH_BYTES:
                self.flush()
        return oid

    def flush(self) -> None:
        """Write the buffered objects as one pack (with its index) and empty the buffer."""
        if self._lib is None or not self.oids:
            return
        from pipeline.packwriter import write_pack

        def objects() -> Iterator[tuple[bytes, int, bytes]]:
            for oid in dict.fromkeys(self.oids):  # an object written twice is packed once
                kind, data = self._read(oid)
                yield oid.raw, kind, data

        write_pack(Path(self.repo.path) / "objects" / "pack", objects())
        self._lib.git_mempack_reset(self._backend)
        self.oids, self.bytes = [], 0

    def _read(self, oid: pygit2.Oid) -> tuple[int, bytes]:
        """(type, raw content) from the ODB that holds the mempack (pygit2's readers do not
        reach it)."""
        ctypes, lib = self._ctypes, self._lib
        obj = ctypes.c_void_p()
        if lib.git_odb_read(ctypes.byref(obj), self._odb, oid.raw) != 0:  # bytes pass as the git_oid's 20 bytes
            raise DocpipeError(f"replay lost object {oid} before writing it; nothing was changed")
        try:
            return lib.git_odb_object_type(obj), ctypes.string_at(lib.git_odb_object_data(obj), lib.git_odb_object_size(obj))
        finally:
            lib.git_odb_object_free(obj)

    def close(self, *, keep: bool = True) -> None:
        """Write what is buffered (or drop it, after a failure) and release the ODB reference.

        libgit2 cannot remove a backend, so the (now empty) mempack stays the write target of
        this Repository object: replay drops the object afterwards and never writes through it."""
        if self._lib is None:
            return
        try:
            if keep:
                self.flush()
        finally:
            self._lib.git_mempack_reset(self._backend)
            self._lib.git_odb_free(self._odb)
            self._lib = None


# ---------------------------------------------------------------- the in-memory tree

class Tree:
    """A directory of the archive, loaded lazily from git; only changed directories are rewritten."""

    def __init__(self, repo: pygit2.Repository, oid: pygit2.Oid | None = None,
                 sink: ObjectBuffer | None = None) -> None:
        self.repo, self.oid, self.sink = repo, oid, sink
        self._entries: dict[str, tuple[pygit2.Oid, int] | Tree] | None = None if oid else {}

    @property
    def entries(self) -> dict[str, tuple[pygit2.Oid, int] | "Tree"]:
        if self._entries is None:
            self._entries = {}
            for entry in self.repo[self.oid]:
                if entry.filemode == TREE:
                    self._entries[entry.name] = Tree(self.repo, entry.id, self.sink)
                else:
                    self._entries[entry.name] = (entry.id, entry.filemode)
        return self._entries

    def _walk(self, parts: list[str], create: bool) -> Tree | None:
        node: Tree = self
        for part in parts:
            child = node.entries.get(part)
            if not isinstance(child, Tree):
                if not create:
                    return None
                child = node.entries[part] = Tree(self.repo, None, self.sink)
            node = child
        return node

    def get(self, path: str) -> tuple[pygit2.Oid, int] | Tree | None:
        *dirs, name = path.split("/")
        parent = self._walk(dirs, create=False)
        return parent.entries.get(name) if parent else None

    def set(self, path: str, oid: pygit2.Oid, mode: int = BLOB) -> None:
        *dirs, name = path.split("/")
        if self.get(path) == (oid, mode):
            return
        self._dirty(dirs)
        parent = self._walk(dirs, create=True)
        assert parent is not None
        parent.entries[name] = (oid, mode)

    def remove(self, path: str) -> None:
        """Remove a file or a whole directory; empty parents go too (git keeps no empty dirs)."""
        if self.get(path) is None:
            return
        *dirs, name = path.split("/")
        self._dirty(dirs)
        parent = self._walk(dirs, create=False)
        assert parent is not None
        del parent.entries[name]

    def _dirty(self, dirs: list[str]) -> None:
        node: Tree | None = self
        self.oid = None
        for part in dirs:
            child = node.entries.get(part) if node else None
            if not isinstance(child, Tree):
                return
            child.oid = None
            node = child

    def write(self) -> pygit2.Oid | None:
        """The tree's oid (None when empty), writing the changed subtrees."""
        if self.oid is not None:
            return self.oid
        builder = self.repo.TreeBuilder()
        for name in list(self.entries):
            value = self.entries[name]
            if isinstance(value, Tree):
                sub = value.write()
                if sub is None:
                    del self.entries[name]
                    continue
                builder.insert(name, sub, TREE)
            else:
                builder.insert(name, value[0], value[1])
        if not len(builder):
            return None
        self.oid = builder.write()
        if self.sink is not None:
            self.sink.added(self.oid)
        return self.oid


# ---------------------------------------------------------------- replay state

@dataclass
class DocState:
    file_id: str
    title: str
    folders: tuple[str, ...]
    rev: dict | None = None
    job: Job | None = None
    stem: str | None = None
    name_header: str | None = None
    has_comments: bool = False
    md_cache: tuple[str, pygit2.Oid] | None = None


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


def scan_history(repo: pygit2.Repository, tip: pygit2.Oid | None) -> tuple[set[Key], dict[str, str]]:
    """Events already in the archive, and each doc's newest replayed revision id."""
    applied: set[Key] = set()
    latest: dict[str, str] = {}
    if tip is None:
        return applied, latest
    for commit in repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL):
        key = key_from_trailers(commit.message_trailers)
        if key is None:
            continue
        applied.add(key)
        if key[0] == "revision":
            latest.setdefault(key[1], key[2])
    return applied, latest


class Replayer:
    """Applies events to the tree and makes one commit per event."""

    def __init__(self, repo: pygit2.Repository, store: Snapshot, authors: Authors,
                 tip: pygit2.Oid | None, applied: set[Key], latest: dict[str, str]) -> None:
        self.repo, self.store, self.authors = repo, store, authors
        self.applied = applied
        # Docs with at least one comment event in the archive: they have a comments file.
        self.commented = {key[1] for key in applied if key[0] in COMMENT_KINDS}
        self.tip = tip
        self.buffer = ObjectBuffer(repo)
        self.tree = Tree(repo, repo[tip].tree_id if tip else None, self.buffer)
        self.table = paths.PathTable()
        self.docs: dict[str, DocState] = {}
        self.markdown: dict[Job, str] = {}
        self.names: dict[Job, str | None] = {}
        self.image_oids: dict[str, pygit2.Oid] = {}
        self.manifest = self._load_manifest()
        self._manifest_dirty = True  # serializing it is costly: only when an entry changed
        for file_id, doc in store.docs.items():
            self.docs[file_id] = DocState(file_id, initial_title(doc), paths.folder_slugs(list(doc.get("folder_path") or [])),
                                          has_comments=bool(doc.get("comments")))
        for file_id, entry in sorted(self.manifest.docs.items()):
            state = self.docs.get(file_id)
            if state is None or not isinstance(entry, dict) or not str(entry.get("path", "")).endswith(".md"):
                continue
            state.stem = entry["path"][:-3]
            state.title = str(entry.get("title", state.title))
            rev_id = latest.get(file_id)
            state.rev = next((r for r in store.docs[file_id].get("revisions") or [] if r.get("id") == rev_id), None)
            blob = self.tree.get(entry["path"])
            if isinstance(blob, tuple):
                state.name_header = name_header(self.repo[blob[0]].data.decode("utf-8", "replace"))
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

    def plan(self, events: list[Event]) -> list[Job]:
        """The conversions the events will need, found by replaying titles and revisions only."""
        revs = {fid: (s.rev, s.title) for fid, s in self.docs.items()}
        jobs = []
        for event in events:
            state = self.docs[event.file_id]
            rev, title = revs[event.file_id]
            if event.kind == "revision":
                rev = event.revision
            elif event.kind == "title":
                title = event.title or ""
            else:
                continue
            revs[event.file_id] = (rev, title)
            probe = DocState(state.file_id, title, state.folders, rev=rev, has_comments=state.has_comments)
            if (job := self.job_for(probe)) is not None:
                jobs.append(job)
        # A doc's current revision under its current title is needed to rewrite it on a comment event.
        for file_id in {e.file_id for e in events}:
            if (job := self.job_for(self.docs[file_id])) is not None:
                jobs.append(job)
        return jobs

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
            state.rev = event.revision
        elif event.kind == "title":
            state.title = event.title or ""
        else:
            self.applied.add(event.key)
            self.commented.add(state.file_id)
        state.job = self.job_for(state)
        state.name_header = self.names.get(state.job) if state.job else None
        state.stem = self.table.claim(state.file_id, state.folders, self._slug(state))
        if old_stem and old_stem != state.stem:
            self._remove_files(old_stem)
        self._write_files(state)
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

    def _write_files(self, state: DocState) -> None:
        assert state.stem is not None
        slug = state.stem.rsplit("/", 1)[-1]
        entry: dict[str, Any] = {"path": f"{state.stem}.md", "comments": None, "title": state.title,
                                 "webViewLink": str(self.store.docs[state.file_id].get("webViewLink") or "")}
        if state.job is not None:
            md = self.markdown[state.job].replace(SLUG_PLACEHOLDER, slug)
            if state.md_cache and state.md_cache[0] == md:
                oid = state.md_cache[1]
            else:
                oid = self.blob(md.encode("utf-8"))
                state.md_cache = (md, oid)
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
        comments = self.store.docs[state.file_id].get("comments") or []
        if state.file_id in self.commented:
            text = render_comments(state.title, comments, self.applied, state.file_id)
            self.tree.set(f"{state.stem}.comments.md", self.blob(text.encode("utf-8")))
            entry["comments"] = f"{state.stem}.comments.md"
        if state.job is not None and self.manifest.docs.get(state.file_id) != entry:
            self.manifest.docs[state.file_id] = entry
            self._manifest_dirty = True

    def _load_manifest(self) -> Manifest:
        blob = self.tree.get(MANIFEST)
        # A corrupt manifest is refused (as render and push refuse it), never silently replaced.
        manifest = Manifest.from_bytes(self.repo[blob[0]].data) if isinstance(blob, tuple) else Manifest()
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
        message = f"{subject}\n\n{trailers}\n"
        return self.buffer.added(self.repo.create_commit(None, author, committer, message, tree, [parent] if parent else []))

    def blob(self, data: bytes) -> pygit2.Oid:
        return self.buffer.added(self.repo.create_blob(data), len(data))


def replay(workdir: Path, *, authors: Path | None = None, workers: int | None = None,
           quiet: bool = False) -> ReplayResult:
    """Append every store event not yet in WORKDIR/archive as commits on `main`."""
    from pipeline.progress import progress as progress_bar

    with progress_bar("replay", quiet=quiet, every=1000) as bar:
        return _replay(Path(workdir), load_authors(authors), workers, bar)


def _replay(workdir: Path, authors: Authors, workers: int | None, bar: Any) -> ReplayResult:
    started = time.perf_counter()
    store = Store.at(workdir).snapshot()
    archive = workdir / "archive"
    repo = open_archive(archive)
    ref = repo.references.get(BRANCH)
    tip = ref.target if ref is not None else None
    applied, latest = scan_history(repo, tip)
    events = [e for e in all_events(store) if e.key not in applied]
    result = ReplayResult(archive, str(tip) if tip else None, 0, 0, len(store.docs), 0, 0)
    if not events:
        return result
    # The operator's authors file wins over what the revisions tell.
    replayer = Replayer(repo, store, {**known_emails(store), **authors}, tip, applied, latest)
    jobs = set(replayer.plan(events))
    bar.total(len(jobs) + len(events))
    planned = time.perf_counter()
    converted = convert_all(jobs, store, workdir / "cache", workers, on_done=bar.advance)
    writing = time.perf_counter()
    replayer.markdown = converted.markdown
    replayer.names = {job: name_header(md) for job, md in converted.markdown.items()}
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
    repo.references.create(BRANCH, head, force=True)
    result.head, result.commits, result.events = str(head), len(events), len(events)
    result.converted, result.cached = converted.converted, converted.cached
    result.timings = {"read": planned - started, "convert": writing - planned, "write": time.perf_counter() - writing}
    return result
