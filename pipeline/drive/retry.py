"""Which Drive failures are worth another try, and how long to wait before it.

Google asks clients to back off exponentially with jitter on 429, 403 rate-limit reasons and 5xx,
and to honour Retry-After when the server sends it.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from dataclasses import dataclass
from typing import Any

RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    tries: int = 7            # first try included
    base: float = 0.25        # seconds; the n-th retry waits up to base * 2**n
    cap: float = 16.0         # longest backoff without Retry-After
    max_retry_after: float = 120.0  # a larger Retry-After is not worth waiting for inside one run

    def delay(self, retry_number: int, retry_after: float | None) -> float:
        """Full jitter (AWS/Google style), but never shorter than what the server asked for."""
        backoff = random.uniform(0, min(self.cap, self.base * (2 ** retry_number)))
        if retry_after is not None:
            return max(backoff, min(retry_after, self.max_retry_after))
        return backoff


def _error_object(body: bytes | str | None) -> dict[str, Any]:
    """The `error` object of a Google JSON error body, or {} for anything else."""
    if not body:
        return {}
    try:
        data = json.loads(body)
    except ValueError:
        return {}
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else {}


def error_reason(body: bytes | str | None) -> str:
    """The `reason` of a Google JSON error body ({"error": {"errors": [{"reason": ...}]}}), or ''."""
    err = _error_object(body)
    errors = err.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict) and errors[0].get("reason"):
        return str(errors[0]["reason"])
    details = err.get("details")
    for detail in details if isinstance(details, list) else []:
        if isinstance(detail, dict) and detail.get("reason"):
            return str(detail["reason"])
    return str(err.get("status") or "")


def error_message(body: bytes | str | None) -> str:
    """The human `message` of a Google JSON error body, on one line, or ''."""
    return " ".join(str(_error_object(body).get("message") or "").split())[:200]


def is_retryable(status: int, reason: str) -> bool:
    if status in RETRY_STATUSES:
        return True
    return status == 403 and reason in RATE_LIMIT_REASONS


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())
