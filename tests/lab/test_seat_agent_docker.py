"""The seat agent and the progress checks in real seats behind the gateway: a workshop with checks
built on docpipe's own base, two seats, and what a student and an instructor see.

- a file uploaded through the student's files link is in their home; the home downloads as an
  archive through the same link; a forged key gets neither (the gateway answers 404);
- uploads over [lab] upload_limit, into `..`, or through a symlink out of the home are refused and
  write nothing outside the home;
- text a viewer sends as RFB ClientCutText through the gateway is what the desktop's clipboard holds;
- after the file a check looks for is made, `lab progress --json` and the learner's progress page
  show that step done; a hanging, a megabyte-printing and a forking check stop at their timeouts,
  their output cut, nothing of them left in the seat, the seat still serving.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import ssl
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.lab.image import provision
from pipeline.lab.settings import LabSettings
from tests.support.docker_env import VncSession, address_of, docker_engine, make_archive, registry, test_base
from tests.support.lab import Class, free_port, origin

pytestmark = pytest.mark.docker

__all__ = ["docker_engine", "registry", "test_base"]  # fixtures, used by name

WORKSHOP = "ws-checks"
DOC = """---
title: Checks, hands on
name: ws-checks
---
# Checks, hands on

## Lab desktop

- base: debian-novnc
- memory: 512m
- checks:
  - Notes written: `test -s ~/notes.txt && grep -q done ~/notes.txt`
  - Hangs (2s): `sleep 61`
  - Chatty (3s): `head -c 3000000 /dev/zero | tr '\\0' x; sleep 62`
  - Forks (2s): `for i in 1 2 3; do (sleep 63; :) & done; sleep 63`

## Steps

1. Write `done` into `~/notes.txt`.
"""


def _client() -> Any:
    import docker

    return docker.from_env(timeout=120)


@pytest.fixture(scope="module")
def klass(docker_engine: Any, registry: Any, test_base: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Class, dict[str, Any]]]:
    import os

    workdir = tmp_path_factory.mktemp("seatagent")
    make_archive(workdir, {f"workshops/{WORKSHOP}.md": DOC})
    prefix = f"docpipe-test-{os.urandom(3).hex()}"
    provision.provision(workdir, LabSettings(registry=registry.host, prefix=prefix))
    c = Class(workdir, registry.host, prefix, free_port(), DOCPIPE_LAB_UPLOAD_LIMIT="64KB")
    try:
        yield c, c.up(WORKSHOP, "--seats", "2")
    finally:
        c.cli("lab", "down", WORKSHOP, "--purge")  # homes outlive `lab down`: the test leaves none
        for image in docker_engine.images.list():
            for tag in image.tags:
                if prefix in tag:
                    docker_engine.images.remove(tag, force=True)


def _request(c: Class, method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
             ) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    ctx = c.tls()
    conn = http.client.HTTPSConnection(host, port, timeout=60, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection((address_of(host), port), timeout=60), server_hostname=host)
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body or None,
                     headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _upload(c: Class, files_url: str, folder: str, name: str, data: bytes) -> tuple[int, dict[str, str], bytes]:
    from urllib3.filepost import encode_multipart_formdata

    status, _, page = _request(c, "GET", files_url + (f"?path={folder}" if folder else ""))
    m = re.search(rb'name="csrf" value="([^"]+)"', page)
    token = m.group(1).decode() if m else "none"
    body, ctype = encode_multipart_formdata([("csrf", token), ("file", (name, data, "application/octet-stream"))])
    return _request(c, "POST", f"{files_url}upload?path={folder}", body,
                    {"Content-Type": ctype, "Origin": origin(files_url), "Sec-Fetch-Site": "same-origin"})


def _sh(seat: dict[str, Any], command: str) -> tuple[int, str]:
    code, out = _client().containers.get(seat["container"]).exec_run(
        ["bash", "-c", command], user="student", environment={"DISPLAY": ":1"})
    return code, out.decode("utf-8", errors="replace")


def _forged(url: str, token: str) -> str:
    return url.replace(token, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))


def test_files_in_and_out_through_the_students_link(klass: tuple[Class, dict[str, Any]]) -> None:
    c, data = klass
    seat = data["seats"][0]
    files_url = seat["files_url"]
    token = urlsplit(files_url).path.split("/")[2]
    assert files_url == seat["url"].split("vnc.html")[0] + "files/"
    status, headers, page = _request(c, "GET", files_url)
    assert status == 200 and headers["cache-control"] == "no-store" and b"Your files" in page
    assert "default-src 'none'" in headers["content-security-policy"]

    status, headers, _ = _upload(c, files_url, "", "report.txt", b"my report\n")
    assert status == 303 and headers["location"] == f"/s/{token}/files/?path=", headers
    assert _sh(seat, "cat ~/report.txt") == (0, "my report\n")

    status, headers, body = _request(c, "GET", files_url + "download")
    assert status == 200 and headers["content-type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        assert tar.extractfile("home/report.txt").read() == b"my report\n"  # type: ignore[union-attr]

    # The other seat's home has no such file: each link reaches its own seat only.
    assert _sh(data["seats"][1], "test -e ~/report.txt")[0] == 1

    forged = _forged(files_url, token)
    assert _request(c, "GET", forged)[0] == 404
    assert _request(c, "GET", forged + "download")[0] == 404
    assert _upload(c, forged, "", "forged.txt", b"x")[0] == 404
    assert _sh(seat, "test -e ~/forged.txt")[0] == 1
    # The view-only key reaches the desktop only, never the files.
    watch = urlsplit(seat["watch_url"])
    watch_token = watch.path.split("/")[2]
    assert _request(c, "GET", f"{watch.scheme}://{watch.netloc}/s/{watch_token}/files/")[0] == 404


def test_uploads_out_of_bounds_write_nothing(klass: tuple[Class, dict[str, Any]]) -> None:
    c, data = klass
    seat = data["seats"][0]
    assert _sh(seat, "mkdir -p ~/sub && ln -sfn /tmp ~/out && ls /tmp | wc -l")[0] == 0
    before = _sh(seat, "ls -A /tmp")[1]
    status, _, body = _upload(c, seat["files_url"], "", "big.bin", b"x" * 70_000)
    assert status == 413 and b"limit" in body
    status, _, body = _upload(c, seat["files_url"], "out", "evil.txt", b"x")
    assert status == 403 and b"outside your home" in body
    status, _, body = _upload(c, seat["files_url"], "sub/../..", "evil.txt", b"x")
    assert status == 400 and b"'..'" in body
    assert _sh(seat, "ls -A /tmp")[1] == before
    assert _sh(seat, "find / -xdev -name evil.txt -o -xdev -name big.bin 2>/dev/null")[1] == ""
    assert _sh(seat, "ls -A ~ | grep -c docpipe-upload")[1].strip() == "0"


def test_clipboard_from_the_browser_reaches_the_desktop(klass: tuple[Class, dict[str, Any]]) -> None:
    """What noVNC's clipboard panel sends (RFB ClientCutText, through the gateway's websocket) is
    what `xclip -o -selection clipboard` reads in the seat."""
    import time

    c, data = klass
    seat = data["seats"][1]
    text = f"pasted from the browser {time.time_ns()}"
    # The desktop's clipboard bridge (autocutsel) starts after the VNC server: on a loaded machine
    # a viewer can connect before it runs, as a student can; wait for the desktop to be whole.
    deadline = time.monotonic() + 60
    while _sh(seat, "pgrep -x autocutsel")[0] != 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    with VncSession(seat["url"], c.tls()) as vnc:
        assert vnc.login(seat["password"])
        vnc.start()
        payload = text.encode("latin-1")
        vnc.ws.send(bytes([6, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload)
        got = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            code, got = _sh(seat, "xclip -o -selection clipboard")
            if code == 0 and got == text:
                break
            time.sleep(0.3)
    assert got == text


def test_progress_shows_a_step_done_once_its_file_exists(klass: tuple[Class, dict[str, Any]]) -> None:
    c, data = klass
    first, second = data["seats"]
    _sh(first, "rm -f ~/notes.txt")
    out = c.cli("lab", "progress", WORKSHOP, "--json")
    assert out.returncode == 0, out.stderr
    before = {s["seat"]: s for s in json.loads(out.stdout)["seats"]}
    assert before[first["seat"]]["checks"][0]["ok"] is False

    assert _sh(first, "echo done > ~/notes.txt")[0] == 0
    out = c.cli("lab", "progress", WORKSHOP, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["steps"] == ["Notes written", "Hangs", "Chatty", "Forks"]
    rows = {s["seat"]: s for s in report["seats"]}
    assert [ch["ok"] for ch in rows[first["seat"]]["checks"]] == [True, False, False, False], (rows, _sh(first, "ls -la ~; id"))
    assert rows[second["seat"]]["checks"][0]["ok"] is False
    hangs, chatty, forks = rows[first["seat"]]["checks"][1:]
    assert hangs["timed_out"] and forks["timed_out"] and chatty["timed_out"]
    assert 2 <= hangs["seconds"] < 5 and 3 <= chatty["seconds"] < 6
    assert len(chatty["output"]) == 4096
    # Nothing a check started is left in the seat, and the seat still serves its desktop.
    assert _sh(first, "pgrep -f 'sleep 6[123]' || true")[1] == ""
    assert c.get(first["url"].split("#")[0]).status == 200

    table = c.cli("lab", "progress", WORKSHOP)
    assert table.returncode == 0 and "1/4" in table.stdout and "Notes written" in table.stdout

    status, headers, body = _request(c, "GET", first["progress_url"] + "?format=json")
    assert status == 200 and headers["cache-control"] == "no-store"
    assert json.loads(body)["checks"][0] == {**json.loads(body)["checks"][0], "name": "Notes written", "ok": True}
    status, _, page = _request(c, "GET", first["progress_url"])
    assert status == 200 and b"1 of 4 steps done" in page
    assert _request(c, "GET", _forged(first["progress_url"], urlsplit(first["url"]).path.split("/")[2]))[0] == 404
