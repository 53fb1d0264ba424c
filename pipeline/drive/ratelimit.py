"""A client-side rate limit shared by every worker thread (Drive's quota is per user, not per thread)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field


@dataclass
class RateLimiter:
    """Generic cell rate algorithm: at most `qps` requests a second on average, bursts of `burst`.

    Each call to `acquire` reserves the next free slot under a lock and sleeps outside it, so
    waiting threads do not serialise on the lock.
    """

    qps: float
    burst: int = 1
    _next: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.qps <= 0:
            raise ValueError("qps must be positive")
        self.burst = max(1, int(self.burst))

    def acquire(self) -> float:
        """Block until a request may be sent; return the seconds waited."""
        interval = 1.0 / self.qps
        with self._lock:
            now = time.monotonic()
            # Allow `burst` requests back to back after an idle spell, never more.
            earliest = now - (self.burst - 1) * interval
            slot = max(self._next, earliest)
            self._next = slot + interval
        wait = slot - now
        if wait > 0:
            time.sleep(wait)
            return wait
        return 0.0
