"""The resume journal of a pull (`WORKDIR/cache/pull/<fileId>.jsonl`): its one reader and writer."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path
from typing import Any


class Journal:
    """Finished revision downloads of docs whose JSON is not written yet (kept outside the store).

    One JSON line per revision, appended after its blobs are durable; a torn last line is cut off.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def _path(self, file_id: str) -> Path:
        return self.root / f"{file_id}.jsonl"

    def read(self, file_id: str) -> dict[tuple[str, str], dict[str, Any]]:
        out: dict[tuple[str, str], dict[str, Any]] = {}
        path = self._path(file_id)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return out
        if not text.endswith("\n"):
            # A kill mid-append left half a line: cut it off, or the next append would join it.
            text = text[: text.rfind("\n") + 1]
            with open(path, "r+", encoding="utf-8") as fh:
                fh.truncate(len(text.encode("utf-8")))
        for line in text.splitlines():
            try:
                rec = json.loads(line)
                out[(rec["id"], rec["modifiedTime"])] = rec
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def append(self, file_id: str, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n"
        with self._lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self._path(file_id), "a", encoding="utf-8") as fh:
                fh.write(line)

    def drop(self, file_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(file_id).unlink()
