"""Headless Chromium (Debian's /usr/bin/chromium) and a static HTTP server on 127.0.0.1, for
tests that check pages the way a user sees them.

    with serve(public_dir) as base_url:
        browser = Chromium()
        dom = browser.dump_dom(base_url + "/index.html")   # DOM after scripts ran
        browser.screenshot(base_url + "/index.html", artifacts / "index.png")

Every Chromium call is a fresh process with a fresh profile (start-up costs ~1-2 s), so share
one served site per module (module-scoped fixtures) and ask for what you need in few calls.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        # A browser dropping a connection mid-transfer (it closed the page) is not a failure.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


class Chromium:
    """One headless Chromium run per call, each with a fresh --user-data-dir (a temp dir, removed after)."""

    def __init__(self, timeout: float = 60.0) -> None:
        require_chromium()
        self.timeout = timeout

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        profile = tempfile.mkdtemp(prefix="chromium-profile-")
        try:
            cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"chromium exited {proc.returncode}: {tail}")
        return proc

    def dump_dom(self, url: str, *, budget_ms: int = 3000) -> str:
        """The serialized DOM after the page's scripts ran (virtual time lets timers settle)."""
        return self._run([f"--virtual-time-budget={budget_ms}", "--dump-dom", url]).stdout

    def screenshot(self, url: str, path: Path, *, size: str = "1280,900") -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._run([f"--screenshot={path}", f"--window-size={size}", "--virtual-time-budget=2000", url])
        if not path.is_file():
            raise RuntimeError(f"chromium wrote no screenshot at {path}")
        return path
