"""Walking a Drive folder tree: which Docs it holds, where, and which items are skipped and why."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pipeline.drive.client import DriveCallError, DriveClient
from pipeline.store import valid_file_id

DOC_MIME = "application/vnd.google-apps.document"
FOLDER_MIME = "application/vnd.google-apps.folder"
SHORTCUT_MIME = "application/vnd.google-apps.shortcut"

FILE_FIELDS = "id,name,mimeType,version,createdTime,modifiedTime,trashed,trashedTime,webViewLink,driveId,shortcutDetails(targetId,targetMimeType)"
LIST_FIELDS = f"nextPageToken,incompleteSearch,files({FILE_FIELDS})"


@dataclass(frozen=True)
class PageSizes:
    """Drive's maxima: files 1000, revisions 1000, comments 100. Tests lower them to probe paging."""

    files: int = 1000
    revisions: int = 1000
    comments: int = 100


@dataclass(frozen=True)
class Skipped:
    id: str
    name: str
    reason: str


@dataclass
class DocEntry:
    """A Doc as the walk found it."""

    id: str
    name: str
    version: str
    modifiedTime: str
    webViewLink: str
    folder_path: list[str]
    folder_ids: list[str]
    createdTime: str = ""


def _list_folder(client: DriveClient, folder_id: str, sizes: PageSizes, drive_id: str | None = None) -> list[dict[str, Any]]:
    # A folder in a shared drive is searched in that drive's corpus; My Drive folders in the user's.
    scope = {"corpora": "drive", "driveId": drive_id} if drive_id else {}

    def make(svc: Any, token: str | None) -> Any:
        return svc.files().list(
            q=f"'{folder_id}' in parents and trashed = false",
            fields=LIST_FIELDS, pageSize=sizes.files, pageToken=token,
            supportsAllDrives=True, includeItemsFromAllDrives=True, **scope,
        )

    return client.list_all(make, "files", f"listing folder {folder_id}")


def get_file(client: DriveClient, file_id: str, what: str) -> dict[str, Any]:
    return client.call(
        lambda svc: svc.files().get(fileId=file_id, fields=FILE_FIELDS, supportsAllDrives=True), what
    )


def doc_entry(f: dict[str, Any], path: list[str], ids: list[str]) -> DocEntry:
    return DocEntry(
        id=f["id"], name=str(f.get("name", "")), version=str(f.get("version", "")),
        modifiedTime=str(f.get("modifiedTime", "")),
        webViewLink=f.get("webViewLink") or f"https://docs.google.com/document/d/{f['id']}/edit",
        folder_path=path, folder_ids=ids, createdTime=str(f.get("createdTime", "")),
    )


def walk(client: DriveClient, pool: ThreadPoolExecutor, root_id: str, sizes: PageSizes,
         drive_id: str | None = None, folders: dict[str, dict[str, str]] | None = None,
         ) -> tuple[dict[str, DocEntry], dict[str, Skipped]]:
    """Breadth-first over folders (each level listed in parallel), cycle-safe, deterministic.

    A Doc reachable twice keeps the first place found (shallowest, then by name and id);
    shortcuts to Docs are followed once, shortcuts to folders like folders. `folders`, when
    given, receives every folder met ({id: {"name", "parent"}}): the map the changes feed needs.
    """
    folders = {} if folders is None else folders
    docs: dict[str, DocEntry] = {}
    skipped: dict[str, Skipped] = {}
    visited = {root_id}
    shortcut_docs: list[tuple[dict[str, Any], list[str], list[str]]] = []
    level: list[tuple[str, list[str], list[str]]] = [(root_id, [], [])]
    while level:
        listings = list(pool.map(lambda item: _list_folder(client, item[0], sizes, drive_id), level))
        next_level: list[tuple[str, list[str], list[str]]] = []
        for (parent, path, ids), children in zip(level, listings, strict=True):
            for f in sorted(children, key=lambda c: (str(c.get("name", "")), str(c.get("id", "")))):
                fid, mime, name = str(f.get("id", "")), f.get("mimeType", ""), str(f.get("name", ""))
                if not valid_file_id(fid):
                    continue  # never let an odd id become a store path
                if f.get("trashed"):
                    continue
                if mime == FOLDER_MIME:
                    if fid not in visited:
                        visited.add(fid)
                        folders[fid] = {"name": name, "parent": parent}
                        next_level.append((fid, path + [name], ids + [fid]))
                elif mime == DOC_MIME:
                    docs.setdefault(fid, doc_entry(f, path, ids))
                elif mime == SHORTCUT_MIME:
                    details = f.get("shortcutDetails") or {}
                    target, tmime = str(details.get("targetId", "")), details.get("targetMimeType", "")
                    if tmime == FOLDER_MIME and valid_file_id(target):
                        if target not in visited:
                            visited.add(target)
                            folders[target] = {"name": name, "parent": parent}
                            next_level.append((target, path + [name], ids + [target]))
                    elif tmime == DOC_MIME and valid_file_id(target):
                        shortcut_docs.append((f, path, ids))
                    else:
                        skipped.setdefault(fid, Skipped(fid, name, f"shortcut to a non-Doc item ({tmime or 'unknown type'})"))
                else:
                    skipped.setdefault(fid, Skipped(fid, name, f"not a Google Doc ({mime})"))
        level = next_level

    # Shortcut targets not met directly: one files.get each, for their version and title.
    pending, seen_targets = [], set(docs)
    for item in shortcut_docs:
        target = item[0]["shortcutDetails"]["targetId"]
        if target not in seen_targets:  # each target followed once
            seen_targets.add(target)
            pending.append(item)

    def resolve(item: tuple[dict[str, Any], list[str], list[str]]) -> tuple[Any, ...]:
        s, path, ids = item
        target = s["shortcutDetails"]["targetId"]
        try:
            return (item, get_file(client, target, f"shortcut {s['id']} target {target}"), None)
        except DriveCallError as exc:
            return (item, None, exc)

    for (s, path, ids), target, exc in pool.map(resolve, pending):
        if exc is not None and exc.exhausted:
            raise exc
        if target is None or target.get("mimeType") != DOC_MIME or target.get("trashed") or target.get("id") != s["shortcutDetails"]["targetId"]:
            skipped.setdefault(s["id"], Skipped(s["id"], str(s.get("name", "")), "shortcut target is not readable or not a Doc"))
            continue
        docs.setdefault(target["id"], doc_entry(target, path, ids))
    return docs, skipped
