"""Every link docpipe prints for a class: one place, shared by the Docker and Kubernetes backends.

The desktop link carries the VNC password only in the fragment (`#...`): browsers never send a
fragment to a server, so it lands in no log. Debian's noVNC (app/webutil.js getConfigVar) reads
its settings from the query or the fragment, `path` included, so everything goes in the fragment.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

from pipeline.errors import BadInput


def check_public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise BadInput(f"lab public URL {url!r} must look like https://host[:port][/path]")
    return url.rstrip("/")


def _prefix(public_url: str) -> str:
    """The URL path the gateway is mounted under, without slashes around it ("" at the root)."""
    return urlsplit(public_url).path.strip("/")


def seat_base(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/s/{token}/"


def desktop_url(public_url: str, token: str, password: str, *, view_only: bool = False) -> str:
    path = "/".join(p for p in (_prefix(public_url), "s", token, "websockify") if p)
    fragment = f"autoconnect=1&resize=scale&reconnect=1&path={quote(path)}"
    if view_only:
        fragment += "&view_only=1"
    return f"{seat_base(public_url, token)}vnc.html#{fragment}&password={quote(password, safe='')}"


def port_url(public_url: str, token: str, port: int) -> str:
    return f"{seat_base(public_url, token)}port/{port}/"


def class_url(public_url: str, class_token: str) -> str:
    return f"{public_url.rstrip('/')}/class/{class_token}/"


def password_in(url: str) -> str:
    """The password a printed link carries in its fragment ("" when it has none)."""
    return parse_qs(urlsplit(url).fragment).get("password", [""])[0]
