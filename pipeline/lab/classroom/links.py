"""Every seat link docpipe prints or reads back: one place, for the Docker and Kubernetes backends.

Behind the Docker gateway a seat is a path, `<public url>/s/<token>/` (the gateway's nginx routes
that same path, from `seat_path`); on Kubernetes a seat is a host of its own, `s-<hash>.<host>`,
so every seat is a separate browser origin. The desktop link carries the VNC password only in the
fragment (`#...`): browsers never send a fragment to a server, so it lands in no log. Debian's
noVNC (app/webutil.js getConfigVar) reads its settings from the query or the fragment, `path`
included, so everything goes in the fragment.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from urllib.parse import parse_qs, quote, urlsplit

from pipeline.errors import BadInput

_SEAT = "s"  # /s/<token>/: a seat behind the gateway
_CLASS = "class"  # /class/<class token>/: the instructor's grid page


def check_public_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise BadInput(f"lab public URL {url!r} must look like https://host[:port][/path]")
    return url.rstrip("/")


def _prefix(public_url: str) -> str:
    """The URL path the gateway is mounted under, without slashes around it ("" at the root)."""
    return urlsplit(public_url).path.strip("/")


# ------------------------------------------------------------------ behind the Docker gateway


def seat_path(token: str) -> str:
    """The path the gateway routes to one seat's desktop (and its students open)."""
    return f"/{_SEAT}/{token}/"


def port_path(token: str, port: int) -> str:
    """The path the gateway routes to one of the workshop's own ports in a seat."""
    return f"{seat_path(token)}port/{port}/"


def class_path(class_token: str) -> str:
    return f"/{_CLASS}/{class_token}/"


def seat_base(public_url: str, token: str) -> str:
    return public_url.rstrip("/") + seat_path(token)


def desktop_url(public_url: str, token: str, password: str, *, view_only: bool = False) -> str:
    path = "/".join(p for p in (_prefix(public_url), _SEAT, token, "websockify") if p)
    fragment = f"autoconnect=1&resize=scale&reconnect=1&path={quote(path)}"
    if view_only:
        fragment += "&view_only=1"
    return f"{seat_base(public_url, token)}vnc.html#{fragment}&password={quote(password, safe='')}"


def port_url(public_url: str, token: str, port: int) -> str:
    return public_url.rstrip("/") + port_path(token, port)


def class_url(public_url: str, class_token: str) -> str:
    return public_url.rstrip("/") + class_path(class_token)


def token_in(url: str) -> str:
    """The seat token of a gateway link ("" when it is none)."""
    mark = f"/{_SEAT}/"
    return url.split(mark, 1)[1].split("/", 1)[0] if mark in url else ""


def gateway_of(url: str) -> str:
    """The public URL a gateway link starts with."""
    return url.split(f"/{_SEAT}/", 1)[0]


def password_in(url: str) -> str:
    """The password a printed link carries in its fragment ("" when it has none)."""
    return parse_qs(urlsplit(url).fragment).get("password", [""])[0]


# ------------------------------------------------------------------ Kubernetes: a host per seat


def host_label(token: str) -> str:
    """A token may hold '_' and capitals, which DNS cannot carry: 130 bits of its hash instead
    (lowercase base32 of sha256)."""
    digest = base64.b32encode(hashlib.sha256(token.encode()).digest()).decode().lower().rstrip("=")
    return f"s-{digest[:26]}"


def seat_host(token: str, host: str) -> str:
    return f"{host_label(token)}.{host}"


def port_host(token: str, port: int, host: str) -> str:
    return f"{host_label(token)}-p{port}.{host}"


def host_links(host: str, url_path: str, token: str, watch_token: str, password: str, view_password: str,
               ports: Iterable[int]) -> tuple[str, str, dict[str, str]]:
    """A Kubernetes seat's desktop, view-only and port links; `url_path` is what the desktop
    base serves on its port (bases.BaseProfile.url_path)."""
    sep = "&" if "?" in url_path else "?"
    url = f"https://{seat_host(token, host)}{url_path}#password={password}"
    watch = f"https://{seat_host(watch_token, host)}{url_path}{sep}view_only=1#password={view_password}"
    return url, watch, {str(p): f"https://{port_host(token, p, host)}/" for p in ports}
