"""The emulator's in-memory Drive: users, files, revisions, comments and a changes feed.

Everything the HTTP layer serves comes from a `Dataset`. Mutations are thread-safe (one lock)
so tests can edit a Drive while a client is pulling from it, and each one bumps the file's
`version` and appends to the changes feed the way Drive does.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from dataclasses import dataclass, field

DOC_MIME = "application/vnd.google-apps.document"
FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"


@dataclass
class User:
    key: str  # short id used inside the dataset, e.g. "steve"
    displayName: str
    permissionId: str
    emailAddress: str | None = None

    @property
    def photoLink(self) -> str:
        # Google's avatar links are protocol-relative googleusercontent URLs.
        return f"//lh3.googleusercontent.com/a/{self.permissionId}=s50"


@dataclass
class Reply:
    id: str
    author: str  # user key
    createdTime: str
    modifiedTime: str
    content: str
    action: str | None = None  # "resolve" | "reopen"
    deleted: bool = False


@dataclass
class Comment:
    id: str
    author: str
    createdTime: str
    modifiedTime: str
    content: str
    quoted: str = ""
    anchor: str = ""
    deleted: bool = False
    replies: list[Reply] = field(default_factory=list)

    @property
    def resolved(self) -> bool:
        # Drive derives `resolved` from the last resolve/reopen action in the thread.
        state = False
        for r in self.replies:
            if r.deleted:
                continue
            if r.action == "resolve":
                state = True
            elif r.action == "reopen":
                state = False
        return state


@dataclass
class Revision:
    id: str
    modifiedTime: str
    user: str | None  # user key; None for anonymous edits
    html: str  # the full text/html export of the doc at this revision


@dataclass
class DriveFile:
    id: str
    name: str
    mimeType: str
    parents: list[str]
    createdTime: str
    modifiedTime: str
    owner: str | None = None
    version: int = 1
    trashed: bool = False
    trashedTime: str | None = None
    revisions: list[Revision] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    content: bytes = b""  # non-Google files: the bytes served by alt=media
    images: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # name -> (mimeType, bytes)
    shortcut_target: str | None = None
    deny_revisions: bool = False
    renames: list[tuple[str, str, str]] = field(default_factory=list)  # (old, new, time), for save_dataset

    @property
    def is_google(self) -> bool:
        return self.mimeType.startswith("application/vnd.google-apps.")


@dataclass
class Change:
    id: int
    fileId: str
    time: str
    removed: bool


class NotFound(KeyError):
    pass


def make_id(*parts: str, length: int = 33) -> str:
    """A deterministic Drive-looking id (Drive ids are ~33-44 url-safe chars)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return "1" + base64.urlsafe_b64encode(digest).decode().rstrip("=").replace("-", "x").replace("_", "y")[: length - 1]


class Dataset:
    """A Drive with one shared root folder. Mutating methods take `time` as RFC3339 UTC text."""

    def __init__(self, root_id: str, root_name: str, created: str = "2024-01-01T00:00:00.000Z") -> None:
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.files: dict[str, DriveFile] = {}
        self.changes: list[Change] = []
        # Test switches for the changes feed: drop the next recorded change (a feed that missed
        # something, for the reconcile walk), and refuse page tokens older than `oldest_token`.
        self.drop_next_change = False
        self.oldest_token = 1
        self.root_id = root_id
        self.files[root_id] = DriveFile(root_id, root_name, FOLDER_MIME, [], created, created)

    # ------------------------------------------------------------------ lookups
    def get(self, file_id: str) -> DriveFile:
        with self.lock:
            try:
                return self.files[file_id]
            except KeyError:
                raise NotFound(file_id) from None

    def user(self, key: str | None) -> User | None:
        return self.users.get(key) if key else None

    @property
    def root(self) -> DriveFile:
        return self.files[self.root_id]

    def docs(self) -> list[DriveFile]:
        with self.lock:
            return [f for f in self.files.values() if f.mimeType == DOC_MIME]

    # ------------------------------------------------------------------ building
    def add_user(self, key: str, displayName: str, emailAddress: str | None = None, permissionId: str | None = None) -> User:
        u = User(key, displayName, permissionId or str(int(hashlib.sha256(key.encode()).hexdigest()[:15], 16)), emailAddress)
        with self.lock:
            self.users[key] = u
        return u

    def _add(self, f: DriveFile) -> DriveFile:
        with self.lock:
            if f.id in self.files:
                raise ValueError(f"duplicate file id {f.id}")
            for p in f.parents:
                if p not in self.files:
                    raise ValueError(f"parent {p} of {f.name!r} does not exist")
            self.files[f.id] = f
            self._changed(f, f.modifiedTime)
        return f

    def add_folder(self, name: str, parent: str | None = None, time: str = "2024-01-01T00:00:00.000Z", id: str | None = None, owner: str | None = None) -> str:
        fid = id or make_id("folder", parent or self.root_id, name)
        self._add(DriveFile(fid, name, FOLDER_MIME, [parent or self.root_id], time, time, owner=owner))
        return fid

    def add_doc(self, name: str, parent: str | None = None, time: str = "2024-01-01T00:00:00.000Z", id: str | None = None, owner: str | None = None) -> str:
        """A Google Doc with no revisions yet; add them with `add_revision`."""
        fid = id or make_id("doc", parent or self.root_id, name)
        self._add(DriveFile(fid, name, DOC_MIME, [parent or self.root_id], time, time, owner=owner))
        return fid

    def add_file(self, name: str, mimeType: str, content: bytes = b"", parent: str | None = None, time: str = "2024-01-01T00:00:00.000Z", id: str | None = None, owner: str | None = None) -> str:
        """A non-Doc item: an uploaded file (PDF, PNG...) or another Google type (Sheets, Slides)."""
        fid = id or make_id("file", parent or self.root_id, name)
        self._add(DriveFile(fid, name, mimeType, [parent or self.root_id], time, time, owner=owner, content=content))
        return fid

    def add_shortcut(self, name: str, target: str, parent: str | None = None, time: str = "2024-01-01T00:00:00.000Z", id: str | None = None, owner: str | None = None) -> str:
        fid = id or make_id("shortcut", parent or self.root_id, name, target)
        f = DriveFile(fid, name, SHORTCUT_MIME, [parent or self.root_id], time, time, owner=owner, shortcut_target=target)
        self._add(f)
        return fid

    def add_image(self, file_id: str, name: str, mimeType: str, data: bytes) -> None:
        """An image a doc's HTML refers to as src="../images/<name>" (rewritten to an emulator URL on export)."""
        with self.lock:
            self.get(file_id).images[name] = (mimeType, data)

    # ------------------------------------------------------------------ live mutation
    def _changed(self, f: DriveFile, time: str, removed: bool = False) -> None:
        if self.drop_next_change:
            self.drop_next_change = False
            return
        self.changes.append(Change(len(self.changes) + 1, f.id, time, removed))

    def expire_page_tokens(self) -> None:
        """Every page token handed out so far is refused from now on, as Drive does with old ones."""
        with self.lock:
            self.oldest_token = len(self.changes) + 1

    def _touch(self, f: DriveFile, time: str, modified: bool) -> None:
        f.version += 1
        if modified and time > f.modifiedTime:
            f.modifiedTime = time
        self._changed(f, time)

    def add_revision(self, file_id: str, html: str, user: str | None, time: str, id: str | None = None) -> str:
        with self.lock:
            f = self.get(file_id)
            if f.mimeType != DOC_MIME:
                raise ValueError(f"{file_id} is not a Google Doc")
            if f.revisions and time < f.revisions[-1].modifiedTime:
                raise ValueError("revisions must be added in time order")
            rid = id or str(int(f.revisions[-1].id) + 1 if f.revisions and f.revisions[-1].id.isdigit() else len(f.revisions) + 1)
            f.revisions.append(Revision(rid, time, user, html))
            if not f.revisions[:-1]:
                f.createdTime = min(f.createdTime, time)
            self._touch(f, time, modified=True)
            return rid

    def _next_comment_id(self, f: DriveFile, prefix: str) -> str:
        n = sum(1 + len(c.replies) for c in f.comments) + 1
        return f"{prefix}{n:08d}"

    def add_comment(self, file_id: str, author: str, content: str, time: str, quoted: str = "", id: str | None = None, anchor: str = "") -> str:
        with self.lock:
            f = self.get(file_id)
            cid = id or self._next_comment_id(f, "AAAA")
            f.comments.append(Comment(cid, author, time, time, content, quoted, anchor or f"kix.{cid.lower()}"))
            # Comments do not change a file's modifiedTime on Drive, but they do bump version.
            self._touch(f, time, modified=False)
            return cid

    def _comment(self, f: DriveFile, comment_id: str) -> Comment:
        for c in f.comments:
            if c.id == comment_id:
                return c
        raise NotFound(comment_id)

    def add_reply(self, file_id: str, comment_id: str, author: str, content: str, time: str, action: str | None = None, id: str | None = None) -> str:
        if action not in (None, "resolve", "reopen"):
            raise ValueError(f"unknown reply action {action!r}")
        with self.lock:
            f = self.get(file_id)
            c = self._comment(f, comment_id)
            rid = id or self._next_comment_id(f, "AAAB")
            c.replies.append(Reply(rid, author, time, time, content, action))
            c.modifiedTime = max(c.modifiedTime, time)
            self._touch(f, time, modified=False)
            return rid

    def delete_comment(self, file_id: str, comment_id: str, time: str) -> None:
        with self.lock:
            f = self.get(file_id)
            c = self._comment(f, comment_id)
            c.deleted = True
            c.modifiedTime = max(c.modifiedTime, time)
            self._touch(f, time, modified=False)

    def delete_reply(self, file_id: str, comment_id: str, reply_id: str, time: str) -> None:
        with self.lock:
            f = self.get(file_id)
            c = self._comment(f, comment_id)
            for r in c.replies:
                if r.id == reply_id:
                    r.deleted = True
                    r.modifiedTime = max(r.modifiedTime, time)
                    c.modifiedTime = max(c.modifiedTime, time)
                    self._touch(f, time, modified=False)
                    return
            raise NotFound(reply_id)

    def rename(self, file_id: str, new_name: str, time: str) -> None:
        with self.lock:
            f = self.get(file_id)
            f.renames.append((f.name, new_name, time))
            f.name = new_name
            self._touch(f, time, modified=True)

    def move(self, file_id: str, new_parent: str, time: str) -> None:
        with self.lock:
            f = self.get(file_id)
            self.get(new_parent)
            f.parents = [new_parent]
            self._touch(f, time, modified=False)

    def trash(self, file_id: str, time: str) -> None:
        with self.lock:
            f = self.get(file_id)
            f.trashed, f.trashedTime = True, time
            self._touch(f, time, modified=False)

    def untrash(self, file_id: str, time: str) -> None:
        with self.lock:
            f = self.get(file_id)
            f.trashed, f.trashedTime = False, None
            self._touch(f, time, modified=False)

    def delete(self, file_id: str, time: str = "") -> None:
        """Delete for good: 404 afterwards, and a `removed` entry in the changes feed."""
        with self.lock:
            f = self.get(file_id)
            del self.files[file_id]
            self._changed(f, time or f.modifiedTime, removed=True)

    def deny_revisions(self, file_id: str, deny: bool = True) -> None:
        """revisions.list (and revision exports) answer 403 insufficientFilePermissions for this doc."""
        with self.lock:
            self.get(file_id).deny_revisions = deny

    # ------------------------------------------------------------------ tree
    def path_of(self, file_id: str) -> list[str]:
        """Folder names from the root (excluded) down to the file's parent."""
        names: list[str] = []
        with self.lock:
            cur = self.get(file_id)
            seen = set()
            while cur.parents and cur.parents[0] != self.root_id and cur.parents[0] not in seen:
                seen.add(cur.parents[0])
                cur = self.get(cur.parents[0])
                names.append(cur.name)
        return list(reversed(names))
