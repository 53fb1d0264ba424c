"""The launcher's state on disk: `WORKDIR/lab/launcher/state.db` (SQLite, the one owner of it).

What must survive `kill -9` of `docpipe lab serve`: which visitor has which seat (so a returning
visitor gets the same desktop, and a restart starts none twice), which seats are being started
(written before the backend is asked, so a seat half-started when the launcher died is still
someone's), the starts per client address (the hourly limit is not reset by a restart) and the
CSRF nonces already used (a token is good once). SQLite in WAL mode with synchronous=FULL: a
committed row is on disk when the answer leaves, and a killed writer leaves no half row.

No secret is kept here: visitors are the HMAC of their cookie (a copy of this file lets nobody
act as a visitor), and seat links with their passwords are read from the backend when needed.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS visitors (
    visitor TEXT PRIMARY KEY,   -- HMAC of the cookie's id (tokens.visitor_key)
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    student TEXT                -- the "student" of their first seat: their home's name, later seats get it too
);
CREATE TABLE IF NOT EXISTS seats (
    name TEXT PRIMARY KEY,      -- the seat's class id on the backend (launch-<hex>)
    workshop TEXT NOT NULL,
    visitor TEXT,               -- NULL while the seat waits in the warm pool
    state TEXT NOT NULL,        -- starting | ready
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS seats_visitor ON seats (visitor, workshop);
CREATE TABLE IF NOT EXISTS starts (
    address TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS starts_address ON starts (address, at);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    at REAL NOT NULL
);
"""


@dataclass(frozen=True)
class SeatRow:
    name: str
    workshop: str
    visitor: str | None
    state: str
    created: float


class Store:
    """One connection, used under a lock (the app's event loop and the pool's worker share it)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        self.path = path
        self.lock = threading.Lock()
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(SCHEMA)
        path.chmod(0o600)

    def close(self) -> None:
        with self.lock:
            self.db.close()

    # ------------------------------------------------------------------ visitors
    def touch_visitor(self, visitor: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self.lock:
            self.db.execute("INSERT INTO visitors VALUES (?, ?, ?, NULL) ON CONFLICT(visitor) DO UPDATE SET last_seen=?",
                            (visitor, now, now, now))

    def student_of(self, visitor: str) -> str | None:
        with self.lock:
            row = self.db.execute("SELECT student FROM visitors WHERE visitor=?", (visitor,)).fetchone()
            return str(row[0]) if row and row[0] else None

    def set_student(self, visitor: str, student: str) -> None:
        """A visitor's home is their first seat's (kept [lab] keep_home after their last visit)."""
        with self.lock:
            self.db.execute("UPDATE visitors SET student=? WHERE visitor=? AND student IS NULL", (student, visitor))

    def known_visitor(self, visitor: str) -> bool:
        with self.lock:
            return self.db.execute("SELECT 1 FROM visitors WHERE visitor=?", (visitor,)).fetchone() is not None

    def forget_visitors(self, older_than: float) -> int:
        """Visitors not seen since `older_than` ([lab] keep_home): they start afresh next time."""
        with self.lock:
            return self.db.execute("DELETE FROM visitors WHERE last_seen < ?", (older_than,)).rowcount

    # ------------------------------------------------------------------ seats
    def add_seat(self, name: str, workshop: str, visitor: str | None, now: float | None = None) -> None:
        with self.lock:
            self.db.execute("INSERT INTO seats VALUES (?, ?, ?, 'starting', ?)",
                            (name, workshop, visitor, time.time() if now is None else now))

    def seat_ready(self, name: str) -> None:
        with self.lock:
            self.db.execute("UPDATE seats SET state='ready' WHERE name=?", (name,))

    def claim(self, name: str, visitor: str) -> bool:
        """Give warm seat `name` to `visitor`: only if nobody has it yet (one row, one owner)."""
        with self.lock:
            cur = self.db.execute("UPDATE seats SET visitor=? WHERE name=? AND visitor IS NULL", (visitor, name))
            return cur.rowcount == 1

    def drop_seat(self, name: str) -> None:
        with self.lock:
            self.db.execute("DELETE FROM seats WHERE name=?", (name,))

    def seats(self) -> list[SeatRow]:
        with self.lock:
            rows = self.db.execute("SELECT name, workshop, visitor, state, created FROM seats ORDER BY created, name")
            return [SeatRow(*r) for r in rows.fetchall()]

    def seats_of(self, visitor: str, workshop: str) -> list[SeatRow]:
        with self.lock:
            rows = self.db.execute("SELECT name, workshop, visitor, state, created FROM seats "
                                   "WHERE visitor=? AND workshop=? ORDER BY created DESC", (visitor, workshop))
            return [SeatRow(*r) for r in rows.fetchall()]

    # ------------------------------------------------------------------ limits
    def starts_since(self, address: str, since: float) -> list[float]:
        with self.lock:
            rows = self.db.execute("SELECT at FROM starts WHERE address=? AND at >= ? ORDER BY at", (address, since))
            return [r[0] for r in rows.fetchall()]

    def add_start(self, address: str, now: float | None = None) -> None:
        with self.lock:
            self.db.execute("INSERT INTO starts VALUES (?, ?)", (address, time.time() if now is None else now))

    def use_nonce(self, nonce: str, now: float | None = None) -> bool:
        """False when the nonce was used before: a CSRF token is good once."""
        with self.lock:
            try:
                self.db.execute("INSERT INTO nonces VALUES (?, ?)", (nonce, time.time() if now is None else now))
            except sqlite3.IntegrityError:
                return False
            return True

    def prune(self, before: float) -> None:
        """Starts and nonces older than any limit or token still looks at."""
        with self.lock:
            self.db.execute("DELETE FROM starts WHERE at < ?", (before,))
            self.db.execute("DELETE FROM nonces WHERE at < ?", (before,))
