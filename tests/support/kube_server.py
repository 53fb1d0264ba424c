"""A test Kubernetes API server: the subset docpipe uses, strict like a real one. Never imported by pipeline/.

Speaks server-side apply (PATCH application/apply-patch+yaml with fieldManager), GET, LIST and
DELETE / deletecollection by label selector for secrets, services, deployments, ingresses,
networkpolicies, plus pods it simulates one per Deployment with replicas (none at 0 replicas:
`lab reap --idle` scales a seat down with a JSON merge patch, as `kubectl scale` does). Every
applied body is validated strictly (unknown fields are errors) against kubernetes-validate's
schemas of the pinned version; rejections are `Status` objects with the code a real API server uses.

Pods' `exec` subresource is spoken over WebSocket as the API server speaks it to the official
client (subprotocols v5.channel.k8s.io / v4.channel.k8s.io; each binary frame is a channel byte
then data: 1 stdout, 2 stderr, 3 the closing `Status`). What a command prints is the test's:
`server.state.exec_handler(namespace, pod, container, argv) -> (stdout, stderr, exit code)`.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

import jsonschema
import pytest
import yaml
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

K8S_VERSION = "1.31.0"
# (group/version as in the URL, plural) -> (apiVersion, kind)
RESOURCES = {
    ("api/v1", "secrets"): ("v1", "Secret"),
    ("api/v1", "services"): ("v1", "Service"),
    ("api/v1", "pods"): ("v1", "Pod"),
    ("api/v1", "persistentvolumeclaims"): ("v1", "PersistentVolumeClaim"),
    ("apis/apps/v1", "deployments"): ("apps/v1", "Deployment"),
    ("apis/networking.k8s.io/v1", "ingresses"): ("networking.k8s.io/v1", "Ingress"),
    ("apis/networking.k8s.io/v1", "networkpolicies"): ("networking.k8s.io/v1", "NetworkPolicy"),
}
_PATH = re.compile(r"/(api/v1|apis/[a-z0-9.]+/v1)/namespaces/([a-z0-9-]+)/([a-z]+)(?:/([^/]+))?")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_SERVER_FIELDS = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields")
_SCALE = re.compile(r"/apis/apps/v1/namespaces/([a-z0-9-]+)/deployments/([^/]+)/scale")
_EXEC = re.compile(r"/api/v1/namespaces/([a-z0-9-]+)/pods/([^/]+)/exec")
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")  # the server's preference, as the API server's
STDOUT, STDERR, ERROR = 1, 2, 3
_FRAME = 32 * 1024  # stdout is sent in frames of this much, as a real stream arrives in pieces
ExecHandler = Callable[[str, str, str, list[str]], tuple[bytes, bytes, int]]


def no_handler(namespace: str, pod: str, container: str, argv: list[str]) -> tuple[bytes, bytes, int]:
    return b"", f"exec: {argv[0]!r}: executable file not found in $PATH\n".encode(), 127


@functools.cache
def validator(api_version: str, kind: str, version: str = K8S_VERSION) -> jsonschema.protocols.Validator:
    """The strict schema of one kind, resolved once (kubernetes_validate.validate re-reads it per call)."""
    schema_dir = f"v{version}-local-strict"
    group = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    schema = kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{group}.json", version)
    defs = kv_utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", version)
    registry: Registry[Any] = Resource.from_contents(defs) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def schema_errors(obj: dict[str, Any]) -> list[str]:
    errors = validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)
    return [f"{'.'.join(map(str, e.path)) or '<root>'}: {e.message[:200]}" for e in errors]


def parse_selector(text: str) -> list[tuple[str, str, set[str]]]:
    """Label selector: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b)."""
    out: list[tuple[str, str, set[str]]] = []
    for part in re.findall(r"(?:[^,(]|\([^)]*\))+", text or ""):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", part)
        if m:
            out.append((m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",") if v.strip()}))
            continue
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)", part)
        if m:
            out.append((m.group(1), "!=" if m.group(2) == "!=" else "=", {m.group(3)}))
        elif re.fullmatch(r"!?[\w./-]+", part):
            out.append((part.lstrip("!"), "!" if part.startswith("!") else "exists", set()))
        else:
            raise ValueError(f"unable to parse requirement: {part!r}")
    return out


def matches(labels: dict[str, str], selector: list[tuple[str, str, set[str]]]) -> bool:
    for key, op, values in selector:
        have = labels.get(key)
        if op in ("=", "in") and have not in values:
            return False
        if op in ("!=", "notin") and have in values:
            return False
        if (op == "exists") != (have is not None) and op in ("exists", "!"):
            return False
    return True


class Reject(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


class KubeState:
    def __init__(self, ready_after: float = 0.0) -> None:
        self.lock = threading.Lock()
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}  # (plural, ns, name)
        self.applied: dict[tuple[str, str, str], dict[str, Any]] = {}  # last applied config per object
        self.rv = 0
        self.ready_after = ready_after
        self.requests: list[tuple[str, str]] = []
        self.fail_next: list[int] = []  # status codes to answer the next requests with (overload, outage)
        self.exec_handler: ExecHandler = no_handler
        self.execs: list[tuple[str, str, str, list[str]]] = []  # (namespace, pod, container, argv) run

    def _next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def apply(self, plural: str, ns: str, name: str, body: dict[str, Any], manager: str) -> tuple[int, dict[str, Any]]:
        key = (plural, ns, name)
        if self.applied.get(key) == body:
            return 200, self.objects[key]  # nothing changed: same resourceVersion, as SSA does
        meta = body["metadata"]
        old = self.objects.get(key)
        obj = copy.deepcopy(body)
        obj["metadata"].update(
            uid=old["metadata"]["uid"] if old else hashlib.sha1(f"{plural}/{ns}/{name}/{self.rv}".encode()).hexdigest(),
            resourceVersion=self._next_rv(), generation=(old["metadata"]["generation"] + 1) if old else 1,
            creationTimestamp=old["metadata"]["creationTimestamp"] if old else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            managedFields=[{"manager": manager, "operation": "Apply", "apiVersion": body["apiVersion"],
                            "fieldsType": "FieldsV1"}],
        )
        obj["metadata"].setdefault("namespace", ns)
        if plural == "secrets" and "stringData" in obj:
            import base64
            data = obj.setdefault("data", {})
            data.update({k: base64.b64encode(v.encode()).decode() for k, v in obj.pop("stringData").items()})
        self.objects[key] = obj
        self.applied[key] = copy.deepcopy(body)
        if plural == "deployments":
            self._pod_for(ns, obj, meta)
        return (200 if old else 201), obj

    def _pod_for(self, ns: str, dep: dict[str, Any], meta: dict[str, Any]) -> None:
        template = dep["spec"]["template"]
        name = f"{meta['name']}-{hashlib.sha1(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]}-x1"
        want = dep["spec"].get("replicas", 1) > 0
        if want and ("pods", ns, name) in self.objects:
            return  # the same template and replicas: the ReplicaSet keeps its pod
        for key in [k for k, v in self.objects.items() if k[0] == "pods" and v.get("_owner") == meta["name"]]:
            del self.objects[key]
        if not want:
            return
        self.objects[("pods", ns, name)] = {
            "apiVersion": "v1", "kind": "Pod", "_owner": meta["name"], "_born": time.monotonic(),
            "_started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "metadata": {"name": name, "namespace": ns, "labels": dict(template["metadata"].get("labels") or {}),
                         "resourceVersion": self._next_rv()},
            "spec": copy.deepcopy(template["spec"]),
        }

    def merge_patch(self, plural: str, ns: str, name: str, patch: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """RFC 7386 JSON merge patch (what `kubectl scale` / `kubectl patch --type merge` send); an
        Update by another manager, so the next apply with force takes the fields back."""
        key = (plural, ns, name)
        if key not in self.objects:
            raise Reject(404, "NotFound", f'{plural} "{name}" not found')

        def merge(target: Any, change: Any) -> Any:
            if not isinstance(change, dict):
                return copy.deepcopy(change)
            out = dict(target) if isinstance(target, dict) else {}
            for k, v in change.items():
                if v is None:
                    out.pop(k, None)
                else:
                    out[k] = merge(out.get(k), v)
            return out

        obj = merge(self.objects[key], patch)
        view = {k: v for k, v in obj.items() if not k.startswith("_") and k != "status"}
        view["metadata"] = {k: v for k, v in obj["metadata"].items() if k not in _SERVER_FIELDS}
        errors = schema_errors(view)
        if errors:
            raise Reject(422, "Invalid", f'{obj["kind"]} "{name}" is invalid: {"; ".join(errors[:3])}')
        obj["metadata"]["resourceVersion"] = self._next_rv()
        self.objects[key] = obj
        self.applied.pop(key, None)  # the next apply differs from what the object now is
        if plural == "deployments":
            self._pod_for(ns, obj, obj["metadata"])
        return 200, obj

    def view(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in obj.items() if not k.startswith("_")}
        if obj["kind"] == "Pod":
            ready = time.monotonic() - obj["_born"] >= self.ready_after
            out["status"] = {"phase": "Running" if ready else "Pending", "conditions": [
                {"type": "Ready", "status": "True" if ready else "False"}]}
            if ready:
                out["status"]["startTime"] = obj["_started"]
        return out

    def delete(self, key: tuple[str, str, str]) -> None:
        obj = self.objects.pop(key)
        self.applied.pop(key, None)
        if key[0] == "deployments":  # the garbage collector's job, done at once
            for pod in [k for k, v in self.objects.items() if k[0] == "pods" and v.get("_owner") == key[2]]:
                del self.objects[pod]
        del obj


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
            "reason": reason, "code": code}


class Handler(BaseHTTPRequestHandler):
    server: KubeServer
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: without TCP_NODELAY, Nagle + delayed ACK add 40 ms each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self) -> tuple[str, str, str, str, str, dict[str, list[str]]]:
        url = urllib.parse.urlsplit(self.path)
        m = _PATH.fullmatch(url.path)
        if not m or (m.group(1), m.group(3)) not in RESOURCES:
            raise Reject(404, "NotFound", f"the server could not find the requested resource ({url.path})")
        api_version, kind = RESOURCES[(m.group(1), m.group(3))]
        name = urllib.parse.unquote(m.group(4) or "")
        return m.group(3), m.group(2), name, api_version, kind, urllib.parse.parse_qs(url.query)

    def _handle(self, method: str) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            if self.headers.get("Authorization") != f"Bearer {self.server.token}":
                raise Reject(401, "Unauthorized", "Unauthorized")
            plural, ns, name, api_version, kind, query = self._route()
            with state.lock:
                if state.fail_next:
                    code = state.fail_next.pop(0)
                    raise Reject(code, "ServiceUnavailable" if code == 503 else "TooManyRequests", "try again")
                state.requests.append((method, self.path))
                code, body = getattr(self, f"_{method.lower()}")(state, plural, ns, name, api_version, kind, query, raw)
        except Reject as r:
            code, body = r.code, status(r.code, r.reason, r.message)
        self._send(code, body)

    def do_GET(self) -> None:
        if _EXEC.fullmatch(urllib.parse.urlsplit(self.path).path):
            self._exec()
        else:
            self._handle("GET")

    # -------------------------------------------------------------------------- exec over WebSocket
    def _exec(self) -> None:
        """GET .../pods/<name>/exec?command=...: validated like the API server (errors are plain HTTP
        `Status` answers, before any upgrade), then RFC 6455 with the channel.k8s.io framing."""
        state = self.server.state
        self.close_connection = True  # a WebSocket, or an error: never another request on it
        url = urllib.parse.urlsplit(self.path)
        m = _EXEC.fullmatch(url.path)
        assert m is not None
        ns, pod = m.group(1), urllib.parse.unquote(m.group(2))
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        try:
            if self.headers.get("Authorization") != f"Bearer {self.server.token}":
                raise Reject(401, "Unauthorized", "Unauthorized")
            offered = [p.strip() for p in (self.headers.get("Sec-WebSocket-Protocol") or "").split(",") if p.strip()]
            if (self.headers.get("Upgrade") or "").lower() != "websocket" or not self.headers.get("Sec-WebSocket-Key"):
                raise Reject(400, "BadRequest", "Upgrade request required")
            protocol = next((p for p in EXEC_PROTOCOLS if p in offered), None)
            if protocol is None:
                raise Reject(400, "BadRequest", f"unable to upgrade connection: subprotocols {offered} not supported; "
                             f"supported: {list(EXEC_PROTOCOLS)}")
            with state.lock:
                state.requests.append(("GET", self.path))
                container, argv, want = self._exec_options(state, ns, pod, query)
                state.execs.append((ns, pod, container, argv))
        except Reject as r:
            self._send(r.code, status(r.code, r.reason, r.message))
            return
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + _WS_GUID).encode()).digest())
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        try:
            out, err, code = state.exec_handler(ns, pod, container, list(argv))
        except Exception as exc:  # the handler's bug shows as the command's failure, not a hang
            out, err, code = b"", f"test exec handler raised {exc!r}\n".encode(), 126
        if want["stdout"]:
            for i in range(0, len(out), _FRAME):
                self._ws_send(bytes([STDOUT]) + out[i:i + _FRAME])
        if want["stderr"] and err:
            self._ws_send(bytes([STDERR]) + err)
        if code == 0:
            final: dict[str, Any] = {"metadata": {}, "status": "Success"}
        else:
            final = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                     "message": f"command terminated with non-zero exit code: error executing command {argv}, "
                                f"exit code {code}",
                     "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}
        self._ws_send(bytes([ERROR]) + json.dumps(final).encode())
        self._ws_send(struct.pack("!H", 1000), opcode=0x8)
        self._ws_read_close()

    @staticmethod
    def _exec_options(state: KubeState, ns: str, pod: str, query: dict[str, list[str]]
                      ) -> tuple[str, list[str], dict[str, bool]]:
        known = {"command", "container", "stdin", "stdout", "stderr", "tty"}
        unknown = sorted(set(query) - known)
        if unknown:
            raise Reject(400, "BadRequest", f"unknown query parameter(s) {unknown} for PodExecOptions")
        want: dict[str, bool] = {}
        for flag in ("stdin", "stdout", "stderr", "tty"):
            values = query.get(flag, ["false"])
            if len(values) != 1 or values[0] not in ("true", "false", "1", "0", ""):
                raise Reject(400, "BadRequest", f"PodExecOptions: {flag}: invalid boolean {values!r}")
            want[flag] = values[0] in ("true", "1")
        argv = query.get("command") or []
        if not argv:
            raise Reject(400, "BadRequest", "you must specify at least 1 command")
        if not (want["stdin"] or want["stdout"] or want["stderr"]):
            raise Reject(400, "BadRequest", "you must specify at least one of stdin, stdout, stderr")
        if want["tty"] and want["stderr"]:
            raise Reject(400, "BadRequest", "stderr cannot be used with tty")
        if want["stdin"]:
            raise Reject(400, "BadRequest", "this test server takes no stdin (docpipe never writes to a seat)")
        obj = state.objects.get(("pods", ns, pod))
        if obj is None:
            raise Reject(404, "NotFound", f'pods "{pod}" not found')
        names = [c["name"] for c in obj["spec"]["containers"]]
        container = (query.get("container") or [""])[0]
        if not container:
            if len(names) != 1:
                raise Reject(400, "BadRequest", f"a container name must be specified for pod {pod}, "
                             f"choose one of: {names}")
            container = names[0]
        if container not in names:
            raise Reject(400, "BadRequest", f"container {container} is not valid for pod {pod}")
        if state.view(obj)["status"]["phase"] != "Running":
            raise Reject(400, "BadRequest", f'unable to upgrade connection: container not found ("{container}")')
        return container, argv, want

    def _ws_send(self, payload: bytes, opcode: int = 0x2) -> None:
        """One unmasked server frame (FIN set)."""
        n = len(payload)
        head = bytes([0x80 | opcode])
        if n < 126:
            head += bytes([n])
        elif n < 1 << 16:
            head += bytes([126]) + struct.pack("!H", n)
        else:
            head += bytes([127]) + struct.pack("!Q", n)
        self.wfile.write(head + payload)
        self.wfile.flush()

    def _ws_read_close(self) -> None:
        """The client's answering close frame; a client frame must be masked (RFC 6455 5.1)."""
        self.connection.settimeout(5)
        try:
            while True:
                head = self.rfile.read(2)
                if len(head) < 2:
                    return
                masked, n = head[1] & 0x80, head[1] & 0x7F
                if n == 126:
                    n = struct.unpack("!H", self.rfile.read(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", self.rfile.read(8))[0]
                if not masked:
                    self._ws_send(struct.pack("!H", 1002) + b"client frames must be masked", opcode=0x8)
                    return
                self.rfile.read(4 + n)
                if head[0] & 0x0F == 0x8:
                    return
        except OSError:
            return

    def do_PATCH(self) -> None:
        if _SCALE.fullmatch(urllib.parse.urlsplit(self.path).path):
            self._scale()
        else:
            self._handle("PATCH")

    def _scale(self) -> None:
        """PATCH deployments/<name>/scale with a JSON merge patch of an autoscaling/v1 Scale, as
        `kubectl scale` does: only spec.replicas can change."""
        state = self.server.state
        m = _SCALE.fullmatch(urllib.parse.urlsplit(self.path).path)
        assert m is not None
        ns, name = m.group(1), urllib.parse.unquote(m.group(2))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            if self.headers.get("Authorization") != f"Bearer {self.server.token}":
                raise Reject(401, "Unauthorized", "Unauthorized")
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            if ctype != "application/merge-patch+json":
                raise Reject(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                             f"accepted media types include: application/merge-patch+json (got {ctype!r})")
            try:
                patch = json.loads(raw)
            except ValueError:
                raise Reject(400, "BadRequest", "error decoding patch: invalid JSON") from None
            replicas = (patch.get("spec") or {}).get("replicas") if isinstance(patch, dict) else None
            if set(patch) - {"spec"} or set(patch.get("spec") or {}) - {"replicas"}:
                raise Reject(400, "BadRequest", "a Scale patch changes spec.replicas only")
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise Reject(422, "Invalid", f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
                             f"{replicas!r}: must be greater than or equal to 0")
            with state.lock:
                state.requests.append(("PATCH", self.path))
                _, dep = state.merge_patch("deployments", ns, name, {"spec": {"replicas": replicas}})
                body = {"kind": "Scale", "apiVersion": "autoscaling/v1",
                        "metadata": {"name": name, "namespace": ns,
                                     "resourceVersion": dep["metadata"]["resourceVersion"]},
                        "spec": {"replicas": replicas}, "status": {"replicas": replicas}}
            code = 200
        except Reject as r:
            code, body = r.code, status(r.code, r.reason, r.message)
        self._send(code, body)

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._send(405, status(405, "MethodNotAllowed", "docpipe never creates with POST"))

    def do_PUT(self) -> None:
        self._send(405, status(405, "MethodNotAllowed", "docpipe never replaces with PUT"))

    @staticmethod
    def _select(state: KubeState, plural: str, ns: str, query: dict[str, list[str]]) -> list[tuple[str, str, str]]:
        try:
            selector = parse_selector(query.get("labelSelector", [""])[0])
        except ValueError as exc:
            raise Reject(400, "BadRequest", f"unable to parse requirement: {exc}") from None
        return sorted((k for k, v in state.objects.items() if k[0] == plural and k[1] == ns
                       and matches(v["metadata"].get("labels") or {}, selector)), key=lambda k: k[2])

    def _get(self, state: KubeState, plural: str, ns: str, name: str, api_version: str, kind: str,
             query: dict[str, list[str]], raw: bytes) -> tuple[int, dict[str, Any]]:
        if name:
            obj = state.objects.get((plural, ns, name))
            if obj is None:
                raise Reject(404, "NotFound", f'{plural} "{name}" not found')
            return 200, state.view(obj)
        items = [state.view(state.objects[k]) for k in self._select(state, plural, ns, query)]
        return 200, {"apiVersion": api_version, "kind": f"{kind}List",
                     "metadata": {"resourceVersion": str(state.rv)}, "items": items}

    def _delete(self, state: KubeState, plural: str, ns: str, name: str, api_version: str, kind: str,
                query: dict[str, list[str]], raw: bytes) -> tuple[int, dict[str, Any]]:
        if plural == "pods":
            raise Reject(403, "Forbidden", "docpipe deletes Deployments, never pods")
        if name:
            if (plural, ns, name) not in state.objects:
                raise Reject(404, "NotFound", f'{plural} "{name}" not found')
            state.delete((plural, ns, name))
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
        keys = self._select(state, plural, ns, query)
        items = [state.view(state.objects[k]) for k in keys]
        for key in keys:
            state.delete(key)
        return 200, {"apiVersion": api_version, "kind": f"{kind}List", "metadata": {}, "items": items}

    def _patch(self, state: KubeState, plural: str, ns: str, name: str, api_version: str, kind: str,
               query: dict[str, list[str]], raw: bytes) -> tuple[int, dict[str, Any]]:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/apply-patch+yaml":
            raise Reject(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                         f"accepted media types include: application/apply-patch+yaml (got {ctype!r})")
        if not name or plural == "pods":
            raise Reject(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        manager = query.get("fieldManager", [""])[0]
        if not manager:
            raise Reject(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required "
                         "value: is required for apply patch")
        try:
            body = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise Reject(400, "BadRequest", "error decoding YAML") from None
        if not isinstance(body, dict):
            raise Reject(400, "BadRequest", "the body must be an object")
        if body.get("apiVersion") != api_version or body.get("kind") != kind:
            raise Reject(400, "BadRequest", f"the API version in the data ({body.get('apiVersion')}) and kind "
                         f"({body.get('kind')}) do not match the URL ({api_version}, {kind})")
        meta = body.get("metadata") or {}
        if meta.get("name") != name:
            raise Reject(400, "BadRequest", "the name of the object does not match the name on the URL")
        if meta.get("namespace", ns) != ns:
            raise Reject(400, "BadRequest", "the namespace of the object does not match the namespace on the URL")
        if any(f in meta for f in _SERVER_FIELDS):
            raise Reject(400, "BadRequest", "metadata.managedFields/resourceVersion must not be set in an apply")
        if not _NAME.fullmatch(name) or len(name) > 253:
            raise Reject(422, "Invalid", f'{kind} "{name[:60]}" is invalid: metadata.name: Invalid value')
        if kind == "Service" and (len(name) > 63 or not name[0].isalpha()):
            raise Reject(422, "Invalid", f'Service "{name}" is invalid: metadata.name: must be a DNS-1035 label')
        for value in (meta.get("labels") or {}).values():
            if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
                raise Reject(422, "Invalid", f"{kind} {name!r} is invalid: metadata.labels: Invalid value")
        errors = schema_errors(body)
        if errors:
            unknown = [e for e in errors if "Additional properties" in e]
            if unknown:
                raise Reject(400, "BadRequest", f'{kind} in version "{api_version}" cannot be handled: '
                             f"strict decoding error: unknown field: {unknown[0]}")
            raise Reject(422, "Invalid", f'{kind} "{name}" is invalid: {"; ".join(errors[:3])}')
        return state.apply(plural, ns, name, body, manager)


class KubeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, token: str, ready_after: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.token = token
        self.state = KubeState(ready_after)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def kubeconfig(self, path: Path, namespace: str = "docpipe") -> Path:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": self.token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test", "namespace": namespace}}],
        }
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture()
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KubeServer]:
    """A test API server for one test, with KUBECONFIG pointing at it (as a user's would)."""
    import secrets

    with KubeServer(secrets.token_hex(16)) as srv:
        monkeypatch.setenv("KUBECONFIG", str(srv.kubeconfig(tmp_path / "kubeconfig")))
        yield srv
