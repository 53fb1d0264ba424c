"""Kubernetes seats from the inside: exec over WebSocket (tests/support/kube_server.py), and what
runs through it: `lab progress`, `lab collect`, the idle probe of `lab status` and `lab reap --idle`."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import secrets
import socket
import struct
import subprocess
import sys
import tarfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.lab.classroom import progress
from pipeline.lab.classroom.kube_seats import ExecFailed, KubernetesBackend, pod_exec
from pipeline.lab.settings import LabSettings
from tests.lab.test_classroom_kubernetes import SETTINGS, klass, seat
from tests.support.kube_server import KubeServer, server

__all__ = ["server"]  # the fixture

HOST = "lab.example.org"




def pod_of(srv: KubeServer, seat_name: str) -> str:
    return next(k[2] for k, v in srv.state.objects.items()
                if k[0] == "pods" and v["metadata"]["labels"].get("docpipe.io/seat") == seat_name)


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`docpipe lab ...` against the test server (KUBECONFIG from the fixture, host from the env)."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", *args, "--backend", "kubernetes",
                           "--workdir", str(tmp_path / "wd")], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "DOCPIPE_LAB_HOST": HOST})


# ------------------------------------------------------------------------------ the test server's exec


def test_exec_streams_stdout_stderr_and_the_exit_status(server: KubeServer) -> None:
    backend = KubernetesBackend(SETTINGS)
    backend.up(klass((seat(1),)))
    pod = pod_of(server, "seat-1")
    big = bytes(range(256)) * 8000  # 2 MB of binary, over many frames
    server.state.exec_handler = lambda ns, p, c, argv: (big, b"tar: warning\n", 0) if argv[0] == "ok" else (b"x", b"boom\n", 3)
    assert b"".join(pod_exec(backend.api, "docpipe", pod, ["ok", "a b"])) == big
    assert server.state.execs[-1] == ("docpipe", pod, "desktop", ["ok", "a b"])  # argv as given, no shell
    with pytest.raises(ExecFailed, match="exited with status 3: boom") as err:
        b"".join(pod_exec(backend.api, "docpipe", pod, ["bad"]))
    assert err.value.code == 3
    assert b"".join(pod_exec(backend.api, "docpipe", pod, ["bad"], ok=(0, 3))) == b"x"


def test_exec_refusals_are_the_api_servers(server: KubeServer) -> None:
    server.state.ready_after = 3600
    backend = KubernetesBackend(SETTINGS)
    backend.up(klass((seat(1),)))
    with pytest.raises(ExecFailed, match='404 NotFound: pods "nope" not found'):
        list(pod_exec(backend.api, "docpipe", "nope", ["true"]))
    with pytest.raises(ExecFailed, match=r"400 BadRequest: unable to upgrade connection: container not found"):
        list(pod_exec(backend.api, "docpipe", pod_of(server, "seat-1"), ["true"]))  # Pending, not Running
    assert server.state.execs == []


def _handshake(srv: KubeServer, path: str, protocol: str = "v4.channel.k8s.io") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5)
    sock.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {srv.token}\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return sock, head


def _frame(sock: socket.socket) -> tuple[int, bool, bytes]:
    def exact(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            assert chunk, "connection closed mid-frame"
            out += chunk
        return out
    b0, b1 = exact(2)
    n = b1 & 0x7F
    n = struct.unpack("!H", exact(2))[0] if n == 126 else struct.unpack("!Q", exact(8))[0] if n == 127 else n
    return b0 & 0x0F, bool(b1 & 0x80), exact(n)


def test_exec_on_the_wire_is_rfc_6455_with_kubernetes_channels(server: KubeServer) -> None:
    """Byte for byte, without the official client: the RFC's own handshake example, unmasked server
    frames, a channel byte in front, the closing Status carrying the exit code, then a close frame."""
    backend = KubernetesBackend(SETTINGS)
    backend.up(klass((seat(1),)))
    pod = pod_of(server, "seat-1")
    server.state.exec_handler = lambda ns, p, c, argv: (b"out", b"err", 7)
    query = urllib.parse.urlencode([("command", "cat"), ("command", "/tmp/x"), ("container", "desktop"),
                                    ("stdout", "true"), ("stderr", "true")])
    sock, head = _handshake(server, f"/api/v1/namespaces/docpipe/pods/{pod}/exec?{query}")
    with sock:
        assert head.startswith(b"HTTP/1.1 101 ")
        assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in head  # RFC 6455 section 1.3
        assert b"Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n" in head
        frames = [_frame(sock) for _ in range(4)]
        assert [(op, masked) for op, masked, _ in frames] == [(2, False)] * 3 + [(8, False)]
        assert frames[0][2] == b"\x01out" and frames[1][2] == b"\x02err"
        final = json.loads(frames[2][2][1:])
        assert frames[2][2][0] == 3 and final["status"] == "Failure"
        assert final["details"]["causes"] == [{"reason": "ExitCode", "message": "7"}]
        assert struct.unpack("!H", frames[3][2][:2])[0] == 1000
        mask = b"\x01\x02\x03\x04"
        payload = struct.pack("!H", 1000)
        sock.sendall(bytes([0x88, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    # Refused before any upgrade, with a Status: no command, a container the pod lacks, no subprotocol.
    for bad, protocol, want in [
        (urllib.parse.urlencode([("stdout", "true")]), "v4.channel.k8s.io", b"at least 1 command"),
        (urllib.parse.urlencode([("command", "ls"), ("container", "web"), ("stdout", "1")]), "v4.channel.k8s.io",
         b"container web is not valid"),
        (urllib.parse.urlencode([("command", "ls"), ("stdout", "true")]), "base64.channel.k8s.io", b"not supported"),
    ]:
        sock, head = _handshake(server, f"/api/v1/namespaces/docpipe/pods/{pod}/exec?{bad}", protocol)
        with sock:
            assert head.startswith(b"HTTP/1.1 400 "), head
            body = b""
            while chunk := sock.recv(4096):
                body += chunk
        assert want in body and json.loads(body)["kind"] == "Status"
    assert len(server.state.execs) == 1
    # The accept value is the RFC's formula, not a constant the server happens to print.
    assert base64.b64encode(hashlib.sha1(b"dGhlIHNhbXBsZSBub25jZQ==258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()) \
        == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


# ------------------------------------------------------------------------------ lab progress


def test_progress_runs_the_runner_in_each_seats_pod(server: KubeServer) -> None:
    backend = KubernetesBackend(SETTINGS)
    backend.up(klass((seat(1), seat(2))))
    one, two = pod_of(server, "seat-1"), pod_of(server, "seat-2")
    result = {"checks": [{"name": "build it", "ok": True}, {"name": "run it", "ok": False}]}

    def handler(ns: str, pod: str, container: str, argv: list[str]) -> tuple[bytes, bytes, int]:
        if pod == one:
            return json.dumps(result).encode(), b"", 0
        return b"", b'exec: "docpipe-check": executable file not found in $PATH', 127

    server.state.exec_handler = handler
    rows = progress.gather(backend.status("intro"), progress.runner_for(backend))
    assert [(r.seat, r.done, len(r.checks)) for r in rows] == [("seat-1", 1, 2), ("seat-2", 0, 0)]
    assert "no docpipe-check" in rows[1].error and not rows[0].error
    assert sorted(server.state.execs) == [("docpipe", one, "desktop", [progress.RUNNER]),
                                          ("docpipe", two, "desktop", [progress.RUNNER])]
    assert "1/2" in progress.table(rows)


# ------------------------------------------------------------------------------ lab collect


def _home(tmp_path: Path) -> Path:
    home = tmp_path / "pod" / "home" / "student"
    (home / "work").mkdir(parents=True)
    (home / "work" / "main.go").write_text("package main\n")
    (home / "bin.dat").write_bytes(bytes(range(256)) * 4000)  # ~1 MB of binary: many frames
    (home / "passwd").symlink_to("/etc/passwd")  # must stay a link, never the file it points to
    return home


def test_cli_collect_archives_every_seat_and_reports_the_failing_one(server: KubeServer, tmp_path: Path) -> None:
    backend = KubernetesBackend(LabSettings(host=HOST))
    backend.up(klass((seat(1, "Ada"), seat(2, "Grace"))))
    bad = pod_of(server, "seat-2")
    root = _home(tmp_path).parents[1]  # stands for the pod's "/"

    def handler(ns: str, pod: str, container: str, argv: list[str]) -> tuple[bytes, bytes, int]:
        if pod == bad:
            return b"partial", b"tar: student: Cannot open: Permission denied\n", 2
        assert argv[0] == "tar" and "-h" not in argv and argv[argv.index("-C") + 1] == "/home"
        local = [str(root / "home") if a == "/home" else a for a in argv]  # GNU tar, as in the seat
        proc = subprocess.run(local, capture_output=True, check=False)
        return proc.stdout, proc.stderr, proc.returncode

    server.state.exec_handler = handler
    proc = cli(tmp_path, "collect", "intro")
    assert proc.returncode == 1, proc.stderr  # one seat failed
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and lines[0].startswith("seat-1") and lines[1].startswith("seat-2")
    out = tmp_path / "wd" / "lab" / "intro-work"
    assert str(out / "seat-1.tar.gz") in lines[0] and "FAILED" in lines[1] and "status 2" in lines[1]
    assert "Permission denied" in lines[1]
    assert not (out / "seat-2.tar.gz").exists()  # a broken stream leaves no archive behind
    with tarfile.open(out / "seat-1.tar.gz") as tar:
        members = {m.name: m for m in tar}
        assert tar.extractfile(members["student/work/main.go"]).read() == b"package main\n"  # type: ignore[union-attr]
        assert tar.extractfile(members["student/bin.dat"]).read() == bytes(range(256)) * 4000  # type: ignore[union-attr]
        link = members["student/passwd"]
        assert link.issym() and link.linkname == "/etc/passwd"  # stored as a link, nothing outside read
        assert all(n == "student" or n.startswith("student/") for n in members)
    assert (out / "seat-1.tar.gz").stat().st_mode & 0o077 == 0
    # --json says the same, with sizes
    data = json.loads(cli(tmp_path, "collect", "intro", "--json").stdout)
    rows = {s["seat"]: s for s in data["seats"]}
    assert rows["seat-1"]["bytes"] == (out / "seat-1.tar.gz").stat().st_size and rows["seat-1"]["student"] == "Ada"
    assert rows["seat-2"]["path"] == "" and "status 2" in rows["seat-2"]["error"]


# ------------------------------------------------------------------------------ idle seats


def test_status_and_reap_idle_read_each_seats_probe(server: KubeServer, tmp_path: Path) -> None:
    backend = KubernetesBackend(LabSettings(host=HOST))
    cls = klass((seat(1), seat(2), seat(3)))
    infos = backend.up(cls)
    now = int(time.time())
    seen = {pod_of(server, "seat-1"): now - 2, pod_of(server, "seat-2"): now - 3600}  # seat-3: nobody, ever

    def handler(ns: str, pod: str, container: str, argv: list[str]) -> tuple[bytes, bytes, int]:
        assert argv == ["cat", "/tmp/docpipe-seen"]
        if pod in seen:
            return f"{seen[pod]}\n".encode(), b"", 0
        return b"", b"cat: /tmp/docpipe-seen: No such file or directory\n", 1

    server.state.exec_handler = handler
    two_hours_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    server.state.objects[("pods", "docpipe", pod_of(server, "seat-2"))]["_started"] = two_hours_ago
    status = json.loads(cli(tmp_path, "status", "intro", "--json").stdout)
    by = {s["seat"]: s for s in status["seats"]}
    assert by["seat-1"]["connected"] is True
    assert by["seat-1"]["last_seen"] == dt.datetime.fromtimestamp(now - 2, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert by["seat-2"]["connected"] is False and by["seat-2"]["last_seen"].startswith(
        dt.datetime.fromtimestamp(now - 3600, dt.UTC).strftime("%Y-%m-%dT%H:"))
    assert by["seat-3"] == {**by["seat-3"], "connected": False, "last_seen": None}

    # seat-3 started just now: nobody ever connected, but not idle for 30m yet; seat-2 (started 2 h
    # ago, last seen 1 h ago) is.
    proc = cli(tmp_path, "reap", "--idle", "30m")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["stopped", "1", "idle", "seat(s)", "intro-seat-2"]
    deployments = {k[2]: v["spec"]["replicas"] for k, v in server.state.objects.items() if k[0] == "deployments"}
    assert deployments == {"intro-seat-1": 1, "intro-seat-2": 0, "intro-seat-3": 1}
    assert sorted(v["metadata"]["labels"]["docpipe.io/seat"] for k, v in server.state.objects.items()
                  if k[0] == "pods") == ["seat-1", "seat-3"]
    assert [p for m, p in server.state.requests if m == "PATCH" and p.split("?")[0].endswith("/scale")] == [
        p for m, p in server.state.requests if m == "PATCH" and "intro-seat-2/scale" in p]
    # Its home, Secret, Service and routes stay; status says it is stopped, with the same link.
    assert len([k for k in server.state.objects if k[0] == "persistentvolumeclaims"]) == 3
    after = {s["seat"]: s for s in json.loads(cli(tmp_path, "status", "intro", "--json").stdout)["seats"]}
    assert after["seat-2"]["status"] == "stopped" and after["seat-2"]["url"] == infos[1].url
    assert after["seat-2"]["connected"] is False
    # `lab up` (the same requests, as commands.lab_up rebuilds them from the Secrets) starts it again.
    again = backend.up(klass(tuple(backend.seat_requests("intro"))))
    assert [i.url for i in again] == [i.url for i in infos] and {i.status for i in again} == {"running"}
    assert {k[2]: v["spec"]["replicas"] for k, v in server.state.objects.items() if k[0] == "deployments"} == {
        "intro-seat-1": 1, "intro-seat-2": 1, "intro-seat-3": 1}
    # An idle seat whose probe cannot be read (exec fails) is never taken for idle.
    server.state.exec_handler = lambda ns, pod, c, argv: (b"", b"OCI runtime exec failed", 126)
    assert backend.stop_idle(0) == []
