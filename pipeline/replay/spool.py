"""Replay's scratch data on disk, so its memory does not grow with the number of docs (issue #22).

A replay needs lists that grow with the folder: the events already in the archive (read back
from the trailers), every event still to replay in Contract 2's time order, the conversions
those events need, and the index of the pack it writes. Held as Python objects the events alone
cost ~90 KB per doc; here they live in
a private SQLite database (`sqlite3.connect("")`: a temporary file SQLite unlinks as it opens it,
so even a killed replay leaves nothing behind) whose page cache is 32 MB at most. SQLite's sorter
merges the per-doc event streams into time order with bounded memory, spilling to disk as it
needs to.

The order is the one `sorted(events, key=Event.sort_key)` gives: time (integer microseconds),
fileId, kind rank, id, then the order events were added (Python's sort is stable), so the commits
and their SHAs are the same as when the events were sorted in memory. Text columns compare as
UTF-8 bytes (SQLite's BINARY collation), which is code point order, as Python compares str.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from pipeline.archive import Key
from pipeline.replay.conversion import Job
from pipeline.replay.events import KIND_RANK, Event
from pipeline.replay.packwriter import Stored

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _text(value: str) -> bytes:
    # Ids may hold lone surrogates (JSON allows them); surrogatepass keeps code point order.
    return value.encode("utf-8", "surrogatepass")


def _event_row(event: Event, seq: int) -> tuple[int, str, int, bytes, int, str]:
    payload = [event.kind, event.id, event.revision, event.comment, event.reply, event.title, event.stamp,
               event.reason]
    return ((event.time - _EPOCH) // _MICRO, event.file_id, KIND_RANK[event.kind], _text(event.id), seq,
            json.dumps(payload, separators=(",", ":")))


def _event_of(micros: int, file_id: str, payload: str) -> Event:
    kind, event_id, revision, comment, reply, title, stamp, reason = json.loads(payload)
    return Event(_EPOCH + micros * _MICRO, file_id, kind, event_id, revision=revision, comment=comment,
                 reply=reply, title=title, stamp=stamp, reason=reason)


def _job_row(job: Job, key: str) -> tuple[str, str]:
    return key, json.dumps([job.html, job.title, job.images, job.comments, job.drive_id], separators=(",", ":"))


def _job_of(payload: str) -> Job:
    html, title, images, comments, drive_id = json.loads(payload)
    return Job(html, title, tuple((src, link) for src, link in images), comments, drive_id)


class Spool:
    """The events already replayed (`applied`), the events to replay (`events`, sorted on the way
    out), the distinct conversions they need (`jobs`, by cache key), and for the pack being
    written its index (`objects`) and the last version written of each path (`bases`)."""

    def __init__(self) -> None:
        self.db = sqlite3.connect("", isolation_level=None)
        # Scratch data: nothing to recover after a crash, so no journal and no fsync.
        for pragma in ("journal_mode = OFF", "synchronous = OFF", "cache_size = -32768", "temp_store = FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript("""
            CREATE TABLE applied (file_id TEXT, kind TEXT, first BLOB, reply BLOB, stamp TEXT,
                                  PRIMARY KEY (file_id, kind, first, reply, stamp)) WITHOUT ROWID;
            CREATE TABLE events (t INTEGER, file_id TEXT, rank INTEGER, id BLOB, seq INTEGER, payload TEXT);
            CREATE TABLE jobs (key TEXT PRIMARY KEY, payload TEXT) WITHOUT ROWID;
            CREATE TABLE objects (oid BLOB PRIMARY KEY, offset INTEGER, crc INTEGER, depth INTEGER) WITHOUT ROWID;
            CREATE TABLE bases (key TEXT PRIMARY KEY, offset INTEGER, depth INTEGER, data BLOB);
        """)
        self.db.execute("BEGIN")
        self._seq = 0
        self.events = 0

    def close(self) -> None:
        self.db.close()

    # -- what the archive already holds

    def add_applied(self, keys: Iterable[Key]) -> None:
        self.db.executemany("INSERT OR IGNORE INTO applied VALUES (?, ?, ?, ?, ?)",
                            ((k[1], k[0], _text(k[2]), _text(k[3]), k[4]) for k in keys))

    def applied_of(self, file_id: str) -> set[Key]:
        """The keys of one doc's events already in the archive (or added since)."""
        rows = self.db.execute("SELECT kind, first, reply, stamp FROM applied WHERE file_id = ?", (file_id,))
        return {(kind, file_id, first.decode("utf-8", "surrogatepass"), reply.decode("utf-8", "surrogatepass"), stamp)
                for kind, first, reply, stamp in rows}

    # -- the events to replay

    def add_events(self, events: Iterable[Event]) -> None:
        rows = []
        for event in events:
            rows.append(_event_row(event, self._seq))
            self._seq += 1
        self.db.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", rows)
        self.events += len(rows)

    def sorted_events(self) -> Iterator[Event]:
        """Every added event in Contract 2's order, read from disk as it is reached."""
        rows = self.db.execute("SELECT t, file_id, payload FROM events ORDER BY t, file_id, rank, id, seq")
        for micros, file_id, payload in rows:
            yield _event_of(micros, file_id, payload)

    # -- the conversions

    def add_job(self, job: Job, key: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO jobs VALUES (?, ?)", _job_row(job, key))

    def job_count(self) -> int:
        (count,) = self.db.execute("SELECT count(*) FROM jobs").fetchone()
        return int(count)

    def jobs(self) -> Iterator[tuple[str, Job]]:
        """(cache key, job) of every distinct conversion, by key."""
        for key, payload in self.db.execute("SELECT key, payload FROM jobs ORDER BY key"):
            yield key, _job_of(payload)


    # -- the pack being written (pipeline.replay.packwriter)

    def pack_entry(self, oid: bytes) -> Stored | None:
        row = self.db.execute("SELECT offset, depth FROM objects WHERE oid = ?", (oid,)).fetchone()
        return Stored(row[0], row[1]) if row else None

    def add_pack_entry(self, oid: bytes, offset: int, crc: int, depth: int) -> bool:
        """Records an object about to be written; False when the pack has it already."""
        cursor = self.db.execute("INSERT OR IGNORE INTO objects VALUES (?, ?, ?, ?)", (oid, offset, crc, depth))
        return cursor.rowcount == 1

    def pack_entries(self) -> Iterator[tuple[bytes, int, int]]:
        """(id, CRC, offset) of every object in the pack, by id."""
        yield from self.db.execute("SELECT oid, crc, offset FROM objects ORDER BY oid")

    def base(self, key: str) -> tuple[Stored, bytes] | None:
        """The last version written of a path (where it is, its bytes), the next one's delta base."""
        row = self.db.execute("SELECT offset, depth, data FROM bases WHERE key = ?", (key,)).fetchone()
        return (Stored(row[0], row[1]), row[2]) if row else None

    def set_base(self, key: str, stored: Stored, data: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO bases VALUES (?, ?, ?, ?)", (key, stored.offset, stored.depth, data))
