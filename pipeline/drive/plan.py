"""How a pull learns what changed in Drive: the changes feed, a walk of the tree, or both.

The client side of Drive only: it is handed what the last pull left (folder.json, the feed's
state, where each stored doc sits) and answers with a Plan; pull (pipeline/pull/) writes the
store and the feed's state (WORKDIR/cache/changes.json) from it.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pipeline.drive.changes import FeedResult, Folders, TokenRefused, apply, chain, read_changes, start_page_token
from pipeline.drive.client import DriveCallError, DriveClient
from pipeline.drive.walk import FOLDER_MIME, DocEntry, PageSizes, Skipped, get_file, walk
from pipeline.errors import BadInput
from pipeline.store import valid_file_id


def now() -> str:
    # The one wall-clock value in the store: when a pull noticed that a doc left the folder.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# Where a stored doc sits: (folder names, folder ids) from the root, or None when not stored.
Where = Callable[[str], tuple[list[str], list[str]] | None]


def root_folder(client: DriveClient, folder_id: str) -> dict[str, Any]:
    if not valid_file_id(folder_id):
        raise BadInput(f"{folder_id!r} is not a Drive folder id")
    try:
        info = get_file(client, folder_id, f"folder {folder_id}")
    except DriveCallError as exc:
        if exc.status in (403, 404):
            raise BadInput(f"folder {folder_id} not found, or not shared with these credentials") from None
        raise
    if info.get("mimeType") != FOLDER_MIME:
        raise BadInput(f"{folder_id} is not a folder ({info.get('mimeType', 'unknown type')})")
    return info


@dataclass
class Plan:
    """How this pull learns what changed: the feed, a walk, or both (a reconcile walk)."""

    how: str  # "walk", "changes" or "only"
    token: str | None = None  # the page token to store for the next pull
    folders: Folders = field(default_factory=dict)
    removed: dict[str, dict[str, str]] = field(default_factory=dict)
    touched: set[str] | None = None  # on a reconcile walk: what the feed already reported
    feed_runs: int = 0
    # Per doc JSON: [mtime_ns, size, revisions, threads, replies, partial_history], so a pull that
    # the feed says touched nothing needs not parse every doc for its summary.
    counts: dict[str, list[Any]] = field(default_factory=dict)
    # Stored docs below a renamed or moved folder: file id -> their new (folder names, folder ids).
    moved: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)


def plan_pull(client: DriveClient, pool: ThreadPoolExecutor, old: dict[str, Any], state: dict[str, Any] | None,
              where: Where, folder_id: str, sizes: PageSizes, full: bool, reconcile_every: int,
              ) -> tuple[Plan, dict[str, Any], dict[str, DocEntry], dict[str, Skipped]]:
    """`old`: folder.json as the last pull left it; `state`: the feed's state it left (None: walk)."""
    from pipeline.progress import log

    if full or old.get("id") != folder_id:
        state = None
    if state is not None:
        token = str(state["page_token"])
        folders: Folders = {k: dict(v) for k, v in state["folders"].items()}
        try:
            changes, new_token = read_changes(client, token, sizes.files, state.get("driveId"))
        except TokenRefused as exc:
            log(f"docpipe: Drive refused the stored changes token ({exc}); walking the whole folder")
        else:
            feed = apply(changes, folder_id, folders, set(old.get("docs", [])))
            runs = int(state.get("feed_runs") or 0) + 1
            if not feed.needs_walk and runs < reconcile_every:
                result = _feed_plan(client, pool, where, folder_id, sizes, old, folders, feed, new_token, runs,
                                    state.get("driveId"))
                counts = state.get("counts")
                result[0].counts = counts if isinstance(counts, dict) else {}
                return result
            # A reconcile walk: the feed's own news is not "reconciled", only what it missed.
            return _walk_plan(client, pool, folder_id, sizes, new_token, None if feed.needs_walk else feed.touched)
    return _walk_plan(client, pool, folder_id, sizes, None, None)


def _walk_plan(client: DriveClient, pool: ThreadPoolExecutor, folder_id: str, sizes: PageSizes, token: str | None,
               touched: set[str] | None) -> tuple[Plan, dict[str, Any], dict[str, DocEntry], dict[str, Skipped]]:
    root = root_folder(client, folder_id)
    # The token is taken before the walk, so a change made while walking shows in the next feed.
    token = token or start_page_token(client, root.get("driveId"))
    folders: Folders = {}
    found, skipped = walk(client, pool, folder_id, sizes, root.get("driveId"), folders)
    return Plan("walk", token, folders, touched=touched), root, found, skipped


def _feed_plan(client: DriveClient, pool: ThreadPoolExecutor, where_is: Where, folder_id: str, sizes: PageSizes,
               old: dict[str, Any], folders: Folders, feed: FeedResult, token: str, runs: int,
               drive_id: str | None) -> tuple[Plan, dict[str, Any], dict[str, DocEntry], dict[str, Skipped]]:
    root = {k: old.get(k, "") for k in ("id", "name", "webViewLink")}
    if drive_id:
        root["driveId"] = drive_id
    found: dict[str, DocEntry] = dict(feed.docs)
    skipped = {s["id"]: Skipped(s["id"], s["name"], s["reason"]) for s in old.get("skipped", [])}
    new = set(feed.new_folders)
    for fid in feed.new_folders:
        where = chain(folders, folder_id, fid)
        if where is None or any(a in new for a in where[1][:-1]):
            continue  # listed with its new ancestor
        sub: Folders = {}
        docs, sub_skipped = walk(client, pool, fid, sizes, root.get("driveId"), sub)
        folders.update(sub)
        for e in docs.values():
            e.folder_path, e.folder_ids = where[0] + e.folder_path, where[1] + e.folder_ids
            found.setdefault(e.id, e)
        skipped.update(sub_skipped)
    removed = dict(feed.removed)
    moved: dict[str, tuple[list[str], list[str]]] = {}
    if feed.moved_folders:
        # Paths below a renamed or moved folder change without a call: the folder map says them.
        for fid in old.get("docs", []):
            if fid in found or fid in removed:
                continue
            stored = where_is(fid)
            if stored is None or not stored[1] or not set(stored[1]) & feed.moved_folders:
                continue
            where = chain(folders, folder_id, stored[1][-1])
            if where is None:
                removed[fid] = {"time": now(), "reason": "removed"}
            elif (where[0], where[1]) != stored:
                moved[fid] = (where[0], where[1])
    return Plan("changes", token, folders, removed, feed_runs=runs, moved=moved), root, found, skipped
