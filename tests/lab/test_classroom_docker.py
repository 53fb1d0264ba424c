"""Docker seats for real, against the sample workshop's image: `docpipe lab up/status/down`, and a
class through the gateway (HTTPS with the local CA, noVNC and RFB through nginx, tokens that route
only to their own seat, no host ports on seats, expiry and reap)."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.docker_env import (
    Browser,
    SampleBuild,
    VncSession,
    browser,
    docker_engine,
    pointer_position,
    registry,
    sample_build,
    test_base,
    vnc_login,
    x_windows,
)

# One engine, one registry, one gateway: these run one after another (README: `pytest -m docker`).
pytestmark = pytest.mark.docker

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WORKSHOP = "ws-go-promisegrid"
CANVAS_SIZE = ("(() => { const c = document.querySelector('#noVNC_container canvas');"
               " return c && c.width > 0 ? c.width + 'x' + c.height : ''; })()")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cli(build: SampleBuild, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCPIPE_LAB_REGISTRY": build.settings.registry, "DOCPIPE_LAB_PREFIX": build.settings.prefix}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.docker
def test_seat_without_password_refuses_to_start(sample_build: SampleBuild) -> None:
    container = sample_build.client.containers.run(sample_build.first.tags[0], detach=True)
    try:
        assert container.wait(timeout=60)["StatusCode"] == 64
        assert b"VNC_PASSWORD is not set" in container.logs()
    finally:
        container.remove(force=True)


@pytest.mark.docker
def test_lab_up_unknown_workshop_is_one_line(sample_build: SampleBuild) -> None:
    out = cli(sample_build, "lab", "up", "no-such-workshop", "--workdir", str(sample_build.workdir))
    assert out.returncode == 2
    assert out.stderr.strip().startswith("docpipe: error: no workshop named 'no-such-workshop' in the archive")


@pytest.mark.docker
def test_lab_up_from_a_docs_link_pulls_builds_and_starts(sample_build: SampleBuild, tmp_path: Path) -> None:
    """An instructor's whole flow from one doc: link -> pull -> validate -> build -> seats."""
    from pipeline.emulator import Emulator, load_dataset
    from pipeline.resources import shipped

    client = sample_build.client
    link = "https://docs.google.com/document/d/1wsGoPromiseGridPp9Aa8Ss7Dd6Ff5Gg/edit?usp=sharing"
    with Emulator(load_dataset(shipped("sample-data")), token="lab-test-token") as emu:
        env = {**os.environ, "DOCPIPE_ACCESS_TOKEN": "lab-test-token", "DOCPIPE_DRIVE_ENDPOINT": emu.url,
               "DOCPIPE_DRIVE_FOLDER": "1CSWGdocsRootF0lderXy7Qa2mPn5Lk8Jh",
               "DOCPIPE_LAB_REGISTRY": sample_build.settings.registry, "DOCPIPE_LAB_PREFIX": sample_build.settings.prefix,
               "DOCPIPE_LAB_LISTEN": f"127.0.0.1:{free_port()}"}
        up = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "up", link, "--seats", "1",
                             "--workdir", str(tmp_path / "wd"), "--json"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    try:
        assert up.returncode == 0, up.stderr
        data = json.loads(up.stdout)
        assert data["workshop"] == "ws-go-promisegrid" and len(data["seats"]) == 1
        container = client.containers.get(data["seats"][0]["container"])
        assert container.status == "running"
        image_tags = container.image.tags
        assert any(t.startswith(f"{sample_build.settings.registry}/{sample_build.settings.prefix}/ws-go-promisegrid:")
                   for t in image_tags)
        # The doc's lab section reached the image: its Go toolchain and the file it names.
        out = container.exec_run(["sh", "-c", "command -v go && cat ~/hello/main.go"], user="student")
        assert out.exit_code == 0 and b"hello from the grid" in out.output, out.output
    finally:
        down = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "down", "ws-go-promisegrid"],
                              capture_output=True, text=True, env=env, timeout=300)
        assert down.returncode == 0, down.stderr
    assert not client.containers.list(all=True, filters={"label": "docpipe.io/workshop=ws-go-promisegrid"})


@pytest.mark.docker
def test_a_seat_that_cannot_start_leaves_no_half_started_class(sample_build: SampleBuild) -> None:
    """When one seat fails to start, the ones that started are removed again."""
    client = sample_build.client
    image = sample_build.first.tags[0]
    # Something else already holds the name seat-3 would get: the engine refuses that one.
    squatter = client.containers.create(image, name="docpipe-halfclass-seat-3", command=["true"],
                                        entrypoint=["true"])
    try:
        up = cli(sample_build, "lab", "up", "halfclass", "--image", image, "--seats", "4",
                 "--workdir", str(sample_build.workdir), "--listen", f"127.0.0.1:{free_port()}")
        assert up.returncode != 0
        error = up.stderr.strip().splitlines()[-1]
        assert error.startswith("docpipe: error: starting seats of halfclass failed: Conflict."), up.stderr
        assert "docpipe-halfclass-seat-3" in error
        left = client.containers.list(all=True, filters={"label": "docpipe.io/workshop=halfclass"})
        assert left == []
        squatter.reload()
        assert squatter.status == "created"  # not ours: untouched
    finally:
        squatter.remove(force=True)
        cli(sample_build, "lab", "down", "halfclass", "--workdir", str(sample_build.workdir))


class Class:
    def __init__(self, build: SampleBuild, port: int) -> None:
        self.build, self.port = build, port
        self.public = f"https://localhost:{port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DOCPIPE_LAB_REGISTRY": self.build.settings.registry,  # type: ignore[attr-defined]
               "DOCPIPE_LAB_PREFIX": self.build.settings.prefix,  # type: ignore[attr-defined]
               "DOCPIPE_LAB_LISTEN": f"127.0.0.1:{self.port}", "DOCPIPE_LAB_PUBLIC_URL": self.public,
               "DOCPIPE_WORKDIR": str(self.build.workdir)}
        return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], check=False, capture_output=True,
                              text=True, env=env, timeout=900)

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.build.workdir / "lab" / "ca" / "ca.crt"))

    def get(self, url: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(url, timeout=10, context=self.tls()) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()


@pytest.fixture(scope="module")
def klass(sample_build: SampleBuild) -> Iterator[tuple[Class, dict]]:  # type: ignore[type-arg]
    """One class of two seats (and so one gateway) for the whole module."""
    c = Class(sample_build, free_port())
    up = c.cli("lab", "up", WORKSHOP, "--seats", "2", "--json")
    try:
        assert up.returncode == 0, up.stderr
        yield c, json.loads(up.stdout)
    finally:
        c.cli("lab", "down", WORKSHOP)
        c.cli("lab", "down", "expiring")


@pytest.mark.docker
def test_two_seats_serve_novnc_over_https_and_speak_rfb_through_the_gateway(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    assert data["workshop"] == WORKSHOP and data["gateway"] == c.public and len(data["seats"]) == 2
    first, second = data["seats"]
    for seat in (first, second):
        assert seat["url"].startswith(f"{c.public}/s/") and "?" not in seat["url"]
        page, fragment = seat["url"].split("#", 1)
        assert f"password={seat['password']}" in fragment and seat["password"] not in page
        status, body = c.get(page)  # verified against the generated CA
        assert status == 200 and b"noVNC" in body
        assert vnc_login(seat["url"], seat["password"], c.tls())
        assert seat["ports"]["8080"] == seat["url"].split("vnc.html")[0] + "port/8080/"
        assert seat["expires"].endswith("Z")
    # A token opens its own seat only: the other seat's password fails there.
    assert not vnc_login(first["url"], second["password"], c.tls())
    assert first["url"].split("/s/")[1].split("/")[0] != second["url"].split("/s/")[1].split("/")[0]
    # Unknown tokens reach no seat.
    assert c.get(f"{c.public}/s/not-a-token-at-all-0000000000/")[0] == 404
    assert c.get(f"{c.public}/")[0] == 404
    # Plain HTTP is not served.
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{c.port}/s/x/", timeout=5).read()


@pytest.mark.docker
def test_seats_publish_no_host_port_and_sit_on_the_private_network(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    client = c.build.client
    for seat in data["seats"]:
        container = client.containers.get(seat["container"])  # type: ignore[attr-defined]
        assert not container.attrs["HostConfig"].get("PortBindings")
        assert all(not v for v in (container.attrs["NetworkSettings"]["Ports"] or {}).values())
        assert list(container.attrs["NetworkSettings"]["Networks"]) == ["docpipe-lab"]
        labels = container.labels
        assert labels["app.kubernetes.io/name"] == "docpipe-seat" and labels["docpipe.io/workshop"] == WORKSHOP
        assert labels["docpipe.io/seat"] == seat["seat"] and labels["docpipe.io/expires"] == seat["expires"]
    network = client.networks.get("docpipe-lab")  # type: ignore[attr-defined]
    assert network.attrs["Internal"] is True


@pytest.mark.docker
def test_workshop_port_answers_through_the_gateway(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    seat = data["seats"][0]
    container = c.build.client.containers.get(seat["container"])  # type: ignore[attr-defined]
    serve = "mkdir -p /tmp/www && echo docpipe-port-ok > /tmp/www/ok.txt && cd /tmp/www && exec python3 -m http.server 8080"
    container.exec_run(["sh", "-c", serve], user="student", detach=True)
    deadline = time.monotonic() + 20
    status, body = 0, b""
    while time.monotonic() < deadline:
        status, body = c.get(seat["ports"]["8080"] + "ok.txt")
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200 and body == b"docpipe-port-ok\n", (status, body[:200])
    # The other seat's port 8080 is its own (nothing listens there).
    assert c.get(data["seats"][1]["ports"]["8080"] + "ok.txt")[0] == 502


@pytest.mark.docker
def test_status_shows_time_left_and_watch_links_are_view_only(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    status = c.cli("lab", "status", "--json")
    assert status.returncode == 0, status.stderr
    listed = json.loads(status.stdout)["seats"]
    assert sorted(s["url"] for s in listed if s["workshop"] == WORKSHOP) == sorted(s["url"] for s in data["seats"])
    text = c.cli("lab", "status", WORKSHOP)
    assert "3h" in text.stdout or "4h" in text.stdout or "3h5" in text.stdout, text.stdout
    watch = c.cli("lab", "watch", WORKSHOP, "--json")
    links = json.loads(watch.stdout)["seats"]
    for seat, link in zip(data["seats"], links, strict=True):
        assert link["watch_url"] == seat["watch_url"] and "view_only=1" in link["watch_url"]
        view_password = link["watch_url"].split("password=")[1]
        assert vnc_login(link["watch_url"], view_password, c.tls())  # accepted (as a viewer)
        assert not vnc_login(link["watch_url"], "wrongpw1", c.tls())
    status_code, page = c.get(data["class_url"])
    assert status_code == 200 and page.count(b"<iframe") == 2


@pytest.mark.docker
def test_a_watcher_sees_the_desktop_but_its_input_reaches_nothing(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    seat = data["seats"][1]
    container = c.build.client.containers.get(seat["container"])  # type: ignore[attr-defined]
    with VncSession(seat["url"], c.tls()) as student:  # the student's own link moves the pointer
        assert student.login(seat["password"]) and student.start() == (1280, 800)
        student.pointer(100, 200)
        _until(lambda: pointer_position(container) == (100, 200))
    view_password = seat["watch_url"].split("password=")[1]
    with VncSession(seat["watch_url"], c.tls()) as watcher:
        assert watcher.login(view_password) and watcher.start() == (1280, 800)  # it sees the desktop
        watcher.pointer(900, 600, buttons=1)
        watcher.pointer(900, 600)
        watcher.key(0x0061)  # "a"
        time.sleep(2)
    assert pointer_position(container) == (100, 200)


def _until(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.3)


@pytest.mark.docker
def test_an_expired_seat_gets_404_and_reap_removes_it(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    image = c.build.first.tags[0]  # type: ignore[attr-defined]
    up = c.cli("lab", "up", "expiring", "--image", image, "--seats", "1", "--ttl", "20s", "--json")
    assert up.returncode == 0, up.stderr
    seat = json.loads(up.stdout)["seats"][0]
    assert c.get(seat["url"].split("#")[0])[0] == 200
    time.sleep(28)  # past the expiry, plus the gateway's 5 s sweep
    assert c.get(seat["url"].split("#")[0])[0] == 404  # before any docpipe command ran
    client = c.build.client
    assert client.containers.get(seat["container"])  # type: ignore[attr-defined]
    reap = c.cli("lab", "reap")
    assert reap.returncode == 0, reap.stderr
    assert not client.containers.list(all=True, filters={"name": seat["container"]})  # type: ignore[attr-defined]
    # The other class is untouched.
    assert c.get(data["seats"][0]["url"].split("#")[0])[0] == 200


@pytest.mark.docker
@pytest.mark.browser
def test_a_browser_opens_the_desktop_link_through_the_gateway(klass: tuple[Class, dict], browser: Browser) -> None:  # type: ignore[type-arg]
    c, data = klass
    seat = data["seats"][0]
    container = c.build.client.containers.get(seat["container"])  # type: ignore[attr-defined]
    browser.call("Security.setIgnoreCertificateErrors", ignore=True)  # TLS itself is checked above with the CA
    browser.call("Page.navigate", url=seat["url"])
    assert browser.wait_for(CANVAS_SIZE, 30) == "1280x800"
    # The student's login starts the desktop's browser on the workshop's first port.
    _until(lambda: "Mozilla Firefox" in x_windows(container), 60)
    windows = x_windows(container)
    assert '"tint2"' in windows, windows  # the panel
    time.sleep(3)  # the browser's first paint reaches the canvas
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "lab-class-gateway.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
