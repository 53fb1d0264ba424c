"""How a pull learns what changed in Drive: the changes feed, a walk of the tree, or both.

The feed's state (page token, the tree's folder map, pulls since the last walk) is kept outside
the store, in WORKDIR/cache/changes.json: the token moves with unrelated activity anywhere in the
account and the counter with every pull, and an unchanged Drive must leave the store byte-identical.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.drive.changes import FeedResult, Folders, TokenRefused, apply, chain, read_changes, start_page_token
from pipeline.drive.client import DriveCallError, DriveClient
from pipeline.drive.walk import FOLDER_MIME, DocEntry, PageSizes, Skipped, get_file, walk
from pipeline.errors import BadInput
from pipeline.store import Store, atomic_write, canonical_json, valid_file_id


def now() -> str:
    # The one wall-clock value in the store: when a pull noticed that a doc left the folder.
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")



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


def read_feed_state(path: Path, folder_id: str) -> dict[str, Any] | None:
    """Where the changes feed left off; None (walk) when absent, unreadable or for another folder."""
    try:
        state = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    ok = (isinstance(state, dict) and state.get("folder") == folder_id and isinstance(state.get("page_token"), str)
          and isinstance(state.get("folders"), dict))
    return state if ok else None


def write_feed_state(path: Path, folder_id: str, plan: Plan, drive_id: str | None) -> None:
    # Kept beside the journal, not in the store: the token moves with unrelated changes anywhere in
    # the account and the run counter with every pull, and neither may make an unchanged store differ.
    state = {"folder": folder_id, "page_token": plan.token, "folders": plan.folders, "feed_runs": plan.feed_runs,
             "driveId": drive_id, "counts": plan.counts}
    atomic_write(path, canonical_json(state))


def plan_pull(client: DriveClient, pool: ThreadPoolExecutor, store: Store, state_path: Path, folder_id: str,
          sizes: PageSizes, full: bool, reconcile_every: int,
          ) -> tuple[Plan, dict[str, Any], dict[str, DocEntry], dict[str, Skipped]]:
    from pipeline.progress import log

    old = store.read_folder() or {}
    state = None if full or old.get("id") != folder_id else read_feed_state(state_path, folder_id)
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
                result = _feed_plan(client, pool, store, folder_id, sizes, old, folders, feed, new_token, runs,
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


def _feed_plan(client: DriveClient, pool: ThreadPoolExecutor, store: Store, folder_id: str, sizes: PageSizes,
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
    if feed.moved_folders:
        # Paths below a renamed or moved folder change without a call: the folder map says them.
        for fid in old.get("docs", []):
            if fid in found or fid in removed:
                continue
            doc = store.read_doc(fid)
            if doc is None or not set(doc.get("folder_ids") or []) & feed.moved_folders:
                continue
            where = chain(folders, folder_id, doc["folder_ids"][-1])
            if where is None:
                removed[fid] = {"time": now(), "reason": "removed"}
            elif (where[0], where[1]) != (doc.get("folder_path"), doc.get("folder_ids")):
                store.write_doc({**doc, "folder_path": where[0], "folder_ids": where[1]})
    return Plan("changes", token, folders, removed, feed_runs=runs), root, found, skipped
