"""Who gets which seat: the warm pool, the limits, and the one worker thread that starts seats.

Decisions (which seat a visitor gets, whether the launcher is full, whether an address started too
many) are made under one lock from what the store and the backend say, and written to the store
before anything is started: a seat exists in the store as "starting" (with its visitor, when a
visitor is waiting for it) before the backend is asked, so a launcher killed half-way knows, when
it comes back, whose that seat was, and starts none twice.

Seats are started one at a time by one worker thread: a backend changes shared things on every
start (the gateway's configuration, the seat networks' address pool) and is not made to be called
from two threads. A visitor's start goes before refilling the pool (a priority queue).
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import itertools
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pipeline.lab.classroom.backend import SeatInfo, now_rfc3339
from pipeline.lab.launcher.store import Store
from pipeline.lab.launcher.tokens import student_id

MAINTAIN_SECONDS = 30.0
# A warm seat with less than this share of its ttl left is not handed out (the visitor would get a
# desktop that ends soon); it waits for its expiry and the pool starts a fresh one.
FRESH_SHARE = 0.5


class Seats(Protocol):
    """What the launcher needs of a seat backend (seats.py adapts the classroom's backends)."""

    @property
    def ttl_seconds(self) -> int: ...
    def workshops(self) -> tuple[str, ...]: ...
    def start(self, workshop: str, name: str, student: str) -> SeatInfo:
        """Start one seat named `name` (blocking until it answers) and return it."""
    def live(self) -> dict[str, SeatInfo]:
        """The launcher's seats that run and have not expired, by name."""
    def maintain(self) -> None:
        """Remove expired seats; keep the gateway's route to the launcher."""


@dataclass(frozen=True)
class Given:
    """A visitor got `seat` (`warm`: from the pool, `again`: the one they already had)."""
    seat: SeatInfo
    how: str  # "again" | "warm" | "cold"


@dataclass(frozen=True)
class Refused:
    """No seat: `status` 429 (this address started too many) or 503 (full), and when to try again."""
    status: int
    retry_after: int
    reason: str


def _seconds_left(expires: str, now: dt.datetime) -> float:
    try:
        end = dt.datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return 0.0
    return (end - now).total_seconds()


def new_name() -> str:
    """A launcher seat's name on the backend (its class id and seat): unguessable, DNS-safe."""
    return f"launch-{secrets.token_hex(5)}"


class Launcher:
    def __init__(self, seats: Seats, store: Store, *, warm: int, max_seats: int, starts_per_hour: int,
                 keep_home_seconds: int, log: Callable[[str], None] = lambda line: None) -> None:
        self.seats, self.store = seats, store
        self.warm, self.max_seats, self.starts_per_hour = warm, max_seats, starts_per_hour
        self.keep_home_seconds = keep_home_seconds
        self.log = log
        self.lock = threading.RLock()
        self.live: dict[str, SeatInfo] = {}
        self.starting: dict[str, concurrent.futures.Future[SeatInfo]] = {}
        self.jobs: queue.PriorityQueue[tuple[int, int, str, tuple[Any, ...]]] = queue.PriorityQueue()
        self.order = itertools.count()
        self.stopping = threading.Event()
        self.worker: threading.Thread | None = None
        self.ticker: threading.Thread | None = None
        self.started_seats = 0  # how many seats this process started (tests, the benchmark)

    # ------------------------------------------------------------------ lifecycle
    def recover(self) -> None:
        """After a start (or a kill -9): the store's seats against what the backend runs."""
        live = self.seats.live()
        with self.lock:
            self.live = live
            known = set()
            for row in self.store.seats():
                known.add(row.name)
                if row.name in live:
                    self.store.seat_ready(row.name)
                else:  # gone, expired, or never started before the launcher died
                    self.store.drop_seat(row.name)
            for name, info in live.items():
                if name not in known:  # a seat the store lost: nobody's, so the pool's
                    self.store.add_seat(name, info.workshop, None)
                    self.store.seat_ready(name)

    def start_background(self) -> None:
        self.worker = threading.Thread(target=self._work, name="launcher-seats", daemon=True)
        self.worker.start()
        self.ticker = threading.Thread(target=self._tick, name="launcher-maintain", daemon=True)
        self.ticker.start()
        self.refill()

    def stop(self) -> None:
        self.stopping.set()
        self.jobs.put((-1, next(self.order), "stop", ()))
        for t in (self.worker, self.ticker):
            if t is not None:
                t.join(timeout=120)

    def _tick(self) -> None:
        while not self.stopping.wait(MAINTAIN_SECONDS):
            self.jobs.put((2, next(self.order), "maintain", ()))

    def _work(self) -> None:
        while True:
            _, _, kind, args = self.jobs.get()
            if kind == "stop":
                return
            try:
                if kind == "start":
                    self._start(*args)
                elif kind == "refill":
                    self._refill_one()
                elif kind == "maintain":
                    self._maintain()
            except Exception as exc:  # a failed start must not end the worker: log it, go on
                self.log(f"docpipe: lab serve: {kind} failed: {' '.join(str(exc).split())[:300]}")

    # ------------------------------------------------------------------ the worker's jobs
    def _start(self, name: str, workshop: str, student: str, future: concurrent.futures.Future[SeatInfo]) -> None:
        try:
            info = self.seats.start(workshop, name, student)
        except BaseException as exc:
            with self.lock:
                self.starting.pop(name, None)
                self.store.drop_seat(name)
            future.set_exception(exc)
            return
        with self.lock:
            self.starting.pop(name, None)
            self.live[name] = info
            self.store.seat_ready(name)
            self.started_seats += 1
        future.set_result(info)

    def _maintain(self) -> None:
        self.seats.maintain()
        live = self.seats.live()
        with self.lock:
            self.live = live
            for row in self.store.seats():
                if row.name not in live and row.name not in self.starting:
                    self.store.drop_seat(row.name)
        now = time.time()
        self.store.forget_visitors(now - self.keep_home_seconds)
        self.store.prune(now - 2 * 3600)
        self._refill_one()

    def _warm_seats(self, workshop: str) -> list[str]:
        """The pool's seats of `workshop`, ready or starting (under the lock)."""
        return [r.name for r in self.store.seats()
                if r.workshop == workshop and r.visitor is None and (r.name in self.live or r.name in self.starting)]

    def _fresh_warm(self, workshop: str) -> list[str]:
        """The pool's seats still worth handing out (starting ones count: they will be)."""
        return [n for n in self._warm_seats(workshop) if n in self.starting or self._fresh(self.live[n])]

    def _total(self) -> int:
        return len(self.live) + len(self.starting)

    def _refill_one(self) -> None:
        """Start one warm seat where a workshop's pool is short; queue the next."""
        if self.warm <= 0:
            return
        with self.lock:
            short = [ws for ws in self.seats.workshops() if len(self._fresh_warm(ws)) < self.warm]
            if not short or self._total() >= self.max_seats:
                return
            workshop = min(short, key=lambda ws: (len(self._fresh_warm(ws)), ws))
            name = new_name()
            self.store.add_seat(name, workshop, None)
            future: concurrent.futures.Future[SeatInfo] = concurrent.futures.Future()
            self.starting[name] = future
        self._start(name, workshop, student_id(), future)
        if future.exception() is None:
            self.refill()

    def refill(self) -> None:
        self.jobs.put((1, next(self.order), "refill", ()))

    # ------------------------------------------------------------------ what the app asks
    def seat_of(self, visitor: str, workshop: str) -> SeatInfo | None:
        """The visitor's running seat of `workshop`, if any."""
        with self.lock:
            for row in self.store.seats_of(visitor, workshop):
                info = self.live.get(row.name)
                if info is not None and _seconds_left(info.expires, dt.datetime.now(dt.UTC)) > 0:
                    return info
        return None

    def _retry_after(self) -> int:
        now = dt.datetime.now(dt.UTC)
        lefts = [_seconds_left(i.expires, now) for i in self.live.values()]
        return int(min([x for x in lefts if x > 0] or [3600])) + 5

    def _fresh(self, info: SeatInfo) -> bool:
        return _seconds_left(info.expires, dt.datetime.now(dt.UTC)) > FRESH_SHARE * self.seats.ttl_seconds

    def claim(self, visitor: str, workshop: str, address: str) -> Given | Refused | concurrent.futures.Future[SeatInfo]:
        """A seat for `visitor` now (theirs, or a warm one), a refusal, or the future of a cold start."""
        self.store.touch_visitor(visitor)
        with self.lock:
            mine = self.seat_of(visitor, workshop)
            if mine is not None:
                return Given(mine, "again")
            for row in self.store.seats_of(visitor, workshop):
                pending = self.starting.get(row.name)
                if pending is not None:  # pressed twice while their seat starts: the same seat
                    return pending
            now = time.time()
            recent = self.store.starts_since(address, now - 3600)
            if len(recent) >= self.starts_per_hour:
                return Refused(429, int(recent[0] + 3600 - now) + 1, "too many desktops started from your address")
            # A returning visitor has a home (their first seat's student): a warm seat has another,
            # so theirs is started with their own, unless nothing else can be had.
            student = self.store.student_of(visitor)
            full = self._total() >= self.max_seats
            pool = [(n, i) for n in self._warm_seats(workshop) if (i := self.live.get(n)) is not None]
            pool.sort(key=lambda seat: not self._fresh(seat[1]))  # fresh ones first
            for name, info in pool if student is None or full else []:
                if (full or self._fresh(info)) and self.store.claim(name, visitor):
                    self.store.add_start(address, now)
                    self.store.set_student(visitor, info.student)
                    self.refill()
                    return Given(info, "warm")
            if full:
                return Refused(503, self._retry_after(), "every desktop is taken")
            if student is None:
                student = student_id()
                self.store.set_student(visitor, student)
            name = new_name()
            self.store.add_seat(name, workshop, visitor)
            self.store.add_start(address, now)
            future: concurrent.futures.Future[SeatInfo] = concurrent.futures.Future()
            self.starting[name] = future
        self.jobs.put((0, next(self.order), "start", (name, workshop, student, future)))
        return future

    def status(self) -> dict[str, Any]:
        with self.lock:
            rows = self.store.seats()
            return {"live": len(self.live), "starting": len(self.starting),
                    "warm": sum(1 for r in rows if r.visitor is None and r.name in self.live),
                    "started": self.started_seats, "at": now_rfc3339()}
