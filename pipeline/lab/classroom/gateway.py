"""The one lab gateway on a Docker host: nginx routing each seat's path (links.seat_path) to the seat
on a private network.

nginx (Debian's `nginx-light`) rather than Caddy: it is in bookworm main, so it builds on the
same offline base as the desktops, its config is a plain template docpipe writes, and a
`nginx -s reload` swaps routes without dropping open websockets.
Seats publish no host ports: they sit on an internal network that only the gateway joins.
"""

from __future__ import annotations

import html
import io
import tarfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import DocpipeError
from pipeline.lab.classroom import links
from pipeline.lab.labels import GATEWAY_LABEL, LISTEN_LABEL, MANAGED_LABEL, MANAGER, TLS_LABEL

GATEWAY_NAME = "docpipe-lab-gateway"
NETWORK_NAME = "docpipe-lab"
GATEWAY_REPO = "docpipe/lab-gateway"
INTERNAL_PORT = 8443
CONF_DIR = "/etc/docpipe"


@dataclass(frozen=True)
class Route:
    """One seat as the gateway sees it."""
    seat: str
    token: str
    watch_token: str
    address: str  # the seat's IP on the private network
    desktop_port: int
    ports: tuple[int, ...]
    expires: str  # RFC 3339 UTC


@dataclass(frozen=True)
class ClassPage:
    class_token: str
    workshop: str
    tiles: tuple[tuple[str, str], ...]  # (label, view-only desktop URL)


def _recipe() -> tuple[dict[str, bytes], str]:
    from pipeline.lab.image import dockerfile

    root = dockerfile.templates_dir() / "gateway"
    files = {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}
    return files, f"{GATEWAY_REPO}:{dockerfile.content_hash(files)}"


def ensure_image(client: Any, *, timeout: float, on_line: Callable[[str], None] | None = None) -> str:
    from pipeline.lab.image import dockerfile, engine

    files, ref = _recipe()
    if not engine.image_exists(client, ref):
        engine.build(client, dockerfile.make_tar(files, {"gateway.sh": 0o755}), [ref], timeout=timeout,
                     on_line=on_line, what="the lab gateway")
    return ref


def ensure_network(client: Any) -> Any:
    found = client.networks.list(names=[NETWORK_NAME])
    exact = [n for n in found if n.name == NETWORK_NAME]
    if exact:
        return exact[0]
    # internal: seats reach nothing outside, and nothing but the gateway reaches them.
    return client.networks.create(NETWORK_NAME, driver="bridge", internal=True,
                                  labels={MANAGED_LABEL: MANAGER})


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def get(client: Any) -> Any | None:
    from docker.errors import NotFound

    try:
        return client.containers.get(GATEWAY_NAME)
    except NotFound:
        return None


def ensure(client: Any, *, listen: str, tls: bool, timeout: float,
           on_line: Callable[[str], None] | None = None) -> Any:
    """The running gateway, started when missing (or when its listen address/TLS mode changed)."""
    from docker.errors import APIError

    image = ensure_image(client, timeout=timeout, on_line=on_line)
    network = ensure_network(client)
    want = {GATEWAY_LABEL: "1", LISTEN_LABEL: listen, TLS_LABEL: "1" if tls else "0"}
    current = get(client)
    if current is not None:
        labels = current.labels or {}
        if (current.status == "running" and all(labels.get(k) == v for k, v in want.items())
                and current.attrs.get("Config", {}).get("Image") == image):
            return current
        _remove(client, current)
    host, port = _split_listen(listen)
    try:
        container = client.containers.create(
            image, name=GATEWAY_NAME, detach=True, labels={**want, MANAGED_LABEL: MANAGER},
            ports={f"{INTERNAL_PORT}/tcp": (host, port)}, restart_policy={"Name": "unless-stopped"},
            mem_limit=256 * 1024**2)
        network.connect(container)
        return container
    except APIError as exc:
        raise DocpipeError(f"starting the lab gateway on {listen} failed: {' '.join(str(exc).split())[:300]}") from None


def _remove(client: Any, container: Any, timeout: float = 30.0) -> None:
    """Remove `container`, also when the engine is already removing or restarting it."""
    import time

    from docker.errors import APIError, NotFound

    try:
        container.remove(force=True)
        return
    except NotFound:
        return
    except APIError as exc:
        if exc.status_code != 409:  # 409: a removal already in progress, or a restart: wait it out
            raise DocpipeError(f"removing the old lab gateway failed: {' '.join(str(exc).split())[:300]}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.containers.get(container.id).remove(force=True)
        except NotFound:
            return
        except APIError:
            pass
        time.sleep(0.5)
    raise DocpipeError("the old lab gateway container could not be removed; try `docker rm -f docpipe-lab-gateway`")


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            if name.endswith((".key", ".crt")):
                info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def server_conf(tls: bool) -> str:
    if not tls:
        return f"listen {INTERNAL_PORT};\n"
    return (f"listen {INTERNAL_PORT} ssl;\nssl_certificate {CONF_DIR}/tls.crt;\n"
            f"ssl_certificate_key {CONF_DIR}/tls.key;\nssl_protocols TLSv1.2 TLSv1.3;\n")


def _location(path: str, target: str) -> str:
    # Tokens are url-safe base64 from `secrets` and addresses come from the engine; both are
    # checked again (seat_conf) because they end up inside nginx's config language.
    return (f"location {path} {{\n    proxy_pass http://{target}/;\n"
            "    proxy_set_header Upgrade $http_upgrade;\n    proxy_set_header Connection $connection_upgrade;\n"
            "    proxy_set_header Host $host;\n}\n")


def seat_conf(route: Route) -> str:
    import re

    for value in (route.token, route.watch_token):
        if not re.fullmatch(r"[A-Za-z0-9_-]{22,}", value):
            raise DocpipeError(f"seat {route.seat} has a malformed token")
    if not re.fullmatch(r"[0-9a-fA-F:.]+", route.address):
        raise DocpipeError(f"seat {route.seat} has no address on {NETWORK_NAME}")
    out = [f"# seat {route.seat}, expires {route.expires}\n"]
    for port in route.ports:
        out.append(_location(links.port_path(route.token, int(port)), f"{route.address}:{int(port)}"))
    out.append(_location(links.seat_path(route.token), f"{route.address}:{route.desktop_port}"))
    out.append(_location(links.seat_path(route.watch_token), f"{route.address}:{route.desktop_port}"))
    return "".join(out)


def class_html(page: ClassPage) -> str:
    """The instructor's grid: every seat's view-only desktop; names are escaped, never markup."""
    tiles = "\n".join(
        f'<figure><iframe src="{html.escape(url)}" title="{html.escape(label)}"></iframe>'
        f"<figcaption>{html.escape(label)}</figcaption></figure>" for label, url in page.tiles)
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(page.workshop)}: class view</title>"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'self'; script-src 'none'\">"
            "<style>body{margin:0;font-family:sans-serif;display:grid;"
            "grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:8px;padding:8px}"
            "figure{margin:0}iframe{width:100%;height:280px;border:1px solid #999}</style></head>\n"
            f"<body>\n{tiles}\n</body></html>\n")


def _class_conf(page: ClassPage) -> str:
    import re

    if not re.fullmatch(r"[A-Za-z0-9_-]{22,}", page.class_token):
        raise DocpipeError(f"class {page.workshop} has a malformed token")
    return (f"location = {links.class_path(page.class_token)} {{\n    default_type text/html;\n"
            f"    root {CONF_DIR}/pages;\n    try_files /{page.class_token}.html =404;\n}}\n")


def _stamp(expires: str) -> str:
    """RFC 3339 UTC -> YYYYmmddHHMMSS, which the gateway's expiry loop compares as a number."""
    return "".join(ch for ch in expires if ch.isdigit())[:14]


def configure(gateway: Any, routes: Sequence[Route], pages: Sequence[ClassPage], *, tls: bool,
              cert: bytes = b"", key: bytes = b"") -> None:
    """Write every route and page, replacing the old ones, and reload nginx."""
    files: dict[str, bytes] = {"server.conf": server_conf(tls).encode()}
    if tls and cert and key:  # else the gateway keeps the certificate it has
        files["tls.crt"], files["tls.key"] = cert, key
    for r in routes:
        files[f"seats/{_stamp(r.expires)}-{r.seat}.conf"] = seat_conf(r).encode()
    for p in pages:
        files[f"seats/99999999999999-class-{p.class_token}.conf"] = _class_conf(p).encode()
        files[f"pages/{p.class_token}.html"] = class_html(p).encode()
    gateway.reload()
    running = gateway.status == "running"
    if running:  # clear the old routes first, so a removed seat's token stops routing
        _exec(gateway, ["sh", "-c", f"rm -rf {CONF_DIR}/seats {CONF_DIR}/pages && mkdir -p {CONF_DIR}/seats {CONF_DIR}/pages"])
    if not gateway.put_archive(CONF_DIR, _tar(files)):
        raise DocpipeError("writing the lab gateway's configuration failed")
    if not running:
        gateway.start()
        gateway.reload()
        return
    _exec(gateway, ["nginx", "-t", "-q"])
    _exec(gateway, ["nginx", "-s", "reload"])


def _exec(gateway: Any, cmd: list[str], attempts: int = 5) -> None:
    """Run `cmd` in the gateway; tried again briefly, since the gateway's own expiry loop may be
    reloading nginx (or nginx still starting) at the same moment."""
    import time

    for attempt in range(attempts):
        code, out = gateway.exec_run(cmd)
        if code == 0:
            return
        if attempt + 1 < attempts:
            time.sleep(0.5 * (attempt + 1))
    text = " ".join(out.decode("utf-8", errors="replace").split())[-300:] or "no output"
    raise DocpipeError(f"the lab gateway refused its configuration ({cmd[0]} exited {code}): {text}")


def remove(client: Any) -> bool:
    from docker.errors import APIError

    gw = get(client)
    if gw is not None:
        gw.remove(force=True)
    for net in client.networks.list(names=[NETWORK_NAME]):
        if net.name == NETWORK_NAME:
            try:
                net.remove()
            except APIError:
                pass  # something else still uses it
    return gw is not None


def ca_hint(ca: Path) -> str:
    return (f"students' browsers trust the gateway once they import the local CA {ca} "
            "(or set [lab] tls_cert/tls_key to a certificate they already trust)")
