"""Test helpers for the pull stage: datasets, a running emulator, store snapshots, a faulting proxy."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

import pytest

from pipeline.emulator.model import Dataset
from pipeline.emulator.server import Emulator

TOKEN = "test-token"
ROOT_ID = "1RootFolderForPullTestsxxxxxxxxxx"
USERS = [("ada", "Ada Lovelace", "ada@example.org"), ("bob", "Bob Builder", None), ("cy", "Cy Twombly", "cy@example.org")]


def revision_html(doc: str, n: int, size: int = 600, image: bool = False) -> str:
    """A small doc in Google's export style; `n` makes every revision distinct."""
    body = f"<p class=\"c1\"><span class=\"c0\">{doc} revision {n}</span></p>"
    filler = "".join(f"<p class=\"c2\"><span>line {i} of {doc} at {n}</span></p>" for i in range(max(1, size // 40)))
    img = '<p><span><img alt="" src="../images/fig.png" style="width: 10px"></span></p>' if image else ""
    return (
        "<html><head><meta content=\"text/html; charset=UTF-8\" http-equiv=\"content-type\">"
        "<style type=\"text/css\">.c1{font-weight:700}</style></head>"
        f"<body class=\"doc-content\">{body}{img}{filler}</body></html>"
    )


def new_dataset() -> Dataset:
    ds = Dataset(ROOT_ID, "Working Group")
    for key, name, email in USERS:
        ds.add_user(key, name, email)
    return ds


def add_doc(ds: Dataset, name: str, revisions: int, *, parent: str | None = None, comments: int = 0,
            image: bool = False, start_day: int = 1) -> str:
    fid = ds.add_doc(name, parent=parent)
    for n in range(revisions):
        user = USERS[n % len(USERS)][0]
        ds.add_revision(fid, revision_html(name, n, image=image), user, _time(start_day, n))
    if image:
        ds.add_image(fid, "fig.png", "image/png", b"\x89PNG\r\n\x1a\n" + name.encode())
    for n in range(comments):
        cid = ds.add_comment(fid, USERS[(n + 1) % 3][0], f"comment {n} on {name}", _time(start_day + 100, n), quoted=f"line {n}")
        if n % 3 == 0:
            ds.add_reply(fid, cid, USERS[n % 3][0], f"reply to {n}", _time(start_day + 101, n))
        if n % 5 == 0:
            ds.add_reply(fid, cid, USERS[2][0], "", _time(start_day + 102, n), action="resolve")
    return fid


def _time(day: int, n: int) -> str:
    # Distinct, ordered RFC3339 times: one minute apart, spilling over hours and days.
    day_offset, minute = divmod(n, 24 * 60)
    hour, minute = divmod(minute, 60)
    d = day + day_offset
    month, dd = divmod(d - 1, 28)
    return f"2024-{month % 12 + 1:02d}-{dd + 1:02d}T{hour:02d}:{minute:02d}:00Z"


@contextlib.contextmanager
def running(ds: Dataset, **kw: Any) -> Iterator[Emulator]:
    kw.setdefault("token", TOKEN)
    kw.setdefault("retry_after", 0)
    with Emulator(ds, **kw) as emu:
        yield emu


@pytest.fixture
def token_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("DOCPIPE_ACCESS_TOKEN", TOKEN)
    return TOKEN


def snapshot(workdir: Path) -> dict[str, bytes]:
    """Every file of WORKDIR/store, by relative path."""
    root = Path(workdir) / "store"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def paths_of(emu: Emulator) -> list[str]:
    return [path for _, path, _ in emu.requests]


def exports_of(emu: Emulator) -> list[str]:
    return [q.get("id", "") + "@" + q.get("revision", "") for _, path, q in emu.requests if path.endswith("/Export")]


def cli(args: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    full_env.update(env or {})
    with tempfile.TemporaryDirectory() as empty:  # no stray ./docpipe.toml may leak into a test
        return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                              env=full_env, cwd=cwd or empty, timeout=timeout)


# ------------------------------------------------------------------ interposing proxy

Rule = Callable[[str, str], tuple[int, bytes] | None]


@dataclass
class Proxy:
    """A loopback HTTP proxy in front of the emulator's API: `rule(method, path_with_query)` may
    answer instead of the emulator (a malformed body), or act first (delete a doc) and return None."""

    upstream: str
    rule: Rule
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> Proxy:
        up = urllib.parse.urlsplit(self.upstream)
        rule = self.rule

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                answer = rule(self.command, self.path)
                if answer is not None:
                    status, body = answer
                else:
                    conn = http.client.HTTPConnection(up.hostname, up.port, timeout=30)
                    headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept")}
                    conn.request("GET", self.path, headers=headers)
                    resp = conn.getresponse()
                    status, body = resp.status, resp.read()
                    conn.close()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


def read_doc(workdir: Path, file_id: str) -> dict[str, Any]:
    return json.loads((Path(workdir) / "store" / "docs" / f"{file_id}.json").read_text())


def read_folder(workdir: Path) -> dict[str, Any]:
    return json.loads((Path(workdir) / "store" / "folder.json").read_text())


def blob(workdir: Path, digest: str) -> bytes:
    return (Path(workdir) / "store" / "blobs" / digest[:2] / digest).read_bytes()


def service_account_file(path: Path, token_uri: str, email: str = "puller@docpipe-test.iam.gserviceaccount.com") -> Path:
    """A real service-account key file (fresh RSA key) whose token endpoint is the emulator's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(json.dumps({
        "type": "service_account", "project_id": "docpipe-test", "private_key_id": "k1",
        "private_key": pem.decode(), "client_email": email, "client_id": "1",
        "token_uri": token_uri,
    }))
    return path


@contextlib.contextmanager
def demo_port() -> Iterator[None]:
    """Held while a test runs `docpipe demo`: a demo's exports name their images by the emulator's
    fixed port (pipeline/demo.py DEMO_PORT), so two demos at once on other workers would move one
    to another port and its store would differ, as it rightly does for other input."""
    import fcntl

    with open(Path(tempfile.gettempdir()) / "docpipe-test-demo-port.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
