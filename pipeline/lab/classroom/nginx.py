"""The gateway's nginx configuration, as text (pure, no I/O): one file of server blocks per seat,
one per class page, and the permanent server.conf.

Every origin (links.py) is a `server`: by name (`server_name s-<id>.<host>`) when the public URL
names a host, by port (`listen 8443+k`) when it is an IP address. Inside it only the link's own
path (links.seat_path, with the link's key) reaches the seat; anything else is 404. What a seat answers passes through a
filter: no Service-Worker-Allowed (a worker never widens its scope past the path it came from),
cookies held to the seat's own host and path, no caching, no Referer either way, framing only by
the same origin (the class page's origin too, for view-only desktops), HSTS. Every value that ends
up in nginx's language is checked first: tokens, addresses, host names.

File names start with the expiry as YYYYmmddHHMMSS: the gateway's own loop (gateway.sh) removes a
seat's or a class page's files once that time passes, with no docpipe command.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from pipeline.errors import DocpipeError
from pipeline.lab.classroom import classpage, links

INTERNAL_PORT = 8443  # the listen port inside the gateway; a seat at offset k listens on INTERNAL_PORT + k
CONF_DIR = "/etc/docpipe"
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,}")
_ADDRESS = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|[0-9a-f:.]+")
_HIDDEN = ("Service-Worker-Allowed", "Cache-Control", "Expires", "Pragma", "ETag", "Last-Modified",
           "Strict-Transport-Security", "Referrer-Policy", "X-Frame-Options")
_STAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_LINK = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+/[A-Za-z0-9._~/?#&=%+:-]*")  # nothing nginx reads as syntax
# The class page's help links are followed through the gateway, which logs each use here (one
# file per workshop, on the configuration volume); docpipe moves the lines into the workdir's
# audit log (audit.py) at its next lab command.
AUDIT_DIR = "audit"
AUDIT_FORMAT = ("map $uri $docpipe_seat {\n    ~/help/(?<seat>[a-z0-9-]+)$ $seat;\n    default \"\";\n}\n"
                "log_format docpipe_help escape=none '$time_iso8601\t$docpipe_seat';\n")
# Mozilla's "intermediate" TLS profile (ssl-config.mozilla.org, guidelines 5.7): TLS 1.2 with
# forward-secret AEAD suites only (no SHA-1, no CBC), TLS 1.3, the RFC 7919 ffdhe2048 group.
TLS = """ssl_protocols TLSv1.2 TLSv1.3;
ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305;
ssl_prefer_server_ciphers off;
ssl_dhparam /etc/nginx/ffdhe2048.pem;
ssl_session_timeout 1d;
ssl_session_cache shared:docpipe:10m;
ssl_session_tickets off;
"""


@dataclass(frozen=True)
class Route:
    """One seat as the gateway sees it."""
    seat: str  # <workshop>-<seat>: names its file
    token: str
    watch_token: str
    address: str  # the seat's IP on its own network
    desktop_port: int
    ports: tuple[int, ...]
    expires: str  # RFC 3339 UTC
    class_token: str  # its class page may frame its view-only desktop
    offset: int = 0  # its first port after the listen port, when origins are ports
    agent_port: int = 0  # the seat agent's port (bases.BaseProfile.agent_port); 0: the base has none


@dataclass(frozen=True)
class ClassPage:
    class_token: str
    workshop: str
    tiles: tuple[tuple[str, str], ...]  # (student or seat, view-only desktop URL)
    frames: tuple[str, ...]  # the seats' view-only origins
    expires: str  # the class's last seat's expiry: the page goes with it
    progress: tuple[tuple[str, str], ...] = ()  # (tile label, its last `lab progress` line)
    helps: tuple[tuple[str, str, str], ...] = ()  # (tile label, seat, its full-control help link)


def stamp(expires: str) -> str:
    """RFC 3339 UTC -> YYYYmmddHHMMSS, which the gateway's loop compares as a number."""
    if not _STAMP.fullmatch(expires):
        raise DocpipeError(f"seat expiry {expires[:40]!r} is not RFC 3339 UTC")
    return "".join(ch for ch in expires if ch.isdigit())


def _check(route: Route | ClassPage, *tokens: str) -> None:
    for value in tokens:
        if not _TOKEN.fullmatch(value):
            raise DocpipeError(f"{getattr(route, 'seat', None) or getattr(route, 'workshop', '')} has a malformed token")


def _listen(pub: links.Public, tls: bool, port: int = 0, default: bool = False) -> str:
    """`listen` for a public port (the listen port when 0): the same offset from INTERNAL_PORT."""
    inside = INTERNAL_PORT + (port - pub.port if port else 0)
    return f"    listen {inside}{' ssl' if tls else ''}{' default_server' if default else ''};\n"


def headers(tls: bool, frame_ancestors: str = "'self'", policy: str = "", indent: str = "    ") -> str:
    """Every gateway answer's headers (add_header is not inherited by a block that has its own)."""
    csp = policy or f"frame-ancestors {frame_ancestors}"
    lines = ['add_header Referrer-Policy "no-referrer" always;', 'add_header Cache-Control "no-store" always;',
             'add_header X-Content-Type-Options "nosniff" always;',
             f'add_header Content-Security-Policy "{csp}" always;']
    if tls:
        lines.append('add_header Strict-Transport-Security "max-age=31536000" always;')
    return "".join(f"{indent}{line}\n" for line in lines)


def _proxy(key: str, target: str, origin: str, tls: bool, frame_ancestors: str = "'self'",
           listing: bool = True) -> str:
    """The location of a link's path (links.seat_path) -> target, with what the seat answers filtered
    (module docstring)."""
    path = links.seat_path(key)
    authority = urlsplit(origin).netloc
    host = urlsplit(origin).hostname or ""
    out = (f"    location {path} {{\n"
           f"        proxy_pass http://{target}/;\n"
           "        proxy_set_header Upgrade $http_upgrade;\n"
           "        proxy_set_header Connection $connection_upgrade;\n"
           f'        proxy_set_header Host "{authority}";\n'
           '        proxy_set_header Referer "";\n'
           + "".join(f"        proxy_hide_header {h};\n" for h in _HIDDEN)
           + "        proxy_redirect default;\n"
           f"        proxy_redirect / {path};\n"  # the seat's own redirects stay on its path
           f"        proxy_cookie_domain ~.+ {host};\n"
           f"        proxy_cookie_path / {path};\n"
           + headers(tls, frame_ancestors, indent=" " * 8) + "    }\n")
    if not listing:  # websockify lists folders (/app/, /core/...): nothing but files
        out += f"    location ~ ^{path}.+/$ {{\n        return 404;\n" + headers(tls, indent=" " * 8) + "    }\n"
    return out


# The seat agent's pages: no script, forms only to themselves (pipeline/lab/seat/agent.py POLICY).
AGENT_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; "
                "frame-ancestors 'self'")


def _agent(key: str, target: str, origin: str, tls: bool) -> str:
    """The seat agent's two routes on the desktop's origin, under the desktop's own key
    (links.files_url, links.progress_url). Uploads stream through (no body buffered in the
    gateway's /tmp); the agent enforces [lab] upload_limit itself."""
    path = links.seat_path(key)
    authority = urlsplit(origin).netloc
    common = (f'        proxy_set_header Host "{authority}";\n'
              '        proxy_set_header Referer "";\n'
              '        proxy_set_header Cookie "";\n'
              + "".join(f"        proxy_hide_header {h};\n" for h in _HIDDEN)
              + "        proxy_hide_header Set-Cookie;\n        proxy_hide_header Content-Security-Policy;\n"
              + "        proxy_redirect default;\n"
              f"        proxy_redirect / {path};\n"
              + headers(tls, policy=AGENT_POLICY, indent=" " * 8))
    # ^~: the desktop's "no folder listings" regex location must not take the files page's folders.
    return (f"    location ^~ {path}{links.FILES}/ {{\n"
            f"        proxy_pass http://{target}/{links.FILES}/;\n"
            "        client_max_body_size 0;\n        proxy_request_buffering off;\n" + common + "    }\n"
            f"    location = {path}{links.PROGRESS} {{\n"
            f"        proxy_pass http://{target}/{links.PROGRESS};\n" + common + "    }\n")


def _server(origin: str, pub: links.Public, tls: bool, body: str, default: bool = False) -> str:
    """One origin: a server by name, or by port when origins are ports."""
    parts = urlsplit(origin)
    if not _HOST.fullmatch(parts.hostname or ""):
        raise DocpipeError(f"lab host {(parts.hostname or '')[:80]!r} is not a DNS name or an IP address")
    port = parts.port or pub.port
    listen = _listen(pub, tls, port if pub.by_port else 0, default)
    name = "" if pub.by_port or default else f"    server_name {parts.hostname};\n"
    return ("server {\n" + listen + name + body + "    location / {\n        return 404;\n"
            + headers(tls, indent=" " * 8) + "    }\n}\n")


def server_conf(pub: links.Public, tls: bool) -> str:
    """TLS, and the default server: what answers an unknown name or port (and, when origins are
    ports, the class pages on the listen port). `docpipe lab serve` adds its route there
    (launcher/*.conf, which a class's configuration never clears)."""
    out = "ssl_certificate /etc/docpipe/tls.crt;\nssl_certificate_key /etc/docpipe/tls.key;\n" + TLS if tls else ""
    out += AUDIT_FORMAT
    classes = f"    include {CONF_DIR}/classes/*.conf;\n" if pub.by_port else ""
    classes += f"    include {CONF_DIR}/{LAUNCHER_CONF_DIR}/*.conf;\n"
    return out + _server(pub.origin(), pub, tls, classes, default=True)


# `docpipe lab serve` listens on a unix socket in the workdir, bind-mounted (read-only) into the
# gateway: the launcher has no TCP port, so no seat (on its own network) can reach it.
LAUNCHER_CONF_DIR = "launcher"
LAUNCHER_SOCKET_DIR = "/srv/docpipe-launcher"
LAUNCHER_SOCKET = "launcher.sock"
LAUNCHER_POLICY = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"


def launcher_conf(tls: bool) -> str:
    """The route of `/start/` on the launcher's origin (the public URL's own, the default server)
    to the launcher: the client's address in X-Real-IP (its limits count per address), nothing
    else of the request's own forwarding headers, small bodies only."""
    return ("    location /start/ {\n"
            f"        proxy_pass http://unix:{LAUNCHER_SOCKET_DIR}/{LAUNCHER_SOCKET};\n"
            '        proxy_set_header Host "launcher";\n'
            "        proxy_set_header X-Real-IP $remote_addr;\n"
            '        proxy_set_header X-Forwarded-For "";\n'
            '        proxy_set_header Forwarded "";\n'
            '        proxy_set_header Referer "";\n'
            "        proxy_redirect off;\n"
            "        client_max_body_size 4k;\n"
            "        proxy_read_timeout 330s;\n"
            + "".join(f"        proxy_hide_header {h};\n" for h in (*_HIDDEN, "Content-Security-Policy"))
            + headers(tls, policy=LAUNCHER_POLICY, indent=" " * 8) + "    }\n")


def seat_conf(route: Route, pub: links.Public, tls: bool) -> str:
    _check(route, route.token, route.watch_token)
    if not _ADDRESS.fullmatch(route.address):
        raise DocpipeError(f"seat {route.seat} has no address on its network")
    if pub.by_port and route.offset < 1:
        raise DocpipeError(f"seat {route.seat} has no port on the gateway")
    origins = links.gateway_origins(pub.origin(), route.token, route.watch_token, route.ports, route.offset)
    framers = f"'self' {links.class_origin(pub.origin(), route.class_token)}"
    desktop = f"{route.address}:{int(route.desktop_port)}"
    seat = _proxy(route.token, desktop, origins.desktop, tls, listing=False)
    if route.agent_port:
        seat += _agent(route.token, f"{route.address}:{int(route.agent_port)}", origins.desktop, tls)
    watch = _proxy(route.watch_token, desktop, origins.watch, tls, framers, listing=False)
    out = [f"# seat {route.seat}, expires {route.expires}\n"]
    if origins.watch == origins.desktop:  # one port for both: two paths on one server
        out.append(_server(origins.desktop, pub, tls, seat + watch))
    else:
        out += [_server(origins.desktop, pub, tls, seat), _server(origins.watch, pub, tls, watch)]
    for port, origin in origins.ports.items():
        target = f"{route.address}:{int(port)}"
        out.append(_server(origin, pub, tls, _proxy(links.port_key(route.token, port), target, origin, tls)))
    return "".join(out)


def page_file(page: ClassPage) -> str:
    return f"{stamp(page.expires)}-{links.host_id(page.class_token)}.html"


def class_conf(page: ClassPage, pub: links.Public, tls: bool) -> str:
    """The class page's route: its own server by name, or a location on the listen port."""
    _check(page, page.class_token)
    location = (f"    location = {links.class_path(page.class_token)} {{\n"
                f"        root {CONF_DIR}/pages;\n        try_files /{page_file(page)} =404;\n"
                "        default_type text/html;\n        charset utf-8;\n"
                # ssi drops Last-Modified; with etag off and no-store nothing can be revalidated.
                "        ssi on;\n        etag off;\n        if_modified_since off;\n"
                + headers(tls, policy=classpage.policy(page.frames), indent=" " * 8) + "    }\n")
    location += "".join(_help(page, seat, link, tls) for _, seat, link in page.helps)
    if pub.by_port:
        return location
    return _server(links.class_origin(pub.origin(), page.class_token), pub, tls, location)


def audit_file(workshop: str) -> str:
    return f"{AUDIT_DIR}/{workshop}.log"


def _help(page: ClassPage, seat: str, link: str, tls: bool) -> str:
    """A seat's help link behind the class page: a redirect to the seat's full-control link (its
    password in the fragment, as `lab help` prints it), logged as it is followed."""
    if not _LABEL.fullmatch(seat) or not _LABEL.fullmatch(page.workshop):
        raise DocpipeError(f"seat {seat[:80]!r} of {page.workshop[:80]!r} is not a DNS label")
    if not _LINK.fullmatch(link):
        raise DocpipeError(f"the help link of seat {seat} is malformed")
    return (f"    location = {links.class_path(page.class_token)}{classpage.HELP}{seat} {{\n"
            f"        access_log {CONF_DIR}/{audit_file(page.workshop)} docpipe_help;\n"
            f'        return 302 "{link}";\n'
            + headers(tls, policy="default-src 'none'; frame-ancestors 'none'", indent=" " * 8) + "    }\n")


def files(routes: Sequence[Route], pages: Sequence[ClassPage], pub: links.Public, tls: bool) -> dict[str, bytes]:
    """Every file of the gateway's configuration directory but the certificate."""
    out: dict[str, bytes] = {"server.conf": server_conf(pub, tls).encode()}
    for r in routes:
        out[f"servers/{stamp(r.expires)}-{r.seat}.conf"] = seat_conf(r, pub, tls).encode()
    for p in pages:
        where = "classes" if pub.by_port else "servers"
        out[f"{where}/{stamp(p.expires)}-class-{links.host_id(p.class_token)}.conf"] = class_conf(p, pub, tls).encode()
        out[f"pages/{page_file(p)}"] = classpage.class_html(
            p.workshop, p.tiles, p.frames, dict(p.progress), {label: seat for label, seat, _ in p.helps}).encode()
    return out
