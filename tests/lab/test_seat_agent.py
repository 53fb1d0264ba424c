"""The seat agent (pipeline/lab/seat/agent.py) in-process with aiohttp's test server: its path
rules, uploads (limit, CSRF, `..`, symlinks out), the streamed archive, and the progress page over
the real check runner (pipeline/lab/seat/check.py)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import sys
import tarfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import FormData  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from pipeline.lab.seat import agent  # noqa: E402

CHECK = Path(agent.__file__).with_name("check.py")


def _run(home: Path, body: Callable[[TestClient], Awaitable[None]], limit: int = 1000, checks: Path | None = None) -> None:
    async def main() -> None:
        runner = [sys.executable, str(CHECK), str(checks or home / "none.json")]
        async with TestClient(TestServer(agent.make_app(home, limit, runner))) as client:
            await body(client)
    asyncio.run(main())


def _form(token: str, *files: tuple[str, bytes]) -> FormData:
    form = FormData()
    form.add_field("csrf", token)
    for name, data in files:
        form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    return form


async def _token(client: TestClient, path: str = "") -> str:
    page = await (await client.get(f"/files/?path={path}")).text()
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


def _origin(client: TestClient) -> dict[str, str]:
    return {"Origin": f"http://{client.host}:{client.port}", "Sec-Fetch-Site": "same-origin"}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    (h / "work" / "deep").mkdir(parents=True)
    (h / "work" / "deep" / "a.txt").write_text("alpha\n")
    (h / "<b>odd & name.txt").write_text("x")
    (tmp_path / "secret.txt").write_text("TOPSECRET\n")
    (h / "out").symlink_to(tmp_path)  # a link out of the home
    (h / "worklink").symlink_to("work")  # a link inside it
    return h


def test_listing_escapes_names_and_marks_links_out(home: Path) -> None:
    async def body(c: TestClient) -> None:
        r = await c.get("/files/")
        text = await r.text()
        assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "&lt;b&gt;odd &amp; name.txt" in text and "<b>odd" not in text
        assert "link out of your home" in text
        assert 'href="./?path=work"' in text
        sub = await (await c.get("/files/?path=worklink/deep")).text()
        assert "a.txt" in sub
    _run(home, body)


@pytest.mark.parametrize("path, status", [("..", 400), ("work/../..", 400), ("/etc", 400), ("out", 403),
                                          ("out/secret.txt", 403), ("nothere", 404)])
def test_paths_out_of_the_home_are_refused(home: Path, path: str, status: int) -> None:
    async def body(c: TestClient) -> None:
        for route in ("/files/", "/files/get", "/files/download"):
            r = await c.get(route, params={"path": path})
            assert r.status == status, (route, await r.text())
            assert "TOPSECRET" not in await r.text()
    _run(home, body)


def test_upload_lands_in_the_folder(home: Path) -> None:
    async def body(c: TestClient) -> None:
        token = await _token(c, "work")
        r = await c.post("/files/upload?path=work", data=_form(token, ("hello.txt", b"hi there"), ("b.bin", b"\0\1")),
                         headers=_origin(c), allow_redirects=False)
        assert r.status == 303, await r.text()
        assert r.headers["Location"] == "/files/?path=work"
        got = await c.get("/files/get?path=work/hello.txt")
        assert await got.read() == b"hi there"
    _run(home, body)
    assert (home / "work" / "hello.txt").read_bytes() == b"hi there"
    assert (home / "work" / "b.bin").read_bytes() == b"\0\1"
    assert not [p for p in (home / "work").iterdir() if p.name.startswith(".docpipe-upload")]


def test_uploads_that_would_escape_or_overflow_write_nothing(home: Path, tmp_path: Path) -> None:
    (home / "link-to-secret").symlink_to(tmp_path / "secret.txt")

    async def body(c: TestClient) -> None:
        token = await _token(c)
        h = _origin(c)
        over = await c.post("/files/upload", data=_form(token, ("big.bin", b"x" * 1001)), headers=h)
        assert over.status == 413 and "limit" in await over.text()
        out = await c.post("/files/upload?path=out", data=_form(token, ("x.txt", b"x")), headers=h)
        assert out.status == 403
        dots = await c.post("/files/upload?path=work/../..", data=_form(token, ("x.txt", b"x")), headers=h)
        assert dots.status == 400
        climb = await c.post("/files/upload", data=_form(token, ("../x.txt", b"x")), headers=h, allow_redirects=False)
        assert climb.status == 303  # saved under one plain name, in the home
        # A file named like a symlink out replaces the link; the link's target is untouched.
        link = await c.post("/files/upload", data=_form(token, ("link-to-secret", b"mine")), headers=h,
                            allow_redirects=False)
        assert link.status == 303
    _run(home, body)
    assert (tmp_path / "secret.txt").read_text() == "TOPSECRET\n"
    assert not (tmp_path / "x.txt").exists() and [p.read_bytes() for p in home.glob("*x.txt")] == [b"x"]
    assert not (home / "link-to-secret").is_symlink() and (home / "link-to-secret").read_bytes() == b"mine"
    assert not (home / "big.bin").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "secret.txt"]
    assert not [p for p in home.rglob(".docpipe-upload*")]


def test_upload_needs_this_origin_and_a_fresh_token(home: Path) -> None:
    async def body(c: TestClient) -> None:
        token = await _token(c)
        other = await c.post("/files/upload", data=_form(token, ("a.txt", b"x")),
                             headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})
        assert other.status == 403
        forged = await c.post("/files/upload", data=_form("123." + "0" * 32, ("a.txt", b"x")), headers=_origin(c))
        assert forged.status == 403 and "reload" in await forged.text()
        old = agent.csrf_token(b"k", 1000.0)
        assert agent.csrf_ok(b"k", old, 1001.0) and not agent.csrf_ok(b"k", old, 1000.0 + agent.TOKEN_AGE + 1)
        assert not agent.csrf_ok(b"other", old, 1001.0)
    _run(home, body)
    assert not (home / "a.txt").exists()


def test_download_streams_the_home_without_following_links(home: Path) -> None:
    async def body(c: TestClient) -> None:
        r = await c.get("/files/download")
        assert r.status == 200 and r.headers["Content-Type"] == "application/gzip"
        data = await r.read()
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            assert tar.extractfile("home/work/deep/a.txt").read() == b"alpha\n"  # type: ignore[union-attr]
        assert members["home/out"].issym()  # stored as a link, never followed
        assert not any("secret" in n for n in members)
        sub = await (await c.get("/files/download?path=work")).read()
        with tarfile.open(fileobj=io.BytesIO(sub), mode="r:gz") as tar:
            assert sorted(tar.getnames()) == ["work", "work/deep", "work/deep/a.txt"]
    _run(home, body)


def test_progress_page_runs_the_checks(home: Path, tmp_path: Path) -> None:
    checks = tmp_path / "checks.json"
    checks.write_text(json.dumps({"checks": [
        {"name": "has <a.txt>", "command": "test -f ~/work/deep/a.txt", "timeout": 5},
        {"name": "made hello", "command": "test -x ~/hello", "timeout": 5}]}))

    async def body(c: TestClient) -> None:
        data: dict[str, Any] = await (await c.get("/progress?format=json")).json()
        assert [(x["name"], x["ok"]) for x in data["checks"]] == [("has <a.txt>", True), ("made hello", False)]
        page = await (await c.get("/progress")).text()
        assert "1 of 2 steps done" in page and "has &lt;a.txt&gt;" in page
    import os
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)  # the runner's checks see the seat's home as ~
    try:
        _run(home, body, checks=checks)
    finally:
        if old is not None:
            os.environ["HOME"] = old


def test_with_a_prefix_the_agent_serves_only_its_own(home: Path) -> None:
    """Kubernetes: the Ingress sends a desktop host's every seat path here (no rewrite, no key in the
    Ingress); the agent serves its own seat path only, so a forged key reaches nothing."""
    key = "k3y-OfThisSeat_0123456789abcdef"
    prefix = f"/s/{key}"

    async def main() -> None:
        runner = [sys.executable, str(CHECK), str(home / "none.json")]
        async with TestClient(TestServer(agent.make_app(home, 1000, runner, prefix=prefix))) as c:
            page = await c.get(f"{prefix}/files/?path=work")
            assert page.status == 200 and "deep/" in await page.text()
            for forged in ("/files/?path=work", f"/s/{key[:-1]}x/files/?path=work", f"/s/{key[:-1]}/files/",
                           "/s/x/progress", f"/t/{key}/progress", f"/s/{key}x/files/get?path=work/deep/a.txt"):
                r = await c.get(forged)
                assert r.status == 404 and "alpha" not in await r.text(), forged
            got = await c.get(f"{prefix}/files/get?path=work/deep/a.txt")
            assert await got.read() == b"alpha\n"
            token = re.search(r'name="csrf" value="([^"]+)"', await page.text())
            assert token
            r = await c.post(f"{prefix}/files/upload?path=work", data=_form(token.group(1), ("n.txt", b"new")),
                             headers=_origin(c), allow_redirects=False)
            assert r.status == 303 and r.headers["Location"] == f"{prefix}/files/?path=work"
    asyncio.run(main())
    assert (home / "work" / "n.txt").read_bytes() == b"new"
    # A prefix the kubelet did not fill in (or any odd one) is refused, never served as is.
    for bad in ("/s/$(DOCPIPE_AGENT_KEY)", "s/x", "/s//x", "/s/x/"):
        with pytest.raises(ValueError):
            agent.make_app(home, 1000, prefix=bad)
