"""A real Docker Engine, a real registry and a local base image for the lab tests.

Nothing can be pulled from an image registry here, so `debian:bookworm-slim` is made with
debootstrap + `docker import`. That test-only tag carries this machine's CA certificates (PyPI
is reached through a TLS proxy); the product's templates never add them.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

BASE_TAG = "debian:bookworm-slim"
TEST_BASE_LABEL = "io.docpipe.test-base"
REGISTRY_ADDR = ("127.0.0.1", 5000)
MIRROR = "http://deb.debian.org/debian"


@contextlib.contextmanager
def _machine_lock(name: str) -> Iterator[None]:
    """Serialises setup across pytest-xdist workers (and concurrent runs) on this machine."""
    with open(Path(tempfile.gettempdir()) / f"docpipe-test-{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(") ", 1)[1][:1] not in ("Z", "X")
    except (FileNotFoundError, IndexError):
        return False


def _terminate(pid: int) -> None:
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _shared_service(name: str, is_up: Callable[[], bool],
                    start: Callable[[], tuple[subprocess.Popen, Path]]) -> Iterator[None]:
    """Use a machine-wide service, starting it when it is down. A state file counts the users
    (pytest-xdist workers, parallel runs); the last one out stops it if a test started it, and
    a service that was already running is left alone."""
    state_file = Path(tempfile.gettempdir()) / f"docpipe-test-{name}.json"
    with _machine_lock(name):
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        if not is_up():
            proc, tmp = start()
            state = {"users": 0, "pid": proc.pid, "tmp": str(tmp)}
        state.setdefault("users", 0)
        state["users"] += 1
        state_file.write_text(json.dumps(state))
    try:
        yield
    finally:
        with _machine_lock(name):
            state = json.loads(state_file.read_text()) if state_file.exists() else {"users": 1}
            state["users"] -= 1
            if state["users"] <= 0:
                if state.get("pid"):
                    _terminate(state["pid"])
                if state.get("tmp"):
                    shutil.rmtree(state["tmp"], ignore_errors=True)
                state_file.unlink(missing_ok=True)
            else:
                state_file.write_text(json.dumps(state))


def _engine_answers() -> bool:
    import docker

    try:
        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def _listening(addr: tuple[str, int]) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(addr) == 0


def _wait(check, what: str, seconds: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.3)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not come up: {tail}")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _start_dockerd() -> tuple[subprocess.Popen, Path]:
    if not shutil.which("dockerd"):
        pytest.skip("no Docker Engine and no dockerd installed")
    tmp = Path(tempfile.mkdtemp(prefix="docpipe-dockerd-"))
    log = tmp / "dockerd.log"
    proc = subprocess.Popen(["dockerd", "--host", "unix:///var/run/docker.sock"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    _wait(_engine_answers, "dockerd", 60, proc, log)
    return proc, tmp


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[object]:
    """A docker client; starts dockerd when none answers and stops it again afterwards."""
    import docker

    with _shared_service("dockerd", _engine_answers, _start_dockerd):
        client = docker.from_env(timeout=300)
        try:
            yield client
        finally:
            client.close()


@dataclass(frozen=True)
class Registry:
    host: str  # HOST:PORT, as docker tags use it


def _start_registry() -> tuple[subprocess.Popen, Path]:
    if not shutil.which("docker-registry"):
        pytest.skip("docker-registry is not installed")
    tmp = Path(tempfile.mkdtemp(prefix="docpipe-registry-"))
    config = tmp / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY_ADDR[0]}:{REGISTRY_ADDR[1]}\n"
    )
    log = tmp / "registry.log"
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=open(log, "wb"), stderr=subprocess.STDOUT)
    _wait(lambda: _listening(REGISTRY_ADDR), "docker-registry", 30, proc, log)
    return proc, tmp


@pytest.fixture(scope="session")
def registry(docker_engine: object) -> Iterator[Registry]:
    """Debian's docker-registry on 127.0.0.1:5000 (reused when something already listens)."""
    with _shared_service("registry", lambda: _listening(REGISTRY_ADDR), _start_registry):
        yield Registry(host=f"{REGISTRY_ADDR[0]}:{REGISTRY_ADDR[1]}")


def make_test_base(client) -> None:  # type: ignore[no-untyped-def]
    """debootstrap a minbase bookworm, add the host's CA certificates, import as BASE_TAG."""
    rootfs = Path(tempfile.mkdtemp(prefix="docpipe-rootfs-"))
    try:
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), MIRROR],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        (rootfs / "usr/local/share/ca-certificates").mkdir(parents=True, exist_ok=True)
        for crt in glob.glob("/usr/local/share/ca-certificates/*"):
            shutil.copy(crt, rootfs / "usr/local/share/ca-certificates")
        (rootfs / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
        shutil.copy("/etc/ssl/certs/ca-certificates.crt", rootfs / "etc/ssl/certs/ca-certificates.crt")
        # apt would otherwise keep downloaded .debs in every layer.
        (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(
            'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb || true"; };\n')
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import",
             "--change", f"LABEL {TEST_BASE_LABEL}=1",
             "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
             "--change", "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
             "--change", 'CMD ["bash"]',
             "-", BASE_TAG],
            stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:  # a short rootfs imports without complaint: never cache it
            subprocess.run(["docker", "rmi", "-f", BASE_TAG], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            raise RuntimeError(f"tar of the debootstrap rootfs failed with status {tar.returncode}")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


@pytest.fixture(scope="session")
def test_base(docker_engine) -> str:  # type: ignore[no-untyped-def]
    """BASE_TAG, made locally once and cached by its tag."""
    from docker.errors import ImageNotFound

    with _machine_lock("base-image"):
        try:
            docker_engine.images.get(BASE_TAG)
        except ImageNotFound:
            if not shutil.which("debootstrap"):
                pytest.skip("debootstrap is not installed")
            make_test_base(docker_engine)
    return BASE_TAG


# ---------------------------------------------------------------- a workshop archive

SAMPLE_WORKSHOP = """---
title: Go and PromiseGrid, hands on
name: ws-go-promisegrid
status: Draft
drive_id: 1SampleWorkshopDocId
---
# Go and PromiseGrid, hands on

Bring a laptop with a browser. Note: each student gets a desktop.

## Lab desktop

- **base**: debian-novnc
- packages: git, jq
- pip: six>=1.16
- ports: 8080
- env: GREETING=hello from the lab, LEVEL=1
- memory: 768m
- cpus: 0.5
- autostart: xterm
- files: README.txt

```
Welcome to the Go workshop.
```

- files: exercises/one.md = Write a promise.

## Exercises

Do them.
"""

PLAIN_DOC = """---
title: Meeting notes
name: mcp-1-notes
---
# Notes

No lab here.
"""


def make_archive(workdir: Path, docs: dict[str, str]) -> str:
    """WORKDIR/archive as replay would leave it: a git repo whose `main` holds `docs`."""
    import pygit2

    from pipeline import frontmatter

    path = Path(workdir) / "archive"
    repo = pygit2.init_repository(str(path), bare=False, initial_head="main")
    index = repo.index
    # The manifest replay writes: workshops are the docs it names (pipeline.workshops).
    entries = {str(frontmatter.read(text).get("drive_id") or f"doc{i}"): {"path": name, "comments": None}
               for i, (name, text) in enumerate(sorted(docs.items())) if name.endswith(".md")}
    docs = {**docs, ".docpipe/manifest.json": json.dumps({"docs": entries, "folder": {}}, sort_keys=True)}
    for name, text in docs.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        index.add(name)
    index.write()
    sig = pygit2.Signature("docpipe", "docpipe@localhost", 1_700_000_000, 0)
    parents = [] if repo.head_is_unborn else [repo.head.target]
    oid = repo.create_commit("refs/heads/main", sig, sig, "docs", index.write_tree(), parents)
    return str(oid)


# ---------------------------------------------------------------- VNC over noVNC's websocket


def address_of(host: str) -> str:
    """Where a test connects for `host`: *.localhost is loopback, as browsers resolve it (this
    machine's resolver does not), while TLS and Host still name `host`."""
    return "127.0.0.1" if host == "localhost" or host.endswith(".localhost") else host


class _WebSocket:
    """Just enough of RFC 6455 to speak RFB through websockify: binary frames, client masking."""

    def __init__(self, host: str, port: int, path: str = "/websockify", protocol: str | None = "binary",
                 ssl_context: ssl.SSLContext | None = None, server_name: str | None = None) -> None:
        import base64

        self.sock = socket.create_connection((address_of(host), port), timeout=10)
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(self.sock, server_hostname=server_name or host)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n"
                           + (f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else "") + "\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("websocket handshake closed")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"websocket handshake refused: {head[:80]!r}")
        self.buf = b""

    def send(self, data: bytes, opcode: int = 0x2) -> None:
        mask = os.urandom(4)
        n = len(data)
        size = (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big") if n < 65536
                else bytes([0x80 | 127]) + n.to_bytes(8, "big"))
        header = bytes([0x80 | opcode]) + size
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("websocket closed")
            out += chunk
        return out

    def _frame(self) -> tuple[int, bool, bytes]:
        """(opcode, FIN, payload) of the next frame from the server (never masked)."""
        b0, b1 = self._exact(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(self._exact(2), "big")
        elif length == 127:
            length = int.from_bytes(self._exact(8), "big")
        payload = self._exact(length)
        if b0 & 0x0F == 0x8:
            raise ConnectionError("websocket closed by server")
        return b0 & 0x0F, bool(b0 & 0x80), payload

    def message(self) -> bytes:
        """One whole message (frames up to FIN), for protocols with message boundaries (CDP)."""
        data = b""
        while True:
            opcode, fin, payload = self._frame()
            if opcode in (0x0, 0x1, 0x2):
                data += payload
                if fin:
                    return data

    def recv(self, n: int) -> bytes:
        while len(self.buf) < n:
            opcode, _, payload = self._frame()
            if opcode in (0x0, 0x1, 0x2):
                self.buf += payload
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def close(self) -> None:
        self.sock.close()


def _vnc_response(password: str, challenge: bytes) -> bytes:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

    # VNC authentication: DES with the password's first 8 bytes, each byte bit-reversed.
    key = bytes(int(f"{b:08b}"[::-1], 2) for b in password.encode()[:8].ljust(8, b"\0"))
    enc = Cipher(TripleDES(key * 3), modes.ECB()).encryptor()
    return enc.update(challenge) + enc.finalize()


class VncSession:
    """An RFB 3.8 client through the seat's websockify (behind the gateway for a /s/<token>/
    link, over TLS with `ssl_context`): log in, then send pointer and key events like a viewer."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        path = "/websockify"
        if "/s/" in parts.path:
            token = parts.path.split("/s/", 1)[1].split("/", 1)[0]
            path = parts.path.split("/s/", 1)[0] + "/s/" + token + "/websockify"
        self.ws = _WebSocket(parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80),
                             path, ssl_context=ssl_context if parts.scheme == "https" else None)
        self.size = (0, 0)

    def login(self, password: str) -> bool:
        version = self.ws.recv(12)
        assert version.startswith(b"RFB "), version
        self.ws.send(b"RFB 003.008\n")
        count = self.ws.recv(1)[0]
        if count == 0:
            raise ConnectionError("server refused the connection")
        types = self.ws.recv(count)
        if 2 not in types:
            raise AssertionError(f"server offers no VNC password authentication: {list(types)}")
        self.ws.send(bytes([2]))
        challenge = self.ws.recv(16)
        self.ws.send(_vnc_response(password, challenge))
        return int.from_bytes(self.ws.recv(4), "big") == 0

    def start(self) -> tuple[int, int]:
        """ClientInit (shared) and the server's ServerInit: the desktop's size."""
        self.ws.send(b"\x01")
        head = self.ws.recv(24)
        width, height = int.from_bytes(head[0:2], "big"), int.from_bytes(head[2:4], "big")
        self.ws.recv(int.from_bytes(head[20:24], "big"))  # the desktop's name
        self.size = (width, height)
        return self.size

    def pointer(self, x: int, y: int, buttons: int = 0) -> None:
        self.ws.send(bytes([5, buttons]) + x.to_bytes(2, "big") + y.to_bytes(2, "big"))

    def key(self, keysym: int) -> None:
        for down in (1, 0):
            self.ws.send(bytes([4, down, 0, 0]) + keysym.to_bytes(4, "big"))

    def close(self) -> None:
        self.ws.close()

    def __enter__(self) -> VncSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def vnc_login(url: str, password: str, ssl_context: ssl.SSLContext | None = None) -> bool:
    """True when the seat behind `url` accepts `password` (RFB 3.8 VNC authentication)."""
    with VncSession(url, ssl_context) as session:
        return session.login(password)


# The X pointer as the seat's own X server sees it: what a viewer's input moved, or did not.
_QUERY_POINTER = """
import ctypes
x11 = ctypes.CDLL("libX11.so.6")
x11.XOpenDisplay.restype = ctypes.c_void_p
x11.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
x11.XDefaultRootWindow.restype = ctypes.c_ulong
d = x11.XOpenDisplay(None)
root = x11.XDefaultRootWindow(d)
w1, w2 = ctypes.c_ulong(), ctypes.c_ulong()
rx, ry, wx, wy, mask = (ctypes.c_int() for _ in range(5))
x11.XQueryPointer.argtypes = [ctypes.c_void_p, ctypes.c_ulong] + [ctypes.c_void_p] * 7
x11.XQueryPointer(d, root, ctypes.byref(w1), ctypes.byref(w2), ctypes.byref(rx), ctypes.byref(ry),
                  ctypes.byref(wx), ctypes.byref(wy), ctypes.byref(mask))
print(rx.value, ry.value)
"""


def pointer_position(container: Any) -> tuple[int, int]:
    """Where the seat's X pointer is, read inside the seat with Xlib."""
    code, out = container.exec_run(["python3", "-c", _QUERY_POINTER], user="student", environment={"DISPLAY": ":1"})
    assert code == 0, out
    x, y = out.decode().split()
    return int(x), int(y)


def x_windows(container: Any) -> str:
    """The seat's X window tree (names and classes), as `xwininfo` prints it."""
    code, out = container.exec_run(["xwininfo", "-root", "-tree"], user="student", environment={"DISPLAY": ":1"})
    assert code == 0, out
    return out.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- the sample workshop, built once


@dataclass
class SampleBuild:
    workdir: Path
    commit: str
    settings: object  # pipeline.lab.settings.LabSettings
    first: object  # provision.Result of the first build
    build_seconds: float
    client: object


@pytest.fixture(scope="session")
def sample_build(docker_engine, registry, test_base, tmp_path_factory) -> Iterator[SampleBuild]:  # type: ignore[no-untyped-def]
    """The sample workshop built and pushed under a per-session prefix (so it really builds),
    its images removed at the end; the base images stay as the cache for the next run."""
    from pipeline.lab.image import provision
    from pipeline.lab.settings import LabSettings, source_url

    workdir = tmp_path_factory.mktemp("lab")
    commit = make_archive(workdir, {"workshops/ws-go-promisegrid.md": SAMPLE_WORKSHOP,
                                    "notes/mcp-1-notes.md": PLAIN_DOC})
    prefix = f"docpipe-test-{os.urandom(3).hex()}"
    settings = LabSettings(registry=registry.host, prefix=prefix,
                           source=source_url("http://user:secret@127.0.0.1:3000", "cswg", "docs"))
    start = time.monotonic()
    began = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    results = provision.provision(workdir, settings).results
    seconds = time.monotonic() - start
    try:
        yield SampleBuild(workdir, commit, settings, results[0], seconds, docker_engine)
    finally:
        for c in docker_engine.containers.list(all=True, filters={"label": "docpipe.io/workshop=ws-go-promisegrid"}):
            if prefix in (c.attrs.get("Config", {}).get("Image") or ""):
                c.remove(force=True)
        # Students' homes outlive `lab down` by design: the ones this session's classes made go
        # (docker test sessions take the machine's lock, so no other session makes them meanwhile).
        for v in docker_engine.volumes.list(filters={"label": ["io.docpipe.home"]}):
            if (v.attrs.get("CreatedAt") or "") >= began:
                from docker.errors import APIError

                try:
                    v.remove(force=True)
                except APIError:  # still in use by a container another test left: not ours to force
                    pass
        for image in docker_engine.images.list():
            for tag in image.tags:
                if prefix in tag:
                    docker_engine.images.remove(tag, force=True)
        for image in docker_engine.images.list(filters={"dangling": True}):
            if any(prefix in r for r in image.attrs.get("RepoDigests") or []):
                docker_engine.images.remove(image.id, force=True)


# ---------------------------------------------------------------- a real browser, through CDP

CHROMIUM_FLAGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                  "--disable-component-update", "--disable-sync", "--disable-quic"]


class Browser:
    """Headless Chromium driven over the DevTools protocol (playwright cannot be installed here)."""

    def __init__(self, *flags: str) -> None:
        import urllib.request

        browser = shutil.which("chromium")
        if not browser:
            pytest.skip("chromium is not installed")
        self.profile = tempfile.mkdtemp(prefix="docpipe-chromium-")
        self.proc = subprocess.Popen([browser, *CHROMIUM_FLAGS, *flags, f"--user-data-dir={self.profile}",
                                      "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                                      "--window-size=1280,860", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        active = Path(self.profile) / "DevToolsActivePort"
        _wait(active.exists, "chromium", 30, self.proc)
        time.sleep(0.2)
        self.port = int(active.read_text().split()[0])
        pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10))
        page = next(p for p in pages if p["type"] == "page")
        path = "/" + page["webSocketDebuggerUrl"].split("/", 3)[3]
        self.ws = _WebSocket("127.0.0.1", self.port, path, protocol=None)
        self.next_id = 0
        self.events: list[dict] = []  # DevTools events (e.g. Network.loadingFailed), for failure messages

    def call(self, method: str, **params: object) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}).encode(), opcode=0x1)
        while True:
            reply = json.loads(self.ws.message())
            if "method" in reply and len(self.events) < 5000:
                self.events.append(reply)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, seconds: float = 30) -> object:
        deadline = time.monotonic() + seconds
        value = None
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.25)
        return value

    def failed_loads(self) -> list[str]:
        """Every request that ended in a network error since Network.enable: URL (path tail) and why."""
        urls = {e["params"]["requestId"]: e["params"]["request"]["url"]
                for e in self.events if e["method"] == "Network.requestWillBeSent"}
        return [f"{urls.get(e['params']['requestId'], '?').split('#')[0][-60:]}: {e['params'].get('errorText')}"
                f"{' (blocked: ' + str(e['params']['blockedReason']) + ')' if e['params'].get('blockedReason') else ''}"
                for e in self.events if e["method"] == "Network.loadingFailed"]

    def screenshot(self, path: Path) -> None:
        import base64

        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            _stop(self.proc)
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    try:
        yield b
    finally:
        b.close()
