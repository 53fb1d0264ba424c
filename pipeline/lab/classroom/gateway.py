"""A workdir's lab gateway on a Docker host: one nginx container in front of that workdir's seats.

nginx (Debian's `nginx-light`) rather than Caddy: it is in bookworm main, so it builds on the
same offline base as the desktops, its config is plain text docpipe writes (nginx.py), and a reload
swaps routes without dropping open websockets. Seats publish no host ports: each sits on a network
of its own that only this gateway joins (seatnet.py).

Everything is per workdir (`lab_id`, a short hash of its path, on every name and label), so `lab
up/down/reap` in one workdir never touches another's class; a listen address another workdir's
gateway holds is refused, never taken over. The gateway runs as www-data with no capability, no
new privileges, a pids limit and a read-only root: nginx writes only to tmpfs, and its
configuration lives on a volume of its own (written with put_archive, owned by www-data so the
gateway's expiry loop can remove what has expired).
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import DocpipeError
from pipeline.lab.classroom.nginx import AUDIT_DIR, CONF_DIR, INTERNAL_PORT, LAUNCHER_SOCKET_DIR
from pipeline.lab.labels import (
    GATEWAY_LABEL,
    LISTEN_LABEL,
    MANAGED_LABEL,
    MANAGER,
    PORT_POOL_LABEL,
    PUBLIC_URL_LABEL,
    TLS_LABEL,
    WORKDIR_LABEL,
    WORKDIR_PATH_LABEL,
)

GATEWAY_REPO = "docpipe/lab-gateway"
UID = 33  # www-data in Debian: the gateway's user, owner of its configuration files
PIDS_LIMIT = 256


def lab_id(workdir: Path) -> str:
    """A workdir's short name on the engine (containers, networks, the volume and their labels)."""
    return hashlib.sha256(str(Path(workdir).resolve()).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Gateway:
    """What a workdir's gateway is; a running one with other labels is made again."""
    lab: str
    workdir: str
    listen: str
    public_url: str
    tls: bool
    pool: int  # ports published after the listen port, for seats (0 when origins are host names)

    @property
    def name(self) -> str:
        return f"docpipe-lab-{self.lab}"

    def labels(self) -> dict[str, str]:
        return {GATEWAY_LABEL: "1", MANAGED_LABEL: MANAGER, WORKDIR_LABEL: self.lab, WORKDIR_PATH_LABEL: self.workdir,
                LISTEN_LABEL: self.listen, TLS_LABEL: "1" if self.tls else "0", PUBLIC_URL_LABEL: self.public_url,
                PORT_POOL_LABEL: str(self.pool)}


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


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def _ports(listen: str, pool: int) -> tuple[str, range]:
    host, port = split_listen(listen)
    return host, range(port, port + 1 + pool)


def _clash(a: tuple[str, range], b: tuple[str, range]) -> bool:
    wild = ("0.0.0.0", "::", "")
    return (a[0] == b[0] or a[0] in wild or b[0] in wild) and bool(set(a[1]) & set(b[1]))


def _check_free(client: Any, want: Gateway) -> None:
    """Refuse, in one line, a listen address another workdir's gateway (or an older docpipe's) holds."""
    mine = _ports(want.listen, want.pool)
    for other in client.containers.list(all=True, filters={"label": GATEWAY_LABEL}):
        labels = other.labels or {}
        if labels.get(WORKDIR_LABEL) == want.lab or not labels.get(LISTEN_LABEL):
            continue
        try:
            theirs = _ports(labels[LISTEN_LABEL], int(labels.get(PORT_POOL_LABEL) or 0))
        except ValueError:
            continue
        if _clash(mine, theirs):
            owner = (f"workdir {labels[WORKDIR_PATH_LABEL]}" if labels.get(WORKDIR_PATH_LABEL)
                     else f"an older docpipe (docker rm -f {other.name})")
            raise DocpipeError(f"lab listen address {want.listen} is taken by the lab gateway of {owner}: "
                               "choose another --listen / [lab] listen, or `docpipe lab down` there")


def get(client: Any, name: str) -> Any | None:
    from docker.errors import NotFound

    try:
        return client.containers.get(name)
    except NotFound:
        return None


def current(client: Any, want: Gateway) -> Any | None:
    """This workdir's gateway when it is what `want` says (else None: it must be made again)."""
    gw = get(client, want.name)
    if gw is None:
        return None
    labels = gw.labels or {}
    same = all(labels.get(k) == v for k, v in want.labels().items() if k != WORKDIR_PATH_LABEL)
    return gw if same else None


def ensure(client: Any, want: Gateway, *, timeout: float, on_line: Callable[[str], None] | None = None) -> Any:
    """This workdir's gateway, created (not started: `configure` starts it) when missing or when it
    is not what `want` says."""
    from docker.errors import APIError

    image = ensure_image(client, timeout=timeout, on_line=on_line)
    gw = current(client, want)
    if (gw is not None and gw.attrs.get("Config", {}).get("Image") == image and gw.status in ("running", "created")
            and has_launcher_mount(gw)):
        return gw
    _check_free(client, want)
    old = get(client, want.name)
    if old is not None:
        _remove_container(client, old)
    volume = _volume(client, want)
    host, ports = _ports(want.listen, want.pool)
    try:
        return client.containers.create(
            image, name=want.name, detach=True, labels=want.labels(),
            ports={f"{INTERNAL_PORT + i}/tcp": (host, port) for i, port in enumerate(ports)},
            restart_policy={"Name": "unless-stopped"}, mem_limit=256 * 1024**2,
            read_only=True, tmpfs={"/tmp": "size=64m,mode=1777", "/run": "size=1m,mode=1777"},
            volumes={volume: {"bind": CONF_DIR, "mode": "rw"},
                     str(launcher_socket_dir(Path(want.workdir))): {"bind": LAUNCHER_SOCKET_DIR, "mode": "ro"}},
            cap_drop=["ALL"], security_opt=["no-new-privileges"], pids_limit=PIDS_LIMIT,
            # The gateway sits on every seat's network: it must route nothing between them.
            sysctls={"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.disable_ipv6": "1",
                     "net.ipv6.conf.default.disable_ipv6": "1"})
    except APIError as exc:
        raise DocpipeError(f"starting the lab gateway on {want.listen} failed: "
                           f"{' '.join(str(exc.explanation or exc).split())[:300]}") from None


def launcher_socket_dir(workdir: Path) -> Path:
    """Where `docpipe lab serve` puts its socket: the only thing of the workdir the gateway sees."""
    path = Path(workdir) / "lab" / "launcher-socket"
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)  # the gateway's www-data connects to the socket in it
    return path


def has_launcher_mount(gw: Any) -> bool:
    """A gateway made before `lab serve` existed has no launcher socket: it is made again."""
    return any(m.get("Destination") == LAUNCHER_SOCKET_DIR for m in gw.attrs.get("Mounts") or [])


def add_launcher_route(gw: Any, conf: bytes) -> None:
    """Write the launcher's route (nginx.launcher_conf) beside the seats' and reload: a class's
    `configure` clears only the seats' and class pages' routes, so it stays."""
    from pipeline.lab.classroom.nginx import LAUNCHER_CONF_DIR

    gw.reload()
    if not gw.put_archive(CONF_DIR, _tar({f"{LAUNCHER_CONF_DIR}/start.conf": conf})):
        raise DocpipeError("writing the lab gateway's launcher route failed")
    if gw.status == "running":
        _exec(gw, ["docpipe-gateway", "reload"])


def _volume(client: Any, want: Gateway) -> str:
    from docker.errors import NotFound

    try:
        client.volumes.get(want.name)
    except NotFound:
        client.volumes.create(want.name, labels={GATEWAY_LABEL: "1", MANAGED_LABEL: MANAGER, WORKDIR_LABEL: want.lab})
    return str(want.name)


def _remove_container(client: Any, container: Any, timeout: float = 30.0) -> None:
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
    raise DocpipeError(f"the old lab gateway container could not be removed; try `docker rm -f {container.name}`")


def _tar(files: dict[str, bytes]) -> bytes:
    """The configuration as www-data's files (the gateway's loop removes expired ones)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        # AUDIT_DIR must exist before nginx loads a configuration that logs into it.
        for folder in sorted({str(Path(n).parent) for n in files if "/" in n} | {AUDIT_DIR}):
            info = tarfile.TarInfo(folder)
            info.type, info.mode, info.uid, info.gid = tarfile.DIRTYPE, 0o750, UID, UID
            tar.addfile(info)
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime, info.uid, info.gid = len(data), 0o640, 0, UID, UID
            if name.endswith((".key", ".crt")):
                info.mode = 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def configure(gw: Any, files: dict[str, bytes]) -> None:
    """Replace every route, page and the egress proxy's configuration, then reload; a certificate
    in `files` replaces the gateway's, else it keeps the one it has."""
    gw.reload()
    running = gw.status == "running"
    if running:  # clear the old routes first, so a removed seat's token stops routing
        _exec(gw, ["docpipe-gateway", "clear"])
    if not gw.put_archive(CONF_DIR, _tar(files)):
        raise DocpipeError("writing the lab gateway's configuration failed")
    if not running:
        gw.start()
        gw.reload()
        return
    _exec(gw, ["docpipe-gateway", "reload"])


# The help logs are renamed before they are read and nginx reopens its logs, so a line nginx
# writes meanwhile lands in one file or the other; a `.taken` file an earlier take left (docpipe
# stopped before it removed it) is read again rather than overwritten.
_TAKE = (f'cd {CONF_DIR}/{AUDIT_DIR} 2>/dev/null || exit 0; moved=0; for f in *.log; do '
         '[ -s "$f" ] && [ ! -e "$f.taken" ] && mv "$f" "$f.taken" && moved=1; done; '
         'if [ "$moved" = 1 ]; then nginx -e stderr -q -s reopen; sleep 0.3; fi; ls -1 -- *.taken 2>/dev/null || true')
_TAKEN = ".log.taken"


def take_help_log(gw: Any) -> dict[str, bytes]:
    """The class pages' help links followed since the last take (nginx.AUDIT_FORMAT lines), by
    workshop; `drop_help_log` removes them once they are in the workdir's audit log. With nothing
    followed it costs one exec (every lab command runs it)."""
    from docker.errors import APIError, NotFound

    if gw.status != "running":
        return {}
    code, listed = gw.exec_run(["sh", "-c", _TAKE])
    if code != 0:
        raise DocpipeError(f"reading the gateway's help log failed (exit {code})")
    if not listed.strip():
        return {}
    try:
        stream, _ = gw.get_archive(f"{CONF_DIR}/{AUDIT_DIR}")
    except (NotFound, APIError):
        return {}
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        for member in tar:
            name = Path(member.name).name
            handle = tar.extractfile(member) if member.isfile() and name.endswith(_TAKEN) else None
            if handle is not None:
                out[name[: -len(_TAKEN)]] = handle.read()
    return out


def drop_help_log(gw: Any, workshops: list[str]) -> None:
    if workshops:
        _exec(gw, ["rm", "-f", *(f"{CONF_DIR}/{AUDIT_DIR}/{w}{_TAKEN}" for w in workshops)])


def _exec(gw: Any, cmd: list[str], attempts: int = 5) -> None:
    """Run `cmd` in the gateway; tried again briefly, since the gateway's own expiry loop may be
    reloading nginx (or nginx still starting) at the same moment."""
    import time

    for attempt in range(attempts):
        code, out = gw.exec_run(cmd)
        if code == 0:
            return
        if attempt + 1 < attempts:
            time.sleep(0.5 * (attempt + 1))
    text = " ".join(out.decode("utf-8", errors="replace").split())[-300:] or "no output"
    raise DocpipeError(f"the lab gateway refused its configuration ({cmd[-1]} exited {code}): {text}")


def remove(client: Any, lab: str) -> bool:
    """This workdir's gateway and its configuration volume."""
    from docker.errors import APIError, NotFound

    gw = get(client, f"docpipe-lab-{lab}")
    if gw is not None:
        _remove_container(client, gw)
    try:
        client.volumes.get(f"docpipe-lab-{lab}").remove(force=True)
    except (NotFound, APIError):
        pass
    return gw is not None


def ca_hint(ca: Path) -> str:
    return (f"students' browsers trust the gateway once they import the local CA {ca} "
            "(or set [lab] tls_cert/tls_key to a certificate they already trust)")
