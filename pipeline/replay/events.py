"""The store's history as events, and the order they are replayed in.

Every revision, title change, comment event (new thread, reply, resolve, reopen, delete) and
removal of every Doc becomes an `Event` (`doc_events`, a doc at a time); events sort by (time,
fileId, kind, id) as Contract 2 says (`pipeline.replay.spool` merges them on disk), which needs
no wall clock and no dict or file-system order, so the order is the same on any machine. Each event has a `key` that its commit's trailers spell out, so a later replay can
tell from history alone which events are already in the archive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipeline.archive import EVENT_KINDS, Key, format_trailers
from pipeline.comments import reply_kind
from pipeline.errors import BadInput

# Tie-break between kinds at the same instant: a title change first (so a revision made right
# after a rename is converted under the new title), a removal last.
KIND_RANK = {"title": 0, "revision": 1, "comment": 2, "reply": 3, "resolve": 4, "reopen": 5,
             "delete": 6, "removed": 9}
COMMENT_KINDS = {"comment", "reply", "resolve", "reopen", "delete"}
_ID = re.compile(r"^[^\s\x00-\x1f\x7f]{1,256}$")

assert set(KIND_RANK) == EVENT_KINDS


def parse_time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise BadInput(f"store: {where} has no valid time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadInput(f"store: {where} has an invalid time {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def checked_id(value: Any, where: str) -> str:
    """Ids end up in trailers; one with a newline could forge a trailer, so refuse it."""
    if not isinstance(value, str) or not _ID.match(value):
        raise BadInput(f"store: {where} has an invalid id")
    return value


@dataclass(frozen=True)
class Event:
    time: datetime
    file_id: str
    kind: str
    id: str                      # revision id, comment id, comment/reply id, or the event time
    revision: dict[str, Any] | None = None
    comment: dict[str, Any] | None = None
    reply: dict[str, Any] | None = None
    title: str | None = None     # the new title for "title" events
    stamp: str = ""              # the store's time string for title/removed events (part of the key)
    reason: str = ""             # removal reason

    @property
    def sort_key(self) -> tuple[datetime, str, int, str]:
        return (self.time, self.file_id, KIND_RANK[self.kind], self.id)

    @property
    def key(self) -> Key:
        comment_id = self.comment["id"] if self.comment else ""
        reply_id = self.reply["id"] if self.reply else ""
        first = self.revision["id"] if self.revision else comment_id
        return (self.kind, self.file_id, first, reply_id, self.stamp)

    @property
    def unix_time(self) -> int:
        return int(self.time.timestamp())


def trailers_of(event: Event) -> str:
    """The trailer block of `event`'s commit (format: pipeline.archive)."""
    return format_trailers(event.kind, event.file_id, revision=(event.revision or {}).get("id", ""),
                           comment=(event.comment or {}).get("id", ""), reply=(event.reply or {}).get("id", ""),
                           stamp=event.stamp)


def initial_title(doc: dict[str, Any]) -> str:
    titles = doc.get("titles") or []
    if titles and isinstance(titles[0], dict):
        return str(titles[0].get("name") or "")
    return str(doc.get("name") or "")


def doc_events(doc: dict[str, Any]) -> list[Event]:
    file_id = doc["id"]
    events: list[Event] = []
    last_time: datetime | None = None
    for rev in doc.get("revisions") or []:
        rid = checked_id(rev.get("id"), f"doc {file_id} revision")
        t = parse_time(rev.get("modifiedTime"), f"doc {file_id} revision {rid}")
        events.append(Event(t, file_id, "revision", rid, revision=rev))
    titles = doc.get("titles") or []
    for prev, cur in zip(titles, titles[1:], strict=False):
        if cur.get("name") == prev.get("name"):
            continue
        stamp = str(cur.get("time"))
        t = parse_time(cur.get("time"), f"doc {file_id} title")
        events.append(Event(t, file_id, "title", stamp, title=str(cur.get("name") or ""), stamp=stamp))
    for comment in doc.get("comments") or []:
        events.extend(_comment_events(file_id, comment))
    if events:
        last_time = max(e.time for e in events)
    removed = doc.get("removed")
    if isinstance(removed, dict):
        stamp = str(removed.get("time"))
        t = parse_time(removed.get("time"), f"doc {file_id} removal")
        # A removal is the doc's last event even if Drive's clocks say otherwise: its history stays
        # and nothing of it reappears after the deletion commit.
        if last_time and last_time > t:
            t = last_time
        events.append(Event(t, file_id, "removed", stamp, stamp=stamp, reason=str(removed.get("reason") or "removed")))
    return events


def _comment_events(file_id: str, comment: dict[str, Any]) -> list[Event]:
    cid = checked_id(comment.get("id"), f"doc {file_id} comment")
    where = f"doc {file_id} comment {cid}"
    thread = _who(cid, comment)
    out = [Event(parse_time(comment.get("createdTime"), where), file_id, "comment", cid, comment=thread)]
    last_action = None
    for reply in comment.get("replies") or []:
        rid = checked_id(reply.get("id"), f"{where} reply")
        t = parse_time(reply.get("createdTime"), f"{where} reply {rid}")
        kind = reply_kind(reply)
        last_action = kind if kind != "reply" else last_action
        out.append(Event(t, file_id, kind, f"{cid}/{rid}", comment=thread, reply=_who(rid, reply)))
        if reply.get("deleted"):
            td = parse_time(reply.get("modifiedTime") or reply.get("createdTime"), f"{where} reply {rid}")
            out.append(Event(td, file_id, "delete", f"{cid}/{rid}", comment=thread, reply=_who(rid, reply)))
    modified = parse_time(comment.get("modifiedTime") or comment.get("createdTime"), where)
    if comment.get("resolved") and last_action != "resolve":
        # Resolved without a resolve reply (older API data): the resolution happened by modifiedTime.
        out.append(Event(modified, file_id, "resolve", cid, comment=thread))
    if comment.get("deleted"):
        out.append(Event(modified, file_id, "delete", cid, comment=thread))
    return out


def _who(item_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """What a comment event keeps of its thread or reply: its id and author (the commit's author).
    The text stays in the store, read again for the comments file, so events of a thousand docs
    do not hold every thread's text."""
    return {"id": item_id, "author": item.get("author")}
