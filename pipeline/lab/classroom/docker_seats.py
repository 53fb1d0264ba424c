"""The Docker seat backend: one container per seat, each on a network of its own, behind the workdir's
lab gateway.

Seats publish no host ports. Everything `lab status` and `lab up` again need lives on the
containers themselves (labels for routing, links and expiry, env for the VNC passwords), so there
is no state file to lose. At expiry docpipe's own desktop base stops itself (its entrypoint reads
DOCPIPE_EXPIRES) and the gateway drops its routes; the stopped container stays until the next lab
command (`lab reap`) removes it.
"""

from __future__ import annotations

import dataclasses
import http.client
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.errors import BadInput, DocpipeError
from pipeline.lab.classroom import audit, collect, egress, gateway, homes, idle, links, nginx, seatnet, tls
from pipeline.lab.classroom.backend import ClassRequest, SeatInfo, SeatRequest, now_rfc3339
from pipeline.lab.image.bases import BaseProfile, profile_for
from pipeline.lab.image.spec import DEFAULT_BASE
from pipeline.lab.labels import (
    BASE_LABEL,
    CLASS_LABEL,
    CLASS_TOKEN_LABEL,
    DESKTOP_PORT_LABEL,
    EGRESS_LABEL,
    EMAIL_LABEL,
    EXPIRES_LABEL,
    GATEWAY_PORT_LABEL,
    LISTEN_LABEL,
    MANAGED_LABEL,
    MANAGER,
    NAME_LABEL,
    ORIGIN_LABEL,
    PORT_POOL_LABEL,
    PORTS_LABEL,
    PUBLIC_URL_LABEL,
    REVISION_LABEL,
    SEAT_APP,
    SEAT_LABEL,
    STUDENT_LABEL,
    TOKEN_LABEL,
    WATCH_LABEL,
    WORKDIR_LABEL,
    WORKSHOP_LABEL,
)
from pipeline.lab.settings import LabSettings

SHM_SIZE = "256m"
READY_TIMEOUT = 90.0
NO_IPV6 = {"net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}


def _profile(labels: dict[str, str]) -> BaseProfile:
    return profile_for(labels.get(BASE_LABEL) or DEFAULT_BASE, "")


def _env(container: Any) -> dict[str, str]:
    pairs = container.attrs.get("Config", {}).get("Env") or []
    return dict(e.split("=", 1) for e in pairs if "=" in e)


def _ports(labels: dict[str, str]) -> tuple[int, ...]:
    return tuple(int(p) for p in labels.get(PORTS_LABEL, "").split(",") if p.strip().isdigit())


def _offset(labels: dict[str, str]) -> int:
    value = labels.get(GATEWAY_PORT_LABEL, "")
    return int(value) if value.isdigit() else 0


def _origins(labels: dict[str, str]) -> links.Origins:
    return links.gateway_origins(labels.get(PUBLIC_URL_LABEL, ""), labels.get(TOKEN_LABEL, ""),
                                 labels.get(WATCH_LABEL, ""), _ports(labels), _offset(labels))


def seat_request(container: Any) -> SeatRequest:
    """A running seat as `lab up` decided it: its labels and its passwords."""
    labels, env = container.labels or {}, _env(container)
    profile = _profile(labels)
    return SeatRequest(seat=labels.get(SEAT_LABEL, ""), student=labels.get(STUDENT_LABEL, ""),
                       email=labels.get(EMAIL_LABEL, ""), token=labels.get(TOKEN_LABEL, ""),
                       watch_token=labels.get(WATCH_LABEL, ""),
                       password=next((env[k] for k in profile.password_env if k in env), ""),
                       view_password=env.get("VNC_VIEW_PASSWORD", ""), expires=labels.get(EXPIRES_LABEL, ""))


def seat_info(container: Any, now: str | None = None) -> SeatInfo:
    labels = container.labels or {}
    seat = seat_request(container)
    origins = _origins(labels)
    if "VNC_PASSWORD" in _profile(labels).password_env:
        url = links.desktop_url(origins.desktop, seat.token, seat.password)
        watch_url = links.desktop_url(origins.watch, seat.watch_token, seat.view_password, view_only=True)
    else:  # a webtop asks for its own basic-auth password
        url, watch_url = links.seat_base(origins.desktop, seat.token), links.seat_base(origins.watch, seat.watch_token)
    agent = _profile(labels).agent_port
    status = container.status
    if seat.expires and seat.expires <= (now or now_rfc3339()):
        status = "expired"
    return SeatInfo(workshop=labels.get(WORKSHOP_LABEL, ""), seat=seat.seat, student=seat.student, url=url,
                    password=seat.password, watch_url=watch_url,
                    ports={str(p): links.port_url(o, seat.token, p) for p, o in origins.ports.items()},
                    container=container.name, expires=seat.expires, status=status,
                    image=container.attrs.get("Config", {}).get("Image", ""),
                    gateway=labels.get(PUBLIC_URL_LABEL, ""),
                    files_url=links.files_url(origins.desktop, seat.token) if agent else "",
                    progress_url=links.progress_url(origins.desktop, seat.token) if agent else "",
                    origin=labels.get(ORIGIN_LABEL, ""))


class _Connection(http.client.HTTPSConnection):
    """HTTPS to `address` while naming `host` (TLS server name and Host): the gateway's own listen
    address, probed before any DNS record points at it."""

    def __init__(self, host: str, port: int, address: str, context: ssl.SSLContext | None) -> None:
        super().__init__(host, port, timeout=3, context=context)
        self.address, self.plain = address, context is None

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        if not self.plain:
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)  # type: ignore[attr-defined]


class DockerBackend:
    """Seats as containers on this host's Docker Engine, reached through the workdir's gateway."""

    name = "docker"

    def __init__(self, settings: LabSettings, workdir: Path, *, client: Any = None,
                 on_line: Callable[[str], None] | None = None) -> None:
        from pipeline.lab.image import engine

        self.settings = settings
        self.workdir = Path(workdir)
        self.lab = gateway.lab_id(self.workdir)
        self.client = client if client is not None else engine.client()
        self.on_line = on_line
        self.ca: Path | None = None
        self._new_homes: list[str] = []  # homes the running `up` made: dropped again if it rolls back

    # ------------------------------------------------------------ containers
    def _containers(self, **labels: str) -> list[Any]:
        wanted = [f"{NAME_LABEL}={SEAT_APP}", f"{WORKDIR_LABEL}={self.lab}", *(f"{k}={v}" for k, v in labels.items())]
        found = self.client.containers.list(all=True, filters={"label": wanted})
        return sorted(found, key=lambda c: ((c.labels or {}).get(WORKSHOP_LABEL, ""), c.name))

    def status(self, workshop: str | None = None) -> list[SeatInfo]:
        now = now_rfc3339()
        found = self._containers(**({WORKSHOP_LABEL: workshop} if workshop else {}))
        return [seat_info(c, now) for c in found]

    def seat_requests(self, class_id: str) -> list[SeatRequest]:
        return [seat_request(c) for c in self._containers(**{CLASS_LABEL: class_id})]

    def class_token(self, class_id: str) -> str:
        """The running class's page token, so adding seats keeps the instructor's link."""
        for c in self._containers(**{CLASS_LABEL: class_id}):
            return str((c.labels or {}).get(CLASS_TOKEN_LABEL, ""))
        return ""

    def class_url(self, cls: ClassRequest) -> str:
        return links.class_url(links.class_origin(cls.public_url, cls.class_token), cls.class_token)

    def _name(self, class_id: str, seat: str) -> str:
        """A seat's container and network name: the workdir's lab id keeps two workdirs apart."""
        return f"docpipe-{self.lab}-{class_id}-{seat}"[:120]

    # ------------------------------------------------------------ the gateway
    def _gateway(self, cls: ClassRequest, others: list[Any]) -> gateway.Gateway:
        """The gateway this class needs; the running one when it serves the same address."""
        pub = links.public(cls.public_url)
        want = gateway.Gateway(self.lab, str(self.workdir.resolve()), self.settings.listen, cls.public_url,
                               not self.settings.insecure_http, 0)
        old = gateway.get(self.client, want.name)
        labels = (old.labels or {}) if old is not None else {}
        if pub.by_port:  # the seat ports are published once, when the gateway is made
            pool = int(labels.get(PORT_POOL_LABEL) or 0) if labels.get(PUBLIC_URL_LABEL) == cls.public_url else 0
            want = dataclasses.replace(want, pool=pool or self.settings.max_seats * links.seat_ports(cls.ports))
        if old is not None and gateway.current(self.client, want) is None and others:
            names = ", ".join(sorted({(c.labels or {}).get(WORKSHOP_LABEL, "") for c in others}))
            raise DocpipeError(f"this workdir's lab gateway serves {labels.get(PUBLIC_URL_LABEL, '?')} on "
                               f"{labels.get(LISTEN_LABEL, '?')} for {names}: `docpipe lab down` them first, "
                               "or keep the same --listen, --public-url and TLS")
        return want

    def _pem(self, public_url: str, until: str) -> tls.Pem | None:
        import datetime as dt

        s = self.settings
        if s.insecure_http:
            return None
        if s.tls_cert and s.tls_key:
            return tls.configured(s.tls_cert, s.tls_key)
        end = dt.datetime.strptime(until, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
        pem = tls.local_cert(self.workdir / "lab" / "ca", links.public(public_url).host, until=end)
        self.ca = pem.ca
        return pem

    def _files(self, public_url: str) -> dict[str, bytes]:
        """The gateway's whole configuration: every live seat of this workdir, its class pages, and
        the egress proxy when a class asked for it."""
        now = now_rfc3339()
        routes: list[nginx.Route] = []
        classes: dict[str, tuple[str, list[tuple[str, str]], list[str], str]] = {}
        internet: list[str] = []
        helps: dict[str, list[tuple[str, str, str]]] = {}
        for c in self._containers():
            labels = c.labels or {}
            if labels.get(EXPIRES_LABEL, "") <= now or c.status != "running":
                continue
            address = (c.attrs.get("NetworkSettings", {}).get("Networks") or {}).get(c.name, {}).get("IPAddress")
            if not address:
                continue
            profile, ct = _profile(labels), labels.get(CLASS_TOKEN_LABEL, "")
            routes.append(nginx.Route(
                seat=f"{labels.get(WORKSHOP_LABEL, '')}-{labels.get(SEAT_LABEL, '')}", token=labels[TOKEN_LABEL],
                watch_token=labels[WATCH_LABEL], address=address,
                desktop_port=int(labels.get(DESKTOP_PORT_LABEL, profile.desktop_port)), ports=_ports(labels),
                expires=labels[EXPIRES_LABEL], class_token=ct, offset=_offset(labels), agent_port=profile.agent_port))
            if labels.get(EGRESS_LABEL) == "internet":
                internet.append(address)
            if ct:
                info = seat_info(c, now)
                page = classes.setdefault(ct, (info.workshop, [], [], ""))
                page[1].append((info.student or info.seat, info.watch_url))
                page[2].append(_origins(labels).watch)
                classes[ct] = (page[0], page[1], page[2], max(page[3], info.expires))
                try:
                    helps.setdefault(ct, []).append((info.student or info.seat, info.seat, audit.help_url(info.url)))
                except BadInput:  # a webtop's link carries no password: the page shows the command
                    pass
        pages = [nginx.ClassPage(ct, ws, tuple(tiles), tuple(frames), end, self._progress(ws), tuple(helps.get(ct, ())))
                 for ct, (ws, tiles, frames, end) in sorted(classes.items())]
        pub = links.public(public_url)
        files = nginx.files(routes, pages, pub, not self.settings.insecure_http)
        if internet:
            listen_host = gateway.split_listen(self.settings.listen)[0]
            files["egress.conf"] = egress.squid_conf(internet, egress.host_addresses([pub.host, listen_host])).encode()
        return files

    def _progress(self, workshop: str) -> tuple[tuple[str, str], ...]:
        """The class page's line per tile from the last `lab progress` (progress.summaries)."""
        from pipeline.lab.classroom import progress

        lines = progress.summaries(self.workdir, workshop)
        infos = [seat_info(c) for c in self._containers(**{WORKSHOP_LABEL: workshop})]
        return tuple(sorted((i.student or i.seat, lines[i.seat]) for i in infos if i.seat in lines))

    def refresh_pages(self) -> None:
        """Rewrite the gateway's pages (after `lab progress`)."""
        self._refresh()

    def _configure(self, gw: Any, public_url: str, pem: tls.Pem | None = None) -> None:
        files = self._files(public_url)
        if pem is not None:
            files["tls.crt"], files["tls.key"] = pem.cert, pem.key
        gateway.configure(gw, files)

    def _refresh(self) -> None:
        """Rewrite the routes after seats went away (the gateway keeps its certificate)."""
        gw = gateway.get(self.client, f"docpipe-lab-{self.lab}")
        if gw is not None and gw.status == "running":
            self._configure(gw, (gw.labels or {}).get(PUBLIC_URL_LABEL, ""))

    def serve_gateway(self, public_url: str, until: str, ports: tuple[int, ...] = ()) -> Any:
        """The workdir's gateway, running and routing every live seat, made when missing: `lab serve`
        needs it before it has any seat (the gateway routes /start/ to it). `ports`: the most
        workshop ports a seat of it will have (origins by port: the gateway's pool is sized for them)."""
        probe = ClassRequest(workshop="", class_id="", class_token="", image="", revision="", desktop_port=0,
                             ports=ports, memory=0, cpus=0.0, public_url=public_url)
        want = self._gateway(probe, self._containers())
        old = gateway.current(self.client, want)
        if old is not None and old.status == "running" and gateway.has_launcher_mount(old):
            return old
        others = [(c.labels or {}).get(EXPIRES_LABEL, "") for c in self._containers()]
        pem = self._pem(public_url, max([until, *others]))
        gw = gateway.ensure(self.client, want, timeout=self.settings.build_timeout, on_line=self.on_line)
        self._join_all(gw)
        self._configure(gw, public_url, pem)
        return gw

    # ------------------------------------------------------------ lifecycle
    def up(self, cls: ClassRequest) -> list[SeatInfo]:
        from docker.errors import APIError

        mine = {(c.labels or {}).get(SEAT_LABEL, ""): c for c in self._containers(**{CLASS_LABEL: cls.class_id})}
        others = [c for c in self._containers() if (c.labels or {}).get(CLASS_LABEL) != cls.class_id]
        want = self._gateway(cls, others + list(mine.values()))
        until = max([s.expires for s in cls.seats] + [(c.labels or {}).get(EXPIRES_LABEL, "") for c in others])
        pem = self._pem(cls.public_url, until)
        gw = gateway.ensure(self.client, want, timeout=self.settings.build_timeout, on_line=self.on_line)
        wanted = {s.seat for s in cls.seats}
        for name, c in mine.items():
            if name not in wanted:
                self._remove(c, gw)
        self._join_all(gw)
        self._wake([c for name, c in mine.items() if name in wanted])
        image_labels = self.client.images.get(cls.image).labels or {}
        profile = _profile(image_labels)
        taken = [(c, _offset(c.labels or {}), len(_ports(c.labels or {}))) for c in self._containers()]
        started: list[Any] = []
        self._new_homes = []
        try:
            # One at a time: four at a time measured no faster (20 seats: 12.2 s against 11.9 s).
            for seat in cls.seats:
                if seat.seat not in mine:
                    offset = self._offset(want, cls, taken) if want.pool else 0
                    started.append(self._start(cls, seat, image_labels, profile, gw, offset))
                    taken.append((started[-1], offset, len(cls.ports)))
            self._configure(gw, cls.public_url, pem)
        except (APIError, DocpipeError) as exc:
            for c in started:  # all or nothing: no half-started class
                self._remove(c, gw)
            for home in self._new_homes:  # nor the homes made for it (old ones keep their work)
                homes.drop_volume(self.client, home)
            self._refresh()
            if isinstance(exc, DocpipeError):
                raise
            detail = " ".join(str(getattr(exc, "explanation", None) or exc).split())[:300]
            raise DocpipeError(f"starting seats of {cls.workshop} failed: {detail}") from None
        infos = [seat_info(c) for c in self._containers(**{CLASS_LABEL: cls.class_id})]
        self._wait_ready(infos)
        return infos

    def _wake(self, seats: list[Any]) -> None:
        """Start again the seats `lab reap --idle` stopped (their links, network and home are kept)."""
        now = now_rfc3339()
        for c in seats:
            if c.status != "running" and (c.labels or {}).get(EXPIRES_LABEL, "") > now:
                c.start()
                c.reload()

    def _offset(self, want: gateway.Gateway, cls: ClassRequest, taken: list[tuple[Any, int, int]]) -> int:
        """The first run of free seat ports on the gateway for one more seat of `cls`."""
        used = {o + i for _, o, n in taken if o for i in range(1 + n)}
        need = links.seat_ports(cls.ports)
        for start in range(1, want.pool - need + 2):
            if not used & set(range(start, start + need)):
                return start
        raise DocpipeError(f"the lab gateway's {want.pool} seat ports are all taken: `docpipe lab down` a class "
                           "of this workdir first (or raise [lab] max_seats and start the gateway again)")

    def _join_all(self, gw: Any) -> None:
        """A gateway made again joins every live seat's network."""
        from docker.errors import APIError, NotFound

        gw.reload()
        joined = set(gw.attrs.get("NetworkSettings", {}).get("Networks") or {})
        for c in self._containers():
            if c.name not in joined:
                try:
                    seatnet.join(self.client.networks.get(c.name), gw)
                except (APIError, NotFound):
                    continue  # a seat without its network cannot be routed; reap removes it

    def _start(self, cls: ClassRequest, seat: SeatRequest, image_labels: dict[str, str], profile: BaseProfile,
               gw: Any, offset: int) -> Any:
        name = self._name(cls.class_id, seat.seat)
        network = seatnet.create(self.client, name, {MANAGED_LABEL: MANAGER, WORKDIR_LABEL: self.lab,
                                                     CLASS_LABEL: cls.class_id, SEAT_LABEL: seat.seat},
                                 self.settings.subnet_pool)
        try:
            seatnet.join(network, gw)
            gateway_address, address = seatnet.addresses(network)
            env = {k: seat.password for k in profile.password_env}
            env.update(dict(profile.extra_env))
            if "VNC_PASSWORD" in profile.password_env:
                env["VNC_VIEW_PASSWORD"] = seat.view_password
            env["DOCPIPE_EXPIRES"] = seat.expires  # docpipe's desktop base stops itself then
            if profile.agent_port:  # the seat agent's upload limit ([lab] upload_limit)
                env["DOCPIPE_UPLOAD_LIMIT"] = str(self.settings.upload_limit_bytes)
            if cls.egress == "internet":
                proxy = f"http://{gateway_address}:{egress.PORT}"
                env.update(http_proxy=proxy, https_proxy=proxy, HTTP_PROXY=proxy, HTTPS_PROXY=proxy,
                           no_proxy="localhost,127.0.0.1", NO_PROXY="localhost,127.0.0.1")
            labels = {
                NAME_LABEL: SEAT_APP, MANAGED_LABEL: MANAGER, WORKSHOP_LABEL: cls.workshop, WORKDIR_LABEL: self.lab,
                CLASS_LABEL: cls.class_id, SEAT_LABEL: seat.seat, EXPIRES_LABEL: seat.expires,
                TOKEN_LABEL: seat.token, WATCH_LABEL: seat.watch_token, CLASS_TOKEN_LABEL: cls.class_token,
                STUDENT_LABEL: seat.student, EMAIL_LABEL: seat.email, PUBLIC_URL_LABEL: cls.public_url,
                PORTS_LABEL: ",".join(str(p) for p in cls.ports), DESKTOP_PORT_LABEL: str(cls.desktop_port),
                BASE_LABEL: image_labels.get(BASE_LABEL) or DEFAULT_BASE, REVISION_LABEL: cls.revision,
                EGRESS_LABEL: cls.egress, GATEWAY_PORT_LABEL: str(offset) if offset else "",
            }
            # The student's home is a named volume of its own: it outlives the container.
            home, new_home = homes.ensure_volume(self.client, self.lab, cls.workshop,
                                                 homes.owner(seat.seat, seat.student, cls.origin))
            if new_home:
                self._new_homes.append(home)
            if cls.origin:
                labels[ORIGIN_LABEL] = cls.origin
            return self.client.containers.run(
                cls.image, detach=True, name=name, environment=env, labels=labels, network=name,
                volumes={home: {"bind": profile.home, "mode": "rw"}},
                networking_config={name: self.client.api.create_endpoint_config(ipv4_address=address)},
                hostname=seat.seat[:63], mem_limit=cls.memory, memswap_limit=cls.memory,
                nano_cpus=int(cls.cpus * 1e9), shm_size=SHM_SIZE, pids_limit=2048, sysctls=NO_IPV6,
                # docpipe's own base runs as a plain user and needs no capabilities; webtops run
                # an s6 init as root that drops to their user itself (raw sockets they never need).
                security_opt=["no-new-privileges"] if profile.user else None,
                cap_drop=["ALL"] if profile.user else ["NET_RAW"],
            )
        except Exception:
            seatnet.remove(self.client, name, gw)
            raise

    def _remove(self, container: Any, gw: Any | None) -> None:
        from docker.errors import NotFound

        try:
            container.remove(force=True)
        except NotFound:
            pass
        seatnet.remove(self.client, container.name, gw)

    def _fetch(self, url: str, public_url: str, ctx: ssl.SSLContext | None) -> int:
        """The status of GET `url` through the gateway's listen address (not the public name)."""
        parts, pub = urlsplit(url), links.public(public_url)
        host, port = gateway.split_listen(self.settings.listen)
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        port += (parts.port or pub.port) - pub.port
        conn = _Connection(parts.hostname or "", port, host, ctx)
        try:
            conn.request("GET", parts.path or "/")
            return conn.getresponse().status
        finally:
            conn.close()

    def _wait_ready(self, infos: list[SeatInfo]) -> None:
        """Until every seat's desktop page answers through the gateway (our own gateway, probed on
        its listen address, so its certificate is not checked here)."""
        ctx: ssl.SSLContext | None = None
        if not self.settings.insecure_http:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + READY_TIMEOUT
        pending = list(infos)
        while pending and time.monotonic() < deadline:
            info = pending[0]
            try:
                status = self._fetch(info.url.split("vnc.html")[0].split("#")[0], info.gateway, ctx)
                if status < 400 or status == 401:  # a webtop's basic auth answering means it is up
                    pending.pop(0)
                    continue
            except OSError:
                pass
            c = self.client.containers.get(info.container)
            if c.status in ("exited", "dead"):
                # The exit code and the OOM flag say more than the log's last lines, which a
                # desktop that died mid-start often ends with harmless start-up chatter.
                state = c.attrs.get("State", {})
                why = f"exit code {state.get('ExitCode')}" + (", killed for memory" if state.get("OOMKilled") else "")
                tail = c.logs(tail=8).decode("utf-8", errors="replace")
                raise DocpipeError(f"seat {c.name} stopped ({why}): {' '.join(tail.split())[-400:]}")
            time.sleep(0.3)
        if pending:
            raise DocpipeError(f"seat {pending[0].container} did not answer through the gateway within {READY_TIMEOUT:g}s")

    def down(self, workshop: str) -> int:
        gw = gateway.get(self.client, f"docpipe-lab-{self.lab}")
        found = self._containers(**{WORKSHOP_LABEL: workshop})
        for c in found:
            self._remove(c, gw)
        if not self._containers():
            self._drop_networks(gw)
            self.fold_help_log(gw)  # the gateway's volume goes with it
            gateway.remove(self.client, self.lab)  # no class left: no gateway
        else:
            self._refresh()
        return len(found)

    def activity(self, workshop: str | None = None) -> dict[str, idle.Activity]:
        """Each seat's viewers (container name -> Activity), from the seat's own probe file."""
        import datetime as dt

        now = dt.datetime.now(dt.UTC)
        found: dict[str, idle.Activity] = {}
        for c in self._containers(**({WORKSHOP_LABEL: workshop} if workshop else {})):
            state = c.attrs.get("State") or {}
            found[c.name] = idle.activity((c.labels or {}).get(SEAT_LABEL, ""), c.status == "running",
                                          idle.docker_seen(c), idle.started_at(state.get("StartedAt", "")), now)
        return found

    def stop_idle(self, seconds: float) -> list[str]:
        """`lab reap --idle`: stop (never remove) running seats nobody was connected to for `seconds`;
        their home, links and network stay, and `lab up` starts them again."""
        import datetime as dt

        now = dt.datetime.now(dt.UTC)
        stopped = []
        acts = self.activity()
        for c in self._containers():
            a = acts.get(c.name)
            if a is not None and a.running and idle.idle_for(a, now) >= seconds:
                c.stop(timeout=5)
                stopped.append(c.name)
        if stopped:
            self._refresh()
        return stopped

    def collect(self, workshop: str, dest: Path) -> list[collect.Collected]:
        """`lab collect`: every seat's home, one archive each; a failing seat does not stop the rest."""
        from docker.errors import APIError, NotFound

        done: list[collect.Collected] = []
        for c in self._containers(**{WORKSHOP_LABEL: workshop}):
            labels = c.labels or {}
            seat, student, profile = labels.get(SEAT_LABEL, ""), labels.get(STUDENT_LABEL, ""), _profile(labels)
            out = dest / f"{seat}.tar.gz"
            try:
                size = collect.write_archive(out, collect.docker_home_stream(self.client, c, profile.home, profile.user))
                done.append(collect.Collected(seat, student, str(out), size))
            except (APIError, NotFound, DocpipeError, OSError) as exc:
                detail = " ".join(str(getattr(exc, "explanation", None) or exc).split())[:200]
                done.append(collect.Collected(seat, student, "", 0, detail))
        # Homes whose seat is gone (`lab down` before collecting): read through a container that is
        # created, never started, with the home mounted read-only.
        seated = {d.seat for d in done}
        for vol in homes.volumes(self.client, self.lab, workshop):
            seat = (vol.attrs.get("Labels") or {}).get(SEAT_LABEL, "")
            if seat and seat not in seated:
                out = dest / f"{seat}.tar.gz"
                try:
                    size = collect.write_archive(out, self._volume_stream(workshop, vol.name))
                    done.append(collect.Collected(seat, "", str(out), size))
                except (APIError, NotFound, DocpipeError, OSError) as exc:
                    detail = " ".join(str(getattr(exc, "explanation", None) or exc).split())[:200]
                    done.append(collect.Collected(seat, "", "", 0, detail))
        return sorted(done, key=lambda d: d.seat)

    def _volume_stream(self, workshop: str, volume: str) -> Iterator[bytes]:
        """The home in `volume` as a tar stream, read through a helper container that is created
        (never started) with it mounted read-only, and removed once the stream is read or fails."""
        from pipeline.lab.labels import WORKSHOP_IMAGE_LABEL

        images = self.client.images.list(filters={"label": f"{WORKSHOP_IMAGE_LABEL}={workshop}"})
        if not images:
            raise DocpipeError(f"no image of {workshop} on this engine to read its home with")
        image = max(images, key=lambda i: i.attrs.get("Created", ""))
        home = _profile(image.labels or {}).home
        helper = self.client.containers.create(
            image.id, command=["true"], network_disabled=True, volumes={volume: {"bind": home, "mode": "ro"}},
            labels={MANAGED_LABEL: MANAGER, WORKDIR_LABEL: self.lab})
        try:
            stream, _ = helper.get_archive(home)
            yield from stream  # as it comes: a home is never held in memory whole
        finally:
            helper.remove(force=True)

    def purge_homes(self, workshop: str) -> homes.Purged:
        """`lab down --purge`: the workshop's homes too (after its seats are gone)."""
        if self._containers(**{WORKSHOP_LABEL: workshop}):
            raise DocpipeError(f"seats of {workshop} still run: `docpipe lab down {workshop}` first")
        return homes.purge(self.client, self.lab, workshop)

    def fold_help_log(self, gw: Any | None) -> None:
        """The class pages' help links followed since the last lab command, into each workshop's
        audit log (audit.gateway_lines). A gateway that cannot be read keeps its lines for the
        next command: a warning, never a failed command."""
        from docker.errors import APIError

        if gw is None:
            return
        try:
            taken = gateway.take_help_log(gw)
            for workshop, data in sorted(taken.items()):
                students = {i.seat: i.student for i in self.status(workshop)}
                audit.gateway_lines(self.workdir, workshop, data, students)
            gateway.drop_help_log(gw, sorted(taken))
        except (APIError, DocpipeError) as exc:
            if self.on_line is not None:
                self.on_line(f"the gateway's log of help links was not read ({' '.join(str(exc).split())[:200]}); "
                             "the next lab command tries again")

    def reap(self, now: str) -> int:
        gw = gateway.get(self.client, f"docpipe-lab-{self.lab}")
        self.fold_help_log(gw)  # every lab command reaps first: the audit log is current after any
        gone = [c for c in self._containers() if (c.labels or {}).get(EXPIRES_LABEL, "") < now]
        for c in gone:
            self._remove(c, gw)
        self._drop_networks(gw)
        if gone:
            self._refresh()
        return len(gone)

    def _drop_networks(self, gw: Any | None) -> None:
        """Seat networks of this workdir whose seat is gone (a `lab up` interrupted half-way)."""
        live = {c.name for c in self._containers()}
        for net in self.client.networks.list(filters={"label": [f"{WORKDIR_LABEL}={self.lab}"]}):
            if net.name not in live:
                seatnet.remove(self.client, net.name, gw)
