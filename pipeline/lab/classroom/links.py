"""Every seat link docpipe prints: one place, for the Docker gateway and Kubernetes.

Every seat is a browser origin of its own (scheme, host and port), the instructor's class page is
another, and each workshop port of a seat yet another: a page one student serves can then neither
script nor put a Service Worker over another seat's page, the class page or its own desktop.

Where the public URL names a host, origins are hosts under it (one DNS record, `*.<host>`, and one
certificate for `*.<host>` serve them all):

    s-<id>.<host>         a seat's desktop (its view-only link: the s-<id> of its watch token)
    p<port>-<id>.<host>   one of the seat's workshop ports (the id of a key of its own, so a port
                          link a student shares says nothing of their desktop's)
    c-<id>.<host>         the class page

An id is 130 bits of the sha256 of a token, in lowercase base32: DNS carries no '_' or capitals.
Where the public URL is an IP address (a class on a LAN with no DNS of its own), origins are ports
instead: the listen port serves the class pages, and a seat at offset k on the gateway has its
desktop and view-only link on port+k and its workshop ports on port+k+1, port+k+2, ...

Behind the Docker gateway the key stays in the path as well (`/s/<key>/`, `/class/<token>/`): host
names travel in clear (DNS, the TLS server name) and ports are guessable, while a path travels
only inside TLS. Kubernetes serves `/` on each host (no controller-specific rewrite), so there the
host is the key. The desktop link carries the VNC password only in the fragment (`#...`), which
browsers never send to a server; Debian's noVNC (app/webutil.js getConfigVar) reads its settings,
`path` included, from the query or the fragment, so everything goes in the fragment.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from pipeline.errors import BadInput

_SEAT = "s"  # /s/<key>/: a seat's desktop or workshop port behind the gateway
_CLASS = "class"  # /class/<class token>/: the instructor's grid page
FILES = "files"  # /s/<key>/files/: the seat agent's files page (pipeline/lab/seat/agent.py)
PROGRESS = "progress"  # /s/<key>/progress: the learner's own progress checks, run by the seat agent
# A DNS name or an IP address: what ends up in certificates and the gateway's configuration.
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*|[0-9a-f:.]+")


def check_public_url(url: str) -> str:
    parts = urlsplit(url)
    try:
        _ = parts.port
    except ValueError:  # a port that is not a number
        parts = urlsplit("bad:")
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password
            or parts.path.strip("/") or parts.query or parts.fragment or not _HOST.fullmatch(parts.hostname.rstrip("."))):
        raise BadInput(f"lab public URL {url!r} must look like https://host[:port] (no path: every seat "
                       "gets a host or a port of its own)")
    return url.rstrip("/")


@dataclass(frozen=True)
class Public:
    """A checked public URL, split."""
    scheme: str
    host: str  # lowercase; an IPv6 address without brackets
    port: int
    by_port: bool  # an IP address: origins differ by port, not by host

    def origin(self, host: str | None = None, port: int | None = None) -> str:
        name = host or self.host
        if ":" in name:
            name = f"[{name}]"
        port = self.port if port is None else port
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{name}" + ("" if port == default else f":{port}")


def public(url: str) -> Public:
    parts = urlsplit(check_public_url(url))
    host = (parts.hostname or "").lower().rstrip(".")
    try:
        ipaddress.ip_address(host)
        by_port = True
    except ValueError:
        by_port = False
    return Public(parts.scheme, host, parts.port or (443 if parts.scheme == "https" else 80), by_port)


def host_id(secret: str) -> str:
    """130 bits of sha256(secret), DNS-safe and case-insensitive."""
    return base64.b32encode(hashlib.sha256(secret.encode()).digest()).decode().lower().rstrip("=")[:26]


def port_key(token: str, port: int) -> str:
    """The key of one workshop port of a seat: derived from the seat's token (nothing more to keep),
    but telling nothing of it."""
    digest = hashlib.sha256(f"docpipe port {int(port)} {token}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")[:32]


def seat_host(token: str, host: str) -> str:
    return f"s-{host_id(token)}.{host}"


def port_host(token: str, port: int, host: str) -> str:
    return f"p{int(port)}-{host_id(port_key(token, port))}.{host}"


def class_host(class_token: str, host: str) -> str:
    return f"c-{host_id(class_token)}.{host}"


# ------------------------------------------------------------------ behind the Docker gateway


def seat_path(key: str) -> str:
    """The path the gateway routes, on a seat's origin, to its desktop or to one workshop port."""
    return f"/{_SEAT}/{key}/"


def class_path(class_token: str) -> str:
    return f"/{_CLASS}/{class_token}/"


@dataclass(frozen=True)
class Origins:
    """Where one seat's links point behind the gateway."""
    desktop: str
    watch: str
    ports: dict[int, str]


def seat_ports(ports: Sequence[int]) -> int:
    """How many gateway ports one seat takes when origins are ports: its desktop and each workshop port."""
    return 1 + len(ports)


def gateway_origins(public_url: str, token: str, watch_token: str, ports: Sequence[int], offset: int = 0) -> Origins:
    """A seat's origins; `offset` is its place on the gateway when origins are ports (>= 1)."""
    pub = public(public_url)
    if pub.by_port:
        if offset < 1:
            raise ValueError("a seat behind an IP address needs its port offset on the gateway")
        base = pub.port + offset
        desktop = pub.origin(port=base)
        return Origins(desktop, desktop, {int(p): pub.origin(port=base + 1 + i) for i, p in enumerate(ports)})
    return Origins(pub.origin(seat_host(token, pub.host)), pub.origin(seat_host(watch_token, pub.host)),
                   {int(p): pub.origin(port_host(token, p, pub.host)) for p in ports})


def class_origin(public_url: str, class_token: str) -> str:
    pub = public(public_url)
    return pub.origin() if pub.by_port else pub.origin(class_host(class_token, pub.host))


def desktop_url(origin: str, token: str, password: str, *, view_only: bool = False) -> str:
    fragment = f"autoconnect=1&resize=scale&reconnect=1&path={quote(seat_path(token).strip('/'))}/websockify"
    if view_only:
        fragment += "&view_only=1"
    return f"{origin}{seat_path(token)}vnc.html#{fragment}&password={quote(password, safe='')}"


def seat_base(origin: str, token: str) -> str:
    return origin + seat_path(token)


def seat_prefix() -> str:
    """What every seat path starts with: on Kubernetes, what the desktop host's Ingress sends to the
    seat agent (which serves its own key's pages under it only)."""
    return f"/{_SEAT}/"


def files_url(origin: str, token: str) -> str:
    """The student's files page: on the desktop's origin, under the desktop's key (same guard)."""
    return f"{origin}{seat_path(token)}{FILES}/"


def progress_url(origin: str, token: str) -> str:
    return f"{origin}{seat_path(token)}{PROGRESS}"


def port_url(origin: str, token: str, port: int) -> str:
    return origin + seat_path(port_key(token, port))


def class_url(origin: str, class_token: str) -> str:
    return origin + class_path(class_token)


def password_in(url: str) -> str:
    """The password a printed link carries in its fragment ("" when it has none)."""
    return parse_qs(urlsplit(url).fragment).get("password", [""])[0]


# ------------------------------------------------------------------ Kubernetes: a host per seat


def host_links(host: str, url_path: str, token: str, watch_token: str, password: str, view_password: str,
               ports: Iterable[int]) -> tuple[str, str, dict[str, str]]:
    """A Kubernetes seat's desktop, view-only and port links; `url_path` is what the desktop
    base serves on its port (bases.BaseProfile.url_path)."""
    sep = "&" if "?" in url_path else "?"
    url = f"https://{seat_host(token, host)}{url_path}#password={password}"
    watch = f"https://{seat_host(watch_token, host)}{url_path}{sep}view_only=1#password={view_password}"
    return url, watch, {str(p): f"https://{port_host(token, p, host)}/" for p in ports}
