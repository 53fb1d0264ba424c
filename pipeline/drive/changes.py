"""Drive's changes feed: what changed inside a folder tree since a stored page token.

The feed is account-wide, so deciding whether a change concerns the tree needs the tree's folder
map ({folder id: {"name", "parent"}}, filled by the last walk and kept up to date here). Folder
renames and moves are applied to the map without a call; a folder new to the tree is returned so
the caller lists just that subtree; a changed shortcut asks for a whole walk (rare, and a walk
resolves shortcut targets the way it always has).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.drive.client import DriveCallError, DriveClient
from pipeline.drive.walk import DOC_MIME, FILE_FIELDS, FOLDER_MIME, SHORTCUT_MIME, DocEntry, doc_entry
from pipeline.store import valid_file_id

CHANGE_FIELDS = (
    f"nextPageToken,newStartPageToken,changes(changeType,time,removed,fileId,file({FILE_FIELDS},parents))"
)
# Statuses with which Drive refuses a page token (unknown, malformed or too old): walk instead.
REFUSED = (400, 404, 410)

Folders = dict[str, dict[str, str]]


class TokenRefused(Exception):
    """Drive would not list changes from the stored page token."""


def start_page_token(client: DriveClient, drive_id: str | None = None) -> str:
    extra = {"driveId": drive_id} if drive_id else {}
    body = client.call(
        lambda svc: svc.changes().getStartPageToken(supportsAllDrives=True, **extra), "changes start page token"
    )
    token = body.get("startPageToken")
    if not isinstance(token, str) or not token:
        raise DriveCallError("changes start page token: malformed response from Drive", status=None, reason="malformed")
    return token


def read_changes(client: DriveClient, token: str, page_size: int = 1000,
                 drive_id: str | None = None) -> tuple[list[dict[str, Any]], str]:
    """Every change since `token` (the last one per file wins) and the token to start from next time."""
    latest: dict[str, dict[str, Any]] = {}
    extra = {"driveId": drive_id} if drive_id else {}
    while True:
        def make(svc: Any, page_token: str = token) -> Any:
            return svc.changes().list(
                pageToken=page_token, fields=CHANGE_FIELDS, pageSize=page_size, spaces="drive",
                includeRemoved=True, restrictToMyDrive=False, supportsAllDrives=True,
                includeItemsFromAllDrives=True, **extra,
            )

        try:
            body = client.call(make, "changes since the last pull")
        except DriveCallError as exc:
            if exc.status in REFUSED:
                raise TokenRefused(exc.message) from None
            raise
        items = body.get("changes", [])
        if not isinstance(items, list):
            raise DriveCallError("changes: malformed response from Drive", status=None, reason="malformed")
        for ch in items:
            fid = str(ch.get("fileId", "")) if isinstance(ch, dict) else ""
            if valid_file_id(fid) and ch.get("changeType", "file") == "file":
                latest.pop(fid, None)  # re-insert so the dict keeps the order of last change
                latest[fid] = ch
        nxt = body.get("nextPageToken")
        if isinstance(nxt, str) and nxt:
            if nxt == token:
                raise DriveCallError("changes: Drive repeated a page token", status=None, reason="malformed")
            token = nxt
            continue
        new = body.get("newStartPageToken")
        if not isinstance(new, str) or not new:
            raise DriveCallError("changes: malformed response from Drive (no newStartPageToken)", status=None, reason="malformed")
        return list(latest.values()), new


def chain(folders: Folders, root_id: str, folder_id: str) -> tuple[list[str], list[str]] | None:
    """(names, ids) from the root (excluded) down to `folder_id`, or None when it is outside the tree."""
    names: list[str] = []
    ids: list[str] = []
    cur, seen = folder_id, set()
    while cur != root_id:
        info = folders.get(cur)
        if info is None or cur in seen:
            return None
        seen.add(cur)
        names.append(info["name"])
        ids.append(cur)
        cur = info["parent"]
    return names[::-1], ids[::-1]


@dataclass
class FeedResult:
    docs: dict[str, DocEntry] = field(default_factory=dict)  # docs changed inside the tree
    removed: dict[str, dict[str, str]] = field(default_factory=dict)  # doc id -> {"time", "reason"}
    moved_folders: set[str] = field(default_factory=set)  # renamed, moved or gone: paths below change
    new_folders: list[str] = field(default_factory=list)  # to be listed, each with its subtree
    needs_walk: str = ""  # why the feed alone cannot bring the store up to date
    touched: set[str] = field(default_factory=set)  # every file id the feed named inside the tree


def _parent(f: dict[str, Any]) -> str:
    parents = f.get("parents") or []
    return str(parents[0]) if parents else ""


def apply(changes: list[dict[str, Any]], root_id: str, folders: Folders, known_docs: set[str]) -> FeedResult:
    """Sort the changes into doc updates and removals; update `folders` in place."""
    out = FeedResult()

    def in_tree(pid: str) -> bool:
        return pid == root_id or chain(folders, root_id, pid) is not None

    # Folders first, so a doc created in a folder created in the same feed finds its place.
    for ch in changes:
        fid, f = str(ch["fileId"]), ch.get("file")
        is_folder = isinstance(f, dict) and f.get("mimeType") == FOLDER_MIME
        if fid == root_id or not (is_folder or (fid in folders and (ch.get("removed") or f is None))):
            continue
        assert f is None or isinstance(f, dict)
        if ch.get("removed") or f is None or f.get("trashed") or not in_tree(_parent(f)):
            if folders.pop(fid, None) is not None:
                out.moved_folders.add(fid)
            continue
        name, parent = str(f.get("name", "")), _parent(f)
        old = folders.get(fid)
        folders[fid] = {"name": name, "parent": parent}
        if old is None:
            out.new_folders.append(fid)
        elif old != folders[fid]:
            out.moved_folders.add(fid)
        out.touched.add(fid)
    for fid in [k for k in folders if chain(folders, root_id, k) is None]:
        del folders[fid]  # below a folder that left the tree
        out.moved_folders.add(fid)
    for ch in changes:
        fid, f = str(ch["fileId"]), ch.get("file")
        if fid in folders or fid == root_id or (isinstance(f, dict) and f.get("mimeType") == FOLDER_MIME):
            continue
        time = str(ch.get("time") or "")
        if ch.get("removed") or not isinstance(f, dict):
            if fid in known_docs:
                out.removed[fid] = {"time": time, "reason": "deleted"}
                out.touched.add(fid)
            continue
        where = chain(folders, root_id, _parent(f)) if _parent(f) != root_id else ([], [])
        mime = f.get("mimeType")
        if mime == SHORTCUT_MIME and where is not None:
            out.needs_walk = "a shortcut in the folder changed"
        if mime != DOC_MIME:
            continue
        if f.get("trashed") or where is None:
            if fid in known_docs:
                reason = "trashed" if f.get("trashed") else "removed"
                out.removed[fid] = {"time": str(f.get("trashedTime") or time), "reason": reason}
                out.touched.add(fid)
            continue
        out.docs[fid] = doc_entry(f, where[0], where[1])
        out.touched.add(fid)
    return out
