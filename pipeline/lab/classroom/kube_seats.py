"""The Kubernetes seat backend: server-side apply of kube_manifests' objects through the official client.

Every object is found again by label selector, so there is no state file: `up` applies the class's
exact set and deletes the seats of that class not in it, `down` and `reap` delete by selector.
`reap --idle` scales an idle seat's Deployment to 0 replicas (its Secret, Service, routes and home
stay) and the next `up`, which applies `replicas: 1` again, starts it with the same links. `collect`,
the idle probe and `lab progress` run a fixed command in a seat's pod through the API server's exec
(WebSocket, the official client's stream API, binary frames): `pod_exec`.
"""

from __future__ import annotations

import json
import os
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.errors import BadInput, DocpipeError
from pipeline.lab.classroom import collect, homes, idle
from pipeline.lab.classroom.backend import ClassRequest, SeatInfo, SeatRequest
from pipeline.lab.classroom.kube_manifests import MANAGED, base_host, class_name, dump_yaml, manifests, seat_info
from pipeline.lab.labels import (
    CLASS_LABEL,
    EXPIRES_LABEL,
    HOME_KUBE_LABEL,
    HOST_ANNOTATION,
    MANAGER,
    ORIGIN_LABEL,
    SEAT_LABEL,
    STUDENT_ANNOTATION,
    WORKSHOP_LABEL,
)

# kind -> (API prefix, plural); the only resources docpipe touches (templates/kubernetes/rbac.yaml).
RESOURCES: dict[str, tuple[str, str]] = {
    "Secret": ("/api/v1", "secrets"),
    "Service": ("/api/v1", "services"),
    "Pod": ("/api/v1", "pods"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),  # homes: kept by down and reap
    "Deployment": ("/apis/apps/v1", "deployments"),
    "Ingress": ("/apis/networking.k8s.io/v1", "ingresses"),
    "NetworkPolicy": ("/apis/networking.k8s.io/v1", "networkpolicies"),
}
SEAT_KINDS = ("Deployment", "Service", "Secret")
CLASS_KINDS = ("Ingress", "NetworkPolicy")
APPLY = "application/apply-patch+yaml"
MERGE = "application/merge-patch+json"
CONTAINER = "desktop"  # the seat's container (kube_manifests): where exec runs
EXEC_TIMEOUT = 600.0  # seconds a command in a seat may take (a large home's tar)
EXEC_JOBS = 8  # idle probes at once (one exec each)
_RETRY = (429, 500, 502, 503, 504)
_ATTEMPTS = 4


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    import base64

    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def dry_run_yaml(cls: ClassRequest, settings: Any) -> str:
    """What `lab up --backend kubernetes --dry-run -o yaml` prints: no cluster needed."""
    return dump_yaml(manifests(cls, settings))


class ExecFailed(DocpipeError):
    """A command in a seat exited with a status not allowed, or exec itself failed (code None)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def _exec_error(exc: Exception) -> str:
    """The API server's answer to a refused exec (its Status message), in one line."""
    text = str(getattr(exc, "reason", "") or exc)
    body = text.rsplit("-+-+-", 1)[-1].strip()  # websocket-client: "Handshake status 404 ... -+-+- {body}"
    try:
        detail = json.loads(body)
        text = f"{detail.get('code', '')} {detail.get('reason', '')}: {detail.get('message', '')}"
    except ValueError:
        pass
    return " ".join(text.split())[:300]


def pod_exec(api: Any, namespace: str, pod: str, argv: Sequence[str], *, ok: Sequence[int] = (0,),
             timeout: float = EXEC_TIMEOUT, on_stderr: list[bytes] | None = None) -> Iterator[bytes]:
    """`argv` in the pod's seat container through the API server's exec (WebSocket, binary frames),
    its stdout as it arrives; at the end, ExecFailed unless the exit status is in `ok` (stderr's
    tail in the message). No shell: argv is fixed by docpipe, never from a doc or a student."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import stream

    # stream() swaps call_api on the ApiClient it is given for the length of the call: on a shared
    # one, another thread's plain request (a list, a scale) would go out as a WebSocket. A client of
    # its own per exec (same configuration: server, token, TLS) keeps them apart.
    core = k8s.CoreV1Api(k8s.ApiClient(api.configuration))
    try:
        ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=CONTAINER, command=list(argv),
                    stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False, binary=True)
    except ApiException as exc:
        raise ExecFailed(f"kubernetes: exec in {pod}: {_exec_error(exc)}") from None
    err = b""
    try:
        deadline = time.monotonic() + timeout
        while ws.is_open():
            if time.monotonic() > deadline:
                raise ExecFailed(f"{argv[0]} in {pod} took longer than {timeout:g}s")
            ws.update(timeout=1)
            # Taken straight from the client's buffers (kubernetes 37's WSClient._channels): its
            # read_stdout/read_stderr read on from the socket when a channel is empty, and frames
            # read then could be dropped below. It also keeps a copy of all output (read_all):
            # dropped each time, a home can be large, but never once the closing Status (channel
            # 3), which returncode reads, is in.
            channels = ws._channels
            out = channels.pop(1, b"")
            err = (err + channels.pop(2, b""))[-2000:]
            if 3 not in channels:
                ws.read_all()
            if out:
                yield out
        try:
            code = ws.returncode
        except (TypeError, KeyError, ValueError):
            raise ExecFailed(f"exec in {pod} ended without an exit status") from None
    finally:
        ws.close()
    if on_stderr is not None:
        on_stderr.append(err)
    if code not in ok:
        tail = " ".join(err.decode("utf-8", errors="replace").split())[-200:]
        raise ExecFailed(f"{argv[0]} in {pod} exited with status {code}" + (f": {tail}" if tail else ""), code)


def _parse_time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"time {value[:40]!r} is not RFC 3339 like 2026-12-04T18:00:00Z") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _api_client(context: str) -> Any:
    """KUBECONFIG / ~/.kube/config (with --context), else the in-cluster service account."""
    from kubernetes import client, config

    paths = os.environ.get("KUBECONFIG", "")
    have_file = any(Path(p).is_file() for p in paths.split(os.pathsep) if p) or \
        (not paths and Path("~/.kube/config").expanduser().is_file())
    try:
        if have_file or not os.environ.get("KUBERNETES_SERVICE_HOST"):
            # The client reads KUBECONFIG once at import; read it now, as kubectl does per command.
            config_file = paths or str(Path("~/.kube/config").expanduser())
            return config.new_client_from_config(config_file=config_file, context=context or None)  # type: ignore[no-untyped-call]
        cfg = client.Configuration()
        config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        return client.ApiClient(cfg)
    except config.ConfigException as exc:
        raise DocpipeError(f"kubernetes configuration: {str(exc)[:200]}") from None


def _home_of(dep: dict[str, Any]) -> str:
    """Where the seat's home claim is mounted in its container (kube_manifests: the volume "home")."""
    container = dep["spec"]["template"]["spec"]["containers"][0]
    mounts = [m["mountPath"] for m in container.get("volumeMounts") or [] if m.get("name") == "home"]
    if not mounts:
        raise DocpipeError(f"seat {dep['metadata']['name']} has no home mounted")
    return str(mounts[0])


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, settings: Any, api_client: Any = None, *, workdir: Path | None = None) -> None:
        self.settings = settings
        self.workdir = workdir
        self.namespace: str = settings.namespace
        self.api = api_client if api_client is not None else _api_client(getattr(settings, "context", ""))
        self.requests = 0  # for bench/lab_k8s.py: every HTTP request made

    # -------------------------------------------------------------------------- wire
    def _path(self, kind: str, name: str = "", sub: str = "") -> str:
        prefix, plural = RESOURCES[kind]
        path = f"{prefix}/namespaces/{urllib.parse.quote(self.namespace)}/{plural}"
        path = f"{path}/{urllib.parse.quote(name, safe='')}" if name else path
        return f"{path}/{sub}" if sub else path

    def _call(self, method: str, kind: str, name: str = "", query: list[tuple[str, str]] | None = None,
              body: Any = None, content_type: str | None = None, missing_ok: bool = False,
              sub: str = "") -> dict[str, Any]:
        import urllib3

        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        serialized = self.api.param_serialize(method=method, resource_path=self._path(kind, name, sub),
                                              query_params=query or [], header_params=headers, body=body,
                                              auth_settings=["BearerToken"])
        for attempt in range(_ATTEMPTS):
            self.requests += 1
            try:
                response = self.api.call_api(*serialized, _request_timeout=30)
                response.read()
                status, data = response.status, response.data
            except urllib3.exceptions.HTTPError as exc:
                if attempt + 1 == _ATTEMPTS:
                    raise DocpipeError(f"kubernetes: {method} {kind}: {type(exc).__name__}") from None
            else:
                if status < 300:
                    return json.loads(data) if data else {}
                if status == 404 and missing_ok:
                    return {}
                if status not in _RETRY or attempt + 1 == _ATTEMPTS:
                    raise DocpipeError(self._error(method, kind, name, status, data))
            time.sleep(0.25 * 2 ** attempt)
        raise AssertionError("unreachable")

    @staticmethod
    def _error(method: str, kind: str, name: str, status: int, data: bytes) -> str:
        try:
            detail = json.loads(data)
            reason, message = detail.get("reason", ""), detail.get("message", "")
        except ValueError:
            reason, message = "", ""
        # A Secret's rejection may quote its values: never print it.
        message = "" if kind == "Secret" else f": {str(message)[:300]}"
        return f"kubernetes: {method} {kind} {name or '(collection)'} failed with {status} {reason}{message}"

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: docpipe owns exactly the fields it sends; unchanged input changes nothing."""
        # The field manager is docpipe, as on every object's managed-by label.
        query = [("fieldManager", MANAGER), ("force", "true"), ("fieldValidation", "Strict")]
        return self._call("PATCH", obj["kind"], obj["metadata"]["name"], query, body=obj, content_type=APPLY)

    def list_objects(self, kind: str, selector: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token = ""
        while True:
            query = [("labelSelector", selector), ("limit", "500")] + ([("continue", token)] if token else [])
            page = self._call("GET", kind, query=query)
            items += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return items

    def delete_all(self, kind: str, selector: str) -> None:
        query = [("labelSelector", selector), ("propagationPolicy", "Background")]
        self._call("DELETE", kind, query=query)

    # -------------------------------------------------------------------------- contract
    def up(self, cls: ClassRequest) -> list[SeatInfo]:
        objects = manifests(cls, self.settings)
        host = base_host(self.settings, cls.public_url)
        for obj in objects:
            self.apply(obj)
        selector = f"{MANAGED},{CLASS_LABEL}={cls.class_id}"
        keep = ",".join(sorted(s.seat for s in cls.seats))
        stale = f"{selector},{SEAT_LABEL} notin ({keep})" if keep else selector
        for kind in SEAT_KINDS:
            self.delete_all(kind, stale)
        if not cls.seats:
            for kind in CLASS_KINDS:
                self.delete_all(kind, selector)
            self._drop_page(cls.class_id)
            return []
        ready = self._ready(selector)
        infos = [seat_info(cls, s, host, "running" if s.seat in ready else "starting") for s in cls.seats]
        self._write_page(cls, infos)
        return infos

    # -------------------------------------------------------------------------- the class page
    # No docpipe server runs in the cluster to serve it, so the class page is a file beside the
    # seats CSV (a file:// page is an origin of its own, like no seat's): what the Docker gateway
    # serves at c-<id>.<host>, gone with the class.
    def _page(self, class_id: str) -> Path | None:
        return self.workdir / "lab" / f"{class_id}-class.html" if self.workdir is not None else None

    def _write_page(self, cls: ClassRequest, infos: list[SeatInfo]) -> None:
        from pipeline.atomic import atomic_write
        from pipeline.lab.classroom.classpage import class_html

        page = self._page(cls.class_id)
        if page is not None:
            frames = [urllib.parse.urlsplit(i.watch_url)._replace(path="", query="", fragment="").geturl() for i in infos]
            html = class_html(cls.workshop, [(i.student or i.seat, i.watch_url) for i in infos], frames)
            atomic_write(page, html.encode(), mode=0o600)  # it holds every view-only password

    def _drop_page(self, class_id: str) -> None:
        page = self._page(class_id)
        if page is not None:
            page.unlink(missing_ok=True)

    def class_url(self, cls: ClassRequest) -> str:
        page = self._page(cls.class_id)
        return page.resolve().as_uri() if page is not None and page.exists() else ""

    def class_token(self, class_id: str) -> str:
        return ""  # the page is a file: no token names it

    def _ready(self, selector: str) -> set[str]:
        """Seats (by label) with a pod whose Ready condition is True."""
        ready = set()
        for pod in self.list_objects("Pod", selector):
            conditions = (pod.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions):
                ready.add(pod["metadata"]["labels"].get(SEAT_LABEL, ""))
        return ready

    def seat_requests(self, class_id: str) -> list[SeatRequest]:
        """The class's seats from their Secrets (tokens, passwords) and annotations (expiry, student):
        a Kubernetes link has no token to read back, only a hash of it."""
        out = []
        for secret in self.list_objects("Secret", f"{MANAGED},{CLASS_LABEL}={class_id}"):
            meta = secret["metadata"]
            data = _decoded(secret)
            ann = meta.get("annotations") or {}
            out.append(SeatRequest(seat=(meta.get("labels") or {}).get(SEAT_LABEL, ""),
                                   student=ann.get(STUDENT_ANNOTATION, ""), email="", token=data.get("token", ""),
                                   watch_token=data.get("watch-token", ""), password=data.get("password", ""),
                                   view_password=data.get("view-password", ""), expires=ann.get(EXPIRES_LABEL, "")))
        return sorted(out, key=lambda s: s.seat)

    def status(self, workshop: str | None = None) -> list[SeatInfo]:
        selector = MANAGED + (f",{WORKSHOP_LABEL}={workshop}" if workshop else "")
        deployments = self.list_objects("Deployment", selector)
        secrets = {s["metadata"]["name"]: s for s in self.list_objects("Secret", selector)}
        ready = {(p["metadata"]["labels"].get(CLASS_LABEL), p["metadata"]["labels"].get(SEAT_LABEL))
                 for p in self.list_objects("Pod", selector) if any(
                     c.get("type") == "Ready" and c.get("status") == "True"
                     for c in (p.get("status") or {}).get("conditions") or [])}
        now = datetime.now(UTC)
        out = []
        for dep in deployments:
            info = self._seat_of(dep, secrets.get(dep["metadata"]["name"]), ready, now)
            if info is not None:
                out.append(info)
        return sorted(out, key=lambda i: (i.workshop, i.seat))

    def _seat_of(self, dep: dict[str, Any], secret: dict[str, Any] | None,
                 ready: set[tuple[str | None, str | None]], now: datetime) -> SeatInfo | None:
        meta = dep["metadata"]
        lbls, ann = meta.get("labels") or {}, meta.get("annotations") or {}
        if secret is None:
            return None  # half-deleted seat: `up` or `down` finishes it
        data = _decoded(secret)
        container = dep["spec"]["template"]["spec"]["containers"][0]
        named = {p.get("name", ""): p["containerPort"] for p in container.get("ports") or []}
        workshop_ports = tuple(v for k, v in named.items() if k.startswith("p") and k[1:].isdigit())
        cls = ClassRequest(workshop=lbls.get(WORKSHOP_LABEL, ""), class_id=lbls.get(CLASS_LABEL, ""),
                           class_token="", image=container.get("image", ""), revision="",
                           desktop_port=named.get("desktop", 0), ports=workshop_ports, memory=1, cpus=1,
                           public_url="", origin=lbls.get(ORIGIN_LABEL, ""))
        seat = SeatRequest(seat=lbls.get(SEAT_LABEL, ""), student=ann.get(STUDENT_ANNOTATION, ""), email="",
                           token=data.get("token", ""), watch_token=data.get("watch-token", ""),
                           password=data.get("password", ""), view_password=data.get("view-password", ""),
                           expires=ann.get(EXPIRES_LABEL, ""))
        if seat.expires and _parse_time(seat.expires) < now:
            state = "expired"
        elif dep["spec"].get("replicas", 1) == 0:
            state = "stopped"  # by `lab reap --idle`; `lab up` starts it again
        else:
            state = "running" if (cls.class_id, seat.seat) in ready else "starting"
        return seat_info(cls, seat, ann.get(HOST_ANNOTATION, ""), state, agent="agent" in named)

    # -------------------------------------------------------------------------- inside the seats
    def _pods(self, selector: str) -> dict[tuple[str, str], dict[str, Any]]:
        """(class, seat) -> its Running pod."""
        out = {}
        for pod in self.list_objects("Pod", selector):
            if (pod.get("status") or {}).get("phase") == "Running":
                lbls = pod["metadata"].get("labels") or {}
                out[(lbls.get(CLASS_LABEL, ""), lbls.get(SEAT_LABEL, ""))] = pod
        return out

    @staticmethod
    def _key(dep: dict[str, Any]) -> tuple[str, str]:
        lbls = dep["metadata"].get("labels") or {}
        return lbls.get(CLASS_LABEL, ""), lbls.get(SEAT_LABEL, "")

    def collect(self, workshop: str, dest: Path) -> list[collect.Collected]:
        """`lab collect`: tar of each seat's home, run in its pod (as the seat's user, nothing
        followed outside the home), streamed over exec into collect.write_archive's checks; a
        failing seat is reported and the others are still collected."""
        selector = f"{MANAGED},{WORKSHOP_LABEL}={workshop}"
        pods = self._pods(selector)
        done: list[collect.Collected] = []
        for dep in sorted(self.list_objects("Deployment", selector), key=lambda d: self._key(d)[1]):
            class_id, seat = self._key(dep)
            student = (dep["metadata"].get("annotations") or {}).get(STUDENT_ANNOTATION, "")
            pod = pods.get((class_id, seat))
            out = dest / f"{seat}.tar.gz"
            if pod is None:
                why = "stopped (`lab reap --idle`)" if dep["spec"].get("replicas", 1) == 0 else "not running yet"
                done.append(collect.Collected(seat, student, "", 0, f"seat is {why}: `docpipe lab up {workshop}` "
                                              "starts it, then collect again"))
                continue
            try:
                stream = pod_exec(self.api, self.namespace, pod["metadata"]["name"], collect.tar_command(_home_of(dep)),
                                  ok=(0, 1))  # 1: a file changed while tar read it (the archive is still whole)
                size = collect.write_archive(out, stream)
                done.append(collect.Collected(seat, student, str(out), size))
            except (DocpipeError, OSError) as exc:
                done.append(collect.Collected(seat, student, "", 0, " ".join(str(exc).split())[:200]))
        # Homes whose seat is gone (`lab down`, or past its ttl): reading a claim needs a pod, which
        # docpipe's role may not create; said, not skipped in silence.
        seated = {d.seat for d in done}
        claims = self.list_objects("PersistentVolumeClaim", f"{selector},{HOME_KUBE_LABEL}")
        for seat in sorted({(c["metadata"].get("labels") or {}).get(SEAT_LABEL, "") for c in claims} - seated - {""}):
            done.append(collect.Collected(seat, "", "", 0, "no seat mounts this home any more (it is kept): "
                                          f"`docpipe lab up {workshop}` with the same roster mounts it again"))
        return done

    def _seen(self, pod: str) -> int | None:
        """The epoch in idle.SEEN_FILE (None when nobody was ever connected: no file yet)."""
        try:
            data = b"".join(pod_exec(self.api, self.namespace, pod, ["cat", idle.SEEN_FILE], timeout=30))
        except ExecFailed as exc:
            if exc.code == 1:  # cat: no such file
                return None
            raise
        return idle.parse_seen(data[:64])

    def _activity(self, workshop: str | None) -> tuple[dict[str, idle.Activity], set[str]]:
        """Each seat's viewers (Deployment name -> Activity) and the seats whose probe could not be
        read (exec refused or failed): those are never taken for idle."""
        selector = MANAGED + (f",{WORKSHOP_LABEL}={workshop}" if workshop else "")
        pods = self._pods(selector)
        now = datetime.now(UTC)
        deployments = self.list_objects("Deployment", selector)

        def one(dep: dict[str, Any]) -> tuple[str, idle.Activity | None]:
            pod = pods.get(self._key(dep))
            seat = self._key(dep)[1]
            created = _parse_time(dep["metadata"].get("creationTimestamp") or now.isoformat())
            if pod is None:
                return dep["metadata"]["name"], idle.activity(seat, False, None, created, now)
            started = _parse_time((pod.get("status") or {}).get("startTime") or now.isoformat())
            try:
                seen = self._seen(pod["metadata"]["name"])
            except DocpipeError:
                return dep["metadata"]["name"], None
            return dep["metadata"]["name"], idle.activity(seat, True, seen, started, now)

        found: dict[str, idle.Activity] = {}
        unknown: set[str] = set()
        if deployments:
            with ThreadPoolExecutor(max_workers=min(EXEC_JOBS, len(deployments))) as pool:
                for name, act in pool.map(one, deployments):
                    if act is None:
                        unknown.add(name)
                    else:
                        found[name] = act
        return found, unknown

    def activity(self, workshop: str | None = None) -> dict[str, idle.Activity]:
        """`lab status`'s connected / last_seen per seat (a seat whose probe failed has neither)."""
        return self._activity(workshop)[0]

    def stop_idle(self, seconds: float) -> list[str]:
        """`lab reap --idle`: scale to 0 replicas the running seats nobody was connected to for
        `seconds`; Secret, Service, routes and home stay, so `lab up` starts them with the same links."""
        now = datetime.now(UTC)
        acts, _ = self._activity(None)
        stopped = []
        for name, a in sorted(acts.items()):
            if a.running and idle.idle_for(a, now) >= seconds:
                self._call("PATCH", "Deployment", name, [("fieldManager", MANAGER)], body={"spec": {"replicas": 0}},
                           content_type=MERGE, sub="scale")
                stopped.append(name)
        return stopped

    def down(self, workshop: str) -> int:
        selector = f"{MANAGED},{WORKSHOP_LABEL}={workshop}"
        deployments = self.list_objects("Deployment", selector)
        for kind in SEAT_KINDS + CLASS_KINDS:
            self.delete_all(kind, selector)
        for class_id in {d["metadata"]["labels"].get(CLASS_LABEL, "") for d in deployments} | {workshop}:
            self._drop_page(class_id)
        return len(deployments)

    def purge_homes(self, workshop: str) -> homes.Purged:
        """`lab down --purge`: the workshop's homes (claims) too; the bytes are their capacities."""
        selector = f"{MANAGED},{WORKSHOP_LABEL}={workshop},{HOME_KUBE_LABEL}"
        claims = self.list_objects("PersistentVolumeClaim", selector)
        if claims:
            self.delete_all("PersistentVolumeClaim", selector)
        size = sum(homes.quantity_bytes(((c.get("status") or {}).get("capacity") or {}).get("storage")
                                        or c["spec"]["resources"]["requests"]["storage"]) for c in claims)
        return homes.Purged(len(claims), size)

    def reap(self, now: str) -> int:
        moment = _parse_time(now)
        deployments = self.list_objects("Deployment", MANAGED)
        expired: dict[str, set[str]] = {}
        remaining: set[str] = set()
        for dep in deployments:
            meta = dep["metadata"]
            class_id, seat = meta["labels"].get(CLASS_LABEL, ""), meta["labels"].get(SEAT_LABEL, "")
            when = (meta.get("annotations") or {}).get(EXPIRES_LABEL)
            if when and _parse_time(when) < moment:
                expired.setdefault(class_id, set()).add(seat)
            else:
                remaining.add(class_id)
        for class_id, seats in expired.items():
            selector = f"{MANAGED},{CLASS_LABEL}={class_id},{SEAT_LABEL} in ({','.join(sorted(seats))})"
            for kind in SEAT_KINDS:
                self.delete_all(kind, selector)
            if class_id in remaining:
                self._drop_routes(class_id, {name for name in self._names(class_id, seats)})
            else:
                for kind in CLASS_KINDS:
                    self.delete_all(kind, f"{MANAGED},{CLASS_LABEL}={class_id}")
                self._drop_page(class_id)
        return sum(len(s) for s in expired.values())

    @staticmethod
    def _names(class_id: str, seats: set[str]) -> list[str]:
        from pipeline.lab.classroom.kube_manifests import object_name
        return [object_name(class_id, s) for s in seats]

    def _drop_routes(self, class_id: str, services: set[str]) -> None:
        """Re-apply the class's Ingress without the reaped seats' hosts (rules are an atomic list)."""
        ingress = self._call("GET", "Ingress", class_name(class_id), missing_ok=True)
        if not ingress:
            return
        spec = dict(ingress.get("spec") or {})
        spec["rules"] = [r for r in spec.get("rules") or []
                         if r["http"]["paths"][0]["backend"]["service"]["name"] not in services]
        meta = ingress["metadata"]
        self.apply({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                    "metadata": {k: meta[k] for k in ("name", "namespace", "labels", "annotations") if k in meta},
                    "spec": spec})
