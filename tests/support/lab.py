"""A class of Docker seats as the tests drive it: `docpipe lab ...` in a subprocess for one workdir
and one gateway address, and HTTPS to the gateway as a browser would send it (its name in TLS and
Host; *.localhost is loopback, as browsers resolve it)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.docker_env import address_of


def until(check: Callable[[], bool], timeout: float = 30, every: float = 0.3) -> None:
    """Poll `check` until it holds; a test fails with "timed out" when it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(every)


def free_port(span: int = 1) -> int:
    """A port with the `span - 1` ports after it free as well (for a gateway publishing a range)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + span > 65535:
            continue
        taken = False
        for other in range(port + 1, port + span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", other))
                except OSError:
                    taken = True
                    break
        if not taken:
            return port
    raise RuntimeError(f"no {span} free ports in a row")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    cookies: list[str] = field(default_factory=list)


def fetch(url: str, ctx: ssl.SSLContext | None, headers: dict[str, str] | None = None) -> Answer:
    """GET `url` through its origin's address, TLS verified by `ctx` (None: plain HTTP)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sock = socket.create_connection((address_of(host), port), timeout=15)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        assert ctx is not None
        conn = http.client.HTTPSConnection(host, port, timeout=15, context=ctx)
        sock = ctx.wrap_socket(sock, server_hostname=host)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=15)
    conn.sock = sock
    try:
        conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""), headers=headers or {})
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(),
                      resp.headers.get_all("Set-Cookie") or [])
    finally:
        conn.close()


def trust(ca: Path) -> str:
    """The Chromium flag that trusts the gateway's local CA (by its key) in a fresh profile: TLS
    then verifies, so Service Workers and the rest behave as on a trusted site."""
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(ca.read_bytes())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"--ignore-certificate-errors-spki-list={base64.b64encode(hashlib.sha256(spki).digest()).decode()}"


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Class:
    """`docpipe lab` for one workdir, listening on 127.0.0.1:`port`, links made from `public`."""

    def __init__(self, workdir: Path, registry: str, prefix: str, port: int, public: str = "",
                 **env: str) -> None:
        self.workdir, self.port = workdir, port
        self.class_url = ""  # the instructor's page of the last `up`
        self.public = public or f"https://lab.localhost:{port}"
        self.env = {**os.environ, "DOCPIPE_LAB_REGISTRY": registry, "DOCPIPE_LAB_PREFIX": prefix,
                    "DOCPIPE_LAB_LISTEN": f"127.0.0.1:{port}", "DOCPIPE_LAB_PUBLIC_URL": self.public,
                    "DOCPIPE_WORKDIR": str(workdir), **env}

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], check=False, capture_output=True,
                              text=True, env={**self.env, **env}, timeout=900)

    def up(self, *args: str, **env: str) -> dict[str, Any]:
        out = self.cli("lab", "up", *args, "--json", **env)
        assert out.returncode == 0, out.stderr
        data: dict[str, Any] = json.loads(out.stdout)
        self.class_url = data.get("class_url", "")
        return data

    @property
    def ca(self) -> Path:
        return self.workdir / "lab" / "ca" / "ca.crt"

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def get(self, url: str, **headers: str) -> Answer:
        return fetch(url, self.tls() if url.startswith("https:") else None, headers)
