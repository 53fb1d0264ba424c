"""`WORKDIR/cache/changes.json`: where the changes feed left off (its one reader and writer).

The page token, the tree's folder map, pulls since the last walk, and each doc record's counts
keyed by its file's mtime and size. Kept outside the store: the token moves with unrelated
activity anywhere in the account and the counter with every pull, and an unchanged Drive must
leave the store byte-identical. Losing the file costs one walk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.atomic import atomic_write
from pipeline.drive.plan import Plan
from pipeline.store import canonical_json


def state_path(workdir: Path) -> Path:
    return Path(workdir) / "cache" / "changes.json"


def read_state(path: Path, folder_id: str) -> dict[str, Any] | None:
    """Where the changes feed left off; None (walk) when absent, unreadable or for another folder."""
    try:
        state = json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None
    ok = (isinstance(state, dict) and state.get("folder") == folder_id and isinstance(state.get("page_token"), str)
          and isinstance(state.get("folders"), dict))
    return state if ok else None


def write_state(path: Path, folder_id: str, plan: Plan, drive_id: str | None) -> None:
    state = {"folder": folder_id, "page_token": plan.token, "folders": plan.folders, "feed_runs": plan.feed_runs,
             "driveId": drive_id, "counts": plan.counts}
    atomic_write(path, canonical_json(state))
