"""Kubernetes objects for one class of seats: pure, no I/O (the client lives in kubernetes.py).

Routing is a host per seat and per workshop port (links.py: `s-<id>.<host>`, `p<port>-<id>.<host>`,
one wildcard TLS secret): plain `pathType: Prefix` rules every ingress controller understands, no
controller-specific rewrite annotation, noVNC served at `/` exactly as the image serves it, and
every seat and every workshop port its own browser origin, so one student's workshop web app
cannot script another seat's page, its own desktop or the instructor's.

The seat agent's pages (files, progress; pipeline/lab/seat/agent.py) are on the desktop's host,
under the desktop's key, as links.files_url / links.progress_url build them: the Ingress sends
that host's links.seat_prefix() to the Service's `agent` port, and the agent itself serves only
its own key's links.seat_path (DOCPIPE_AGENT_PREFIX, the token filled in from the seat's Secret by
the kubelet; compared in constant time). No controller-specific rewrite, and no token in the
Ingress, which more people and controllers may read than the Secrets.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any

import yaml

from pipeline.errors import BadInput
from pipeline.lab.classroom import links
from pipeline.lab.classroom.backend import ClassRequest, SeatInfo, SeatRequest
from pipeline.lab.classroom.egress import BLOCKED
from pipeline.lab.classroom.homes import home_key, owner
from pipeline.lab.image.bases import NOVNC_PROFILE, WEBTOP_PROFILE, BaseProfile
from pipeline.lab.labels import (
    CLASS_LABEL,
    EXPIRES_LABEL,
    HOME_KUBE_LABEL,
    HOST_ANNOTATION,
    LAUNCHER_ORIGIN,
    MANAGED_LABEL,
    MANAGER,
    NAME_LABEL,
    ORIGIN_LABEL,
    REVISION_ANNOTATION,
    SEAT_APP,
    SEAT_LABEL,
    STUDENT_ANNOTATION,
    WORKSHOP_LABEL,
)

K8S_VERSION = "1.31.0"  # the schemas tests validate against (kubernetes-validate ships them)
# The label selector every seat object of docpipe matches (and nothing else on the cluster).
MANAGED = f"{NAME_LABEL}={SEAT_APP},{MANAGED_LABEL}={MANAGER}"

_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_DNS_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
_DIGEST_REF = re.compile(r"[a-z0-9][a-z0-9._\-/:]{0,200}@sha256:[0-9a-f]{64}")
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_MAX_STUDENT = 200  # an annotation, not a page: enough to tell students apart


def _label(value: str, what: str) -> str:
    if not _LABEL.fullmatch(value):
        raise BadInput(f"{what} {value[:80]!r} must be a DNS-1123 label (a-z, 0-9, '-', at most 63)")
    return value


def _digest(text: str, n: int) -> str:
    """Lowercase base32 of sha256: DNS-safe, case-insensitive, fixed length."""
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode().lower().rstrip("=")[:n]


def object_name(class_id: str, seat: str) -> str:
    """A DNS-1035 label (Service names need a leading letter) short enough for pod-name suffixes."""
    base = f"{class_id}-{seat}"
    if len(base) <= 47 and base[0].isalpha():
        return base
    return f"s{_digest(base, 10)}-{base[-36:].strip('-')}"  # the seat end tells people which one it is


def class_name(class_id: str) -> str:
    return class_id if class_id[0].isalpha() and len(class_id) <= 50 else f"c{_digest(class_id, 10)}"


def _profile(desktop_port: int) -> BaseProfile:
    return NOVNC_PROFILE if desktop_port == NOVNC_PROFILE.desktop_port else WEBTOP_PROFILE


def agent_port(cls: ClassRequest) -> int:
    """The seat agent's port in this class's seats; 0 when the base has none (a webtop) or a
    workshop port takes it."""
    port = _profile(cls.desktop_port).agent_port
    return port if port and port not in cls.ports and port != cls.desktop_port else 0


def base_host(settings: Any, public_url: str = "") -> str:
    host = str(getattr(settings, "host", "") or "")
    if not host and public_url:
        from urllib.parse import urlsplit
        host = urlsplit(public_url).hostname or ""
    host = host.lower().rstrip(".")
    if not host or len(host) > 200 or not _DNS_NAME.fullmatch(host):
        raise BadInput(f"lab host {host[:80]!r} must be a DNS name like lab.example.org (seats get s-<id>.<host>)")
    return host


def seat_links(cls: ClassRequest, seat: SeatRequest, host: str) -> tuple[str, str, dict[str, str]]:
    """Desktop, view-only and port links (links.py makes them)."""
    return links.host_links(host, _profile(cls.desktop_port).url_path, seat.token, seat.watch_token, seat.password,
                            seat.view_password, cls.ports)


def _check(cls: ClassRequest) -> None:
    _label(cls.workshop, "workshop")
    _label(cls.class_id, "class id")
    if not _DIGEST_REF.fullmatch(cls.image):
        raise BadInput(f"Kubernetes seats need an image by digest (registry/repo@sha256:...), not {cls.image[:120]!r}")
    if not 0 < cls.desktop_port < 65536 or any(not 0 < p < 65536 for p in cls.ports):
        raise BadInput("lab ports must be between 1 and 65535")
    if cls.memory <= 0 or cls.cpus <= 0:
        raise BadInput("lab memory and cpus must be positive")
    seen: set[str] = set()
    for seat in cls.seats:
        _label(seat.seat, "seat")
        if seat.seat in seen:
            raise BadInput(f"seat {seat.seat!r} appears twice in the class")
        seen.add(seat.seat)
        if not _RFC3339.fullmatch(seat.expires):
            raise BadInput(f"seat expiry {seat.expires[:40]!r} must be RFC 3339 UTC like 2026-12-04T18:00:00Z")


def labels(cls: ClassRequest, seat: str | None = None) -> dict[str, str]:
    out = {NAME_LABEL: SEAT_APP, MANAGED_LABEL: MANAGER, WORKSHOP_LABEL: cls.workshop, CLASS_LABEL: cls.class_id}
    if seat is not None:
        out[SEAT_LABEL] = seat
    if cls.origin:
        out[ORIGIN_LABEL] = cls.origin
    return out


def _meta(name: str, namespace: str, lbls: dict[str, str], ann: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": lbls, "annotations": ann}


def home_claim(cls: ClassRequest, seat: SeatRequest) -> str:
    """The seat's home (PersistentVolumeClaim): a hash of workshop and owner, never the student's
    name; a launcher visitor's home outlives their seat's one-seat class, so no class id in it."""
    scope = "launch" if cls.origin == LAUNCHER_ORIGIN else class_name(cls.class_id)[:40]
    return f"home-{scope}-{home_key(cls.workshop, owner(seat.seat, seat.student, cls.origin))}"


def _home(cls: ClassRequest, seat: SeatRequest, namespace: str, size: str, storage_class: str) -> dict[str, Any]:
    """A PersistentVolumeClaim per seat, kept by `lab down` and reap (they delete other kinds only)."""
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = _label(storage_class, "lab storage_class")
    lbls = {**labels(cls, seat.seat), HOME_KUBE_LABEL: home_key(cls.workshop, owner(seat.seat, seat.student, cls.origin))}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(home_claim(cls, seat), namespace, lbls, {}), "spec": spec}


# The init container copies the image's home into the empty claim once (the marker file says it
# did), as Docker seeds an empty named volume; a fixed command, nothing from the doc in it.
SEEDED = ".docpipe-seeded"
_SEED = f'test -e /mnt/home/{SEEDED} || {{ cp -a "$HOME_DIR"/. /mnt/home/ && touch /mnt/home/{SEEDED}; }}'


def _seat_objects(cls: ClassRequest, seat: SeatRequest, namespace: str, host: str, home_size: str = "1Gi",
                  storage_class: str = "", upload_limit: int = 0) -> list[dict[str, Any]]:
    name = object_name(cls.class_id, seat.seat)
    lbls = labels(cls, seat.seat)
    # The student's name is untrusted text: only ever an annotation value, which YAML/JSON escape.
    ann = {EXPIRES_LABEL: seat.expires, STUDENT_ANNOTATION: seat.student[:_MAX_STUDENT],
           REVISION_ANNOTATION: cls.revision[:64], HOST_ANNOTATION: host}
    profile = _profile(cls.desktop_port)
    secret = {
        "apiVersion": "v1", "kind": "Secret", "metadata": _meta(name, namespace, lbls, ann), "type": "Opaque",
        "stringData": {"password": seat.password, "view-password": seat.view_password,
                       "token": seat.token, "watch-token": seat.watch_token},
    }
    env: list[dict[str, Any]] = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": name, "key": "password"}}}
        for var in profile.password_env
    ]
    env.append({"name": "VNC_VIEW_PASSWORD", "valueFrom": {"secretKeyRef": {"name": name, "key": "view-password"}}})
    env.extend({"name": k, "value": v} for k, v in profile.extra_env)
    agent = agent_port(cls)
    if agent:  # the seat agent serves its own key's pages only (see the module's docstring)
        env.append({"name": "DOCPIPE_AGENT_KEY", "valueFrom": {"secretKeyRef": {"name": name, "key": "token"}}})
        # $(VAR): the kubelet puts the variable above in (dependent environment variables).
        env.append({"name": "DOCPIPE_AGENT_PREFIX", "value": links.seat_path("$(DOCPIPE_AGENT_KEY)").rstrip("/")})
        if upload_limit:  # [lab] upload_limit, as on Docker
            env.append({"name": "DOCPIPE_UPLOAD_LIMIT", "value": str(upload_limit)})
    millicpu = f"{max(1, round(cls.cpus * 1000))}m"
    resources = {"cpu": millicpu, "memory": str(cls.memory)}
    probe = {"tcpSocket": {"port": "desktop"}, "periodSeconds": 10}
    non_root = profile.user is not None  # webtops start s6 as root and drop to their user themselves
    security: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                "seccompProfile": {"type": "RuntimeDefault"}}
    if non_root:
        security.update(runAsNonRoot=True, runAsUser=profile.uid, runAsGroup=profile.gid)
    else:
        # s6 needs to switch users; everything else stays dropped.
        security["capabilities"]["add"] = ["CHOWN", "SETUID", "SETGID", "DAC_OVERRIDE", "FOWNER"]
    ports = [{"name": "desktop", "containerPort": cls.desktop_port, "protocol": "TCP"}]
    ports += [{"name": f"p{p}", "containerPort": p, "protocol": "TCP"} for p in cls.ports if p != cls.desktop_port]
    if agent:
        ports.append({"name": "agent", "containerPort": agent, "protocol": "TCP"})
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, namespace, lbls, ann),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one desktop per student, never two at once
            "selector": {"matchLabels": {CLASS_LABEL: cls.class_id, SEAT_LABEL: seat.seat}},
            "template": {
                # No expiry here: extending a class must not restart (and wipe) a student's desktop.
                "metadata": {"labels": lbls},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "initContainers": [{
                        "name": "home", "image": cls.image, "imagePullPolicy": "IfNotPresent",
                        "command": ["sh", "-c", _SEED], "env": [{"name": "HOME_DIR", "value": profile.home}],
                        "resources": {"requests": resources, "limits": resources},
                        "securityContext": security,
                        "volumeMounts": [{"name": "home", "mountPath": "/mnt/home"}],
                    }],
                    "containers": [{
                        "name": "desktop", "image": cls.image, "imagePullPolicy": "IfNotPresent",
                        "env": env, "ports": ports,
                        "resources": {"requests": resources, "limits": resources},
                        "readinessProbe": {**probe, "initialDelaySeconds": 2, "failureThreshold": 3},
                        "livenessProbe": {**probe, "initialDelaySeconds": 30, "failureThreshold": 6},
                        "securityContext": security,
                        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"},
                                         {"name": "home", "mountPath": profile.home}],
                    }],
                    "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
                                {"name": "home", "persistentVolumeClaim": {"claimName": home_claim(cls, seat)}}],
                },
            },
        },
    }
    # The home's files belong to the student's group (changed only when the volume's root does
    # not match: a large home is not walked at every start).
    if non_root:
        pod: dict[str, Any] = deployment["spec"]["template"]["spec"]  # type: ignore[index]
        pod["securityContext"] = {"fsGroup": profile.gid, "fsGroupChangePolicy": "OnRootMismatch"}
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": _meta(name, namespace, lbls, ann),
        "spec": {"type": "ClusterIP", "selector": {CLASS_LABEL: cls.class_id, SEAT_LABEL: seat.seat},
                 "ports": [{"name": p["name"], "port": p["containerPort"], "targetPort": p["name"],
                            "protocol": "TCP"} for p in ports]},
    }
    # The pod waits for its claim (Pending) if the claim comes after it: one apply loop suffices.
    return [secret, deployment, service, _home(cls, seat, namespace, home_size, storage_class)]


def ingress_rules(cls: ClassRequest, host: str) -> list[dict[str, Any]]:
    def path(prefix: str, service: str, port: str) -> dict[str, Any]:
        return {"path": prefix, "pathType": "Prefix", "backend": {"service": {"name": service, "port": {"name": port}}}}

    def rule(hostname: str, service: str, port: str) -> dict[str, Any]:
        return {"host": hostname, "http": {"paths": [path("/", service, port)]}}

    rules = []
    agent = agent_port(cls)
    for seat in cls.seats:
        svc = object_name(cls.class_id, seat.seat)
        desktop = rule(links.seat_host(seat.token, host), svc, "desktop")
        if agent:  # the desktop's host only: the view-only link never reaches the files page
            desktop["http"]["paths"].append(path(links.seat_prefix(), svc, "agent"))
        rules.append(desktop)
        rules.append(rule(links.seat_host(seat.watch_token, host), svc, "desktop"))
        rules += [rule(links.port_host(seat.token, p, host), svc, f"p{p}") for p in cls.ports if p != cls.desktop_port]
    return rules


def class_objects(cls: ClassRequest, settings: Any, host: str) -> list[dict[str, Any]]:
    """The Ingress and NetworkPolicy shared by a class's seats."""
    namespace = settings.namespace
    name = class_name(cls.class_id)
    lbls = labels(cls)
    ann = {REVISION_ANNOTATION: cls.revision[:64]}
    if cls.seats:
        ann[EXPIRES_LABEL] = max(s.expires for s in cls.seats)
    spec: dict[str, Any] = {"rules": ingress_rules(cls, host)}
    if settings.ingress_class:
        spec["ingressClassName"] = _label(settings.ingress_class, "lab ingress_class")
    if settings.tls_secret:
        spec["tls"] = [{"hosts": [f"*.{host}"], "secretName": _label(settings.tls_secret, "lab tls_secret")}]
    ingress = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": _meta(name, namespace, lbls, ann), "spec": spec}
    ports = [{"port": cls.desktop_port, "protocol": "TCP"}]
    ports += [{"port": p, "protocol": "TCP"} for p in cls.ports if p != cls.desktop_port]
    if agent_port(cls):
        ports.append({"port": agent_port(cls), "protocol": "TCP"})
    policy = {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta(name, namespace, lbls, ann),
        "spec": {
            "podSelector": {"matchLabels": {NAME_LABEL: SEAT_APP, CLASS_LABEL: cls.class_id}},
            # Egress listed with no rule denies every destination: seats reach nothing but what
            # egress_rules allows, never each other, the nodes or the cluster's services.
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {
                "kubernetes.io/metadata.name": _label(settings.ingress_namespace, "lab ingress_namespace")}}}],
                "ports": ports}],
            **({"egress": egress_rules()} if cls.egress == "internet" else {}),
        },
    }
    return [ingress, policy]


def egress_rules() -> list[dict[str, Any]]:
    """`[lab] egress = "internet"`: the internet but no private, loopback, link-local or shared range
    (where nodes, pods, services and cloud metadata live), as the Docker gateway's proxy refuses;
    and the cluster's DNS, to resolve names."""
    dns = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
           "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    return [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(BLOCKED)}}]},
            {"to": [dns], "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}]


def manifests(cls: ClassRequest, settings: Any) -> list[dict[str, Any]]:
    """Every object of the class: per seat a Secret, Deployment, Service and its home (a
    PersistentVolumeClaim); then Ingress and NetworkPolicy."""
    _check(cls)
    _label(settings.namespace, "lab namespace")
    host = base_host(settings, cls.public_url)
    out: list[dict[str, Any]] = []
    for seat in cls.seats:
        out += _seat_objects(cls, seat, settings.namespace, host, getattr(settings, "home_size", "1Gi"),
                             getattr(settings, "storage_class", "") or "", getattr(settings, "upload_limit_bytes", 0))
    # An Ingress without rules is invalid: a class of no seats has no class objects either.
    return out + class_objects(cls, settings, host) if cls.seats else out


def seat_info(cls: ClassRequest, seat: SeatRequest, host: str, status: str, agent: bool | None = None) -> SeatInfo:
    """`agent`: whether the seat's pod runs the agent behind its Service (default: this class's base has it)."""
    url, watch, ports = seat_links(cls, seat, host)
    origin = f"https://{links.seat_host(seat.token, host)}"
    has_agent = bool(agent_port(cls)) if agent is None else agent
    return SeatInfo(workshop=cls.workshop, seat=seat.seat, student=seat.student, url=url, password=seat.password,
                    watch_url=watch, ports=ports, container=object_name(cls.class_id, seat.seat),
                    expires=seat.expires, status=status, image=cls.image, gateway=f"https://{host}",
                    files_url=links.files_url(origin, seat.token) if has_agent else "",
                    progress_url=links.progress_url(origin, seat.token) if has_agent else "",
                    origin=cls.origin)


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared label dicts stay written out: anchors confuse readers of the manifests


def dump_yaml(objects: Iterable[dict[str, Any]]) -> str:
    """A multi-document stream `kubectl apply -f -` takes; the safe dumper quotes whatever a name holds."""
    return yaml.dump_all(list(objects), Dumper=_Dumper, sort_keys=True, explicit_start=True,
                         allow_unicode=False, default_flow_style=False, width=4096)
