"""The launcher's cookie and CSRF tokens, signed with one key kept in the workdir.

A visitor cookie is `<id>.<mac>`: a 256-bit random id and its HMAC, so the launcher accepts only
ids it issued (a value someone made up, or one tossed into a browser by another page, is refused
as forged before anything looks it up). The database keeps `visitor_key(id)`, never the id
itself. A CSRF token is `<nonce>.<time>.<mac>` over the nonce, the time, the workshop and the
browser it was given to (the nonce is also in a short-lived cookie of its own): good for
CSRF_SECONDS, once.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import time
from pathlib import Path

from pipeline.atomic import atomic_write

CSRF_SECONDS = 600
_ID = re.compile(r"[A-Za-z0-9_-]{43}")
_MAC = re.compile(r"[0-9a-f]{32}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{22}")


def load_key(path: Path) -> bytes:
    """The workdir's launcher key (made once, 0600): cookies stay valid across restarts."""
    if path.is_file():
        key = path.read_bytes()
        if len(key) == 32:
            return key
    key = os.urandom(32)
    atomic_write(path, key, mode=0o600)
    return key


def _mac(key: bytes, *parts: str) -> str:
    return hmac.new(key, "\x00".join(parts).encode(), hashlib.sha256).hexdigest()[:32]


def new_cookie(key: bytes) -> tuple[str, str]:
    """(cookie value, the visitor's id)."""
    visitor_id = secrets.token_urlsafe(32)
    return f"{visitor_id}.{_mac(key, 'visitor', visitor_id)}", visitor_id


def cookie_id(key: bytes, value: str) -> str | None:
    """The visitor id a cookie carries, or None when it is not one this launcher issued."""
    visitor_id, _, mac = value.partition(".")
    if not (_ID.fullmatch(visitor_id) and _MAC.fullmatch(mac)):
        return None
    return visitor_id if hmac.compare_digest(mac, _mac(key, "visitor", visitor_id)) else None


def visitor_key(key: bytes, visitor_id: str) -> str:
    """What the database and the seats know a visitor by: nothing the cookie could be made from."""
    return hmac.new(key, f"visitor-key\x00{visitor_id}".encode(), hashlib.sha256).hexdigest()


def student_id() -> str:
    """A seat's "student" (the name per-student homes are kept under): opaque, DNS-safe, random,
    so a warm seat has one before anyone claims it; a visitor keeps the one of their first seat."""
    return f"visitor-{secrets.token_hex(8)}"


def new_nonce() -> str:
    return secrets.token_urlsafe(16)


def csrf_token(key: bytes, nonce: str, workshop: str, now: float | None = None) -> str:
    at = str(int(time.time() if now is None else now))
    return f"{nonce}.{at}.{_mac(key, 'csrf', nonce, at, workshop)}"


def check_csrf(key: bytes, token: str, nonce_cookie: str, workshop: str, now: float | None = None) -> str | None:
    """The token's nonce when it is ours, for this workshop and this browser, and fresh; else None."""
    parts = token.split(".")
    if len(parts) != 3 or not _NONCE.fullmatch(parts[0]) or not parts[1].isdigit() or not _MAC.fullmatch(parts[2]):
        return None
    nonce, at, mac = parts
    if not hmac.compare_digest(mac, _mac(key, "csrf", nonce, at, workshop)):
        return None
    if not hmac.compare_digest(nonce.encode(), nonce_cookie.encode()):
        return None  # another browser's token
    age = (time.time() if now is None else now) - int(at)
    return nonce if 0 <= age <= CSRF_SECONDS else None
