"""`docpipe lab serve` for real: the sample workshop's image, Docker seats, the workdir's HTTPS
gateway routing /start/ to the launcher's unix socket, and headless Chromium going from the
rendered tutorial page, through its start button and "Start my desktop", to a working noVNC
desktop; the same browser back on the same desktop; the launcher killed with -9 and restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.lab.labels import ORIGIN_LABEL
from tests.support.browser import serve as serve_dir
from tests.support.docker_env import (
    Browser,
    SampleBuild,
    docker_engine,
    registry,
    sample_build,
    test_base,
    vnc_login,
)
from tests.support.lab import Class, free_port, trust

pytestmark = pytest.mark.docker
__all__ = ["docker_engine", "registry", "sample_build", "test_base"]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WS = "ws-go-promisegrid"
CANVAS_SIZE = ("(() => { const c = document.querySelector('#noVNC_container canvas');"
               " return c && c.width > 0 ? c.width + 'x' + c.height : ''; })()")


class Launcher:
    """`docpipe lab serve` in a process of its own (its own session: kill -9 reaches only it)."""

    def __init__(self, c: Class, log: Path) -> None:
        self.c, self.log = c, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        out = self.log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "lab", "serve"], env=self.c.env,
                                     stdout=out, stderr=out, start_new_session=True,
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as in a terminal
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
            try:
                if self.c.get(f"{self.c.public}/start/{WS}/").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"lab serve did not answer: {self.log.read_text()[-2000:]}")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def launcher_seats(c: Class) -> list[dict]:  # type: ignore[type-arg]
    out = c.cli("lab", "status", "--json")
    assert out.returncode == 0, out.stderr
    return [s for s in json.loads(out.stdout)["seats"] if s["origin"] == "launcher"]


def where(browser: Browser, launcher: Launcher) -> str:
    """What the browser shows and the launcher said: the message of a failed step."""
    href = str(browser.evaluate("document.location.href"))
    text = browser.evaluate("document.body ? document.body.innerText.slice(0, 500) : ''")
    status = browser.evaluate("(document.querySelector('#noVNC_status') || {}).textContent")
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / "lab-serve-failed.png")
    try:
        password = href.split("password=")[1].split("&")[0]
        rfb = vnc_login(href, password, launcher.c.tls())
    except Exception as exc:  # what a plain RFB client gets, for the message
        rfb = f"{type(exc).__name__}: {exc}"
    return (f"at {href}: {text!r}, noVNC says {status!r}, failed loads {browser.failed_loads()}, "
            f"RFB login {rfb}; lab serve: {launcher.log.read_text()[-1500:]}")


# Chromium drops every request in flight when the host's addresses change (net::ERR_NETWORK_CHANGED),
# and this browser runs on the engine's own host, where the pool's next seat brings a network of
# its own up exactly while the visitor's desktop loads. A visitor on another machine never sees
# that; here the page is loaded again then, and only then.
HOST_ARTIFACT = "net::ERR_NETWORK_CHANGED"


def desktop(browser: Browser, launcher: Launcher) -> str:
    """The noVNC canvas's size once the desktop is up (asserted)."""
    size = browser.wait_for(CANVAS_SIZE, 60)
    failed = browser.failed_loads()
    if not size and failed and all(f.endswith(HOST_ARTIFACT) for f in failed):
        browser.events.clear()
        browser.call("Page.reload")
        size = browser.wait_for(CANVAS_SIZE, 60)
    assert size == "1280x800", where(browser, launcher)
    return str(size)


def _until(check, seconds: float = 120.0) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


@pytest.fixture
def served(sample_build: SampleBuild, tmp_path: Path) -> Iterator[tuple[Class, Launcher]]:
    import shutil

    workdir = tmp_path / "wd"
    shutil.copytree(sample_build.workdir / "archive", workdir / "archive", symlinks=True)
    port = free_port()
    c = Class(workdir, sample_build.settings.registry, sample_build.settings.prefix, port,  # type: ignore[attr-defined]
              DOCPIPE_LAB_WARM="1", DOCPIPE_LAB_MAX_SEATS="4")
    launcher = Launcher(c, tmp_path / "serve.log")
    try:
        launcher.start()
        yield c, launcher
    finally:
        launcher.stop()
        c.cli("lab", "down", WS, "--purge")  # homes outlive `lab down`: the test leaves none


def test_a_visitor_goes_from_the_tutorial_to_a_desktop_of_their_own(served, sample_build: SampleBuild) -> None:  # type: ignore[no-untyped-def]
    from pipeline.publish import publish
    from pipeline.render import render
    from tests.support.archive import sample_archive

    c, launcher = served
    # The sample data's site, rendered with [lab] public_url: its start button leads to the launcher.
    site_dir = c.workdir.parent / "site-wd"
    sample_archive(site_dir)
    render(site_dir, lab_url=c.public)
    publish(site_dir)
    _until(lambda: len(launcher_seats(c)) == 1)  # the warm pool
    browser = Browser(trust(c.ca))
    try:
        with serve_dir(site_dir / "public") as site:
            browser.call("Page.enable")
            browser.call("Network.enable")
            browser.call("Page.navigate", url=f"{site}/workshops/{WS}.html")
            link = browser.wait_for("(() => { const a = [...document.querySelectorAll('a')].find("
                                    "a => a.textContent.trim() === 'Start a desktop for this workshop');"
                                    " return a ? a.href : ''; })()", 30)
            assert link == f"{c.public}/start/{WS}/"
            ARTIFACTS.mkdir(exist_ok=True)
            browser.screenshot(ARTIFACTS / "lab-serve-tutorial.png")
            browser.evaluate("[...document.querySelectorAll('a')].find(a => a.textContent.trim() === "
                             "'Start a desktop for this workshop').click()")
            assert browser.wait_for("document.location.href === " + json.dumps(link) +
                                    " && !!document.querySelector('#start')", 30)
            browser.events.clear()
            browser.evaluate("document.querySelector('#start').click()")
            desktop(browser, launcher)
            first = str(browser.evaluate("document.location.href"))
            assert ".lab.localhost:" in first and "/vnc.html" in first
            time.sleep(2)
            ARTIFACTS.mkdir(exist_ok=True)
            browser.screenshot(ARTIFACTS / "lab-serve-desktop.png")
            assert (ARTIFACTS / "lab-serve-desktop.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            seats = launcher_seats(c)
            mine = [s for s in seats if s["url"].split("#")[0] == first.split("#")[0]]
            assert len(mine) == 1 and mine[0]["student"].startswith("visitor-")
            container = sample_build.client.containers.get(mine[0]["container"])
            assert container.labels[ORIGIN_LABEL] == "launcher"
            # The pool refills after the warm seat went to the visitor.
            _until(lambda: len(launcher_seats(c)) == 2)

            def press_again() -> str:
                browser.call("Page.navigate", url=link)
                assert browser.wait_for("!!document.querySelector('#start')", 30)
                browser.events.clear()
                browser.evaluate("document.querySelector('#start').click()")
                desktop(browser, launcher)
                return str(browser.evaluate("document.location.href")).split("#")[0]

            # The same browser (its cookie) comes back to the same desktop.
            assert press_again() == first.split("#")[0]
            # The launcher killed with -9 and started again: the same desktop, no seat started
            # twice, the pool still full.
            before = sorted(s["container"] for s in launcher_seats(c))
            launcher.kill9()
            launcher.start()
            assert press_again() == first.split("#")[0]
            time.sleep(3)
            assert sorted(s["container"] for s in launcher_seats(c)) == before
    finally:
        browser.close()
