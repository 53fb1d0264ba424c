"""Docker seats for real, against the sample workshop's image: `docpipe lab up/status/down`, and a
class through its workdir's gateway (HTTPS with the local CA, noVNC and RFB through nginx, links
that reach only their own seat, no host ports on seats, `lab up` again, the ttl ending a seat with
no command run, two workdirs side by side). Origins, headers, TLS and the seats' network isolation:
test_classroom_docker_isolation.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.lab.classroom.gateway import lab_id
from tests.support.docker_env import (
    Browser,
    SampleBuild,
    VncSession,
    docker_engine,
    pointer_position,
    registry,
    sample_build,
    test_base,
    vnc_login,
    x_windows,
)
from tests.support.lab import Class, fetch, free_port, origin, trust
from tests.support.lab import until as _until

# One engine, one registry, one gateway: these run one after another (README: `pytest -m docker`).
pytestmark = pytest.mark.docker

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WORKSHOP = "ws-go-promisegrid"
CANVAS_SIZE = ("(() => { const c = document.querySelector('#noVNC_container canvas');"
               " return c && c.width > 0 ? c.width + 'x' + c.height : ''; })()")


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
        down = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "down", "ws-go-promisegrid",
                               "--workdir", str(tmp_path / "wd")], capture_output=True, text=True, env=env, timeout=300)
        assert down.returncode == 0, down.stderr
    mine = [f"io.docpipe.workdir={lab_id(tmp_path / 'wd')}"]
    assert not client.containers.list(all=True, filters={"label": mine})
    assert not client.networks.list(filters={"label": mine})
    # The gateway's volume goes; the student's home stays for the next class, until --purge.
    assert [v.attrs["Labels"].get("docpipe.io/seat") for v in client.volumes.list(filters={"label": mine})] == ["seat-1"]
    purge = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "down", "ws-go-promisegrid", "--purge",
                            "--workdir", str(tmp_path / "wd")], capture_output=True, text=True, env=env, timeout=300)
    assert purge.returncode == 0 and "removed 1 home(s)" in purge.stdout, purge.stderr
    assert not client.volumes.list(filters={"label": mine})


@pytest.mark.docker
def test_a_seat_that_cannot_start_leaves_no_half_started_class(sample_build: SampleBuild) -> None:
    """When one seat fails to start, the ones that started are removed again."""
    client = sample_build.client
    image = sample_build.first.tags[0]
    # Something else already holds the name seat-3 would get: the engine refuses that one.
    squatter = client.containers.create(image, name=f"docpipe-{lab_id(sample_build.workdir)}-halfclass-seat-3",
                                        command=["true"], entrypoint=["true"])
    try:
        up = cli(sample_build, "lab", "up", "halfclass", "--image", image, "--seats", "4",
                 "--workdir", str(sample_build.workdir), "--listen", f"127.0.0.1:{free_port()}")
        assert up.returncode != 0
        error = up.stderr.strip().splitlines()[-1]
        assert error.startswith("docpipe: error: starting seats of halfclass failed: Conflict."), up.stderr
        assert f"docpipe-{lab_id(sample_build.workdir)}-halfclass-seat-3" in error
        left = client.containers.list(all=True, filters={"label": "docpipe.io/workshop=halfclass"})
        assert left == []
        assert not client.networks.list(filters={"label": "docpipe.io/class=halfclass"})  # their networks too
        assert not client.volumes.list(filters={"label": "docpipe.io/workshop=halfclass"})  # and the homes it made
        squatter.reload()
        assert squatter.status == "created"  # not ours: untouched
    finally:
        squatter.remove(force=True)
        cli(sample_build, "lab", "down", "halfclass", "--workdir", str(sample_build.workdir))


@pytest.fixture(scope="module")
def klass(sample_build: SampleBuild) -> Iterator[tuple[Class, dict]]:  # type: ignore[type-arg]
    """One class of two seats (and so one gateway) for the whole module."""
    c = Class(sample_build.workdir, sample_build.settings.registry, sample_build.settings.prefix,  # type: ignore[attr-defined]
              free_port())
    try:
        yield c, c.up(WORKSHOP, "--seats", "2")
    finally:
        c.cli("lab", "down", WORKSHOP)
        c.cli("lab", "down", "expiring")


@pytest.mark.docker
def test_two_seats_serve_novnc_over_https_and_speak_rfb_through_the_gateway(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    assert data["workshop"] == WORKSHOP and data["gateway"] == c.public and len(data["seats"]) == 2
    first, second = data["seats"]
    for seat in (first, second):
        assert urlsplit(seat["url"]).hostname.endswith(".lab.localhost") and "?" not in seat["url"]
        page, fragment = seat["url"].split("#", 1)
        assert f"password={seat['password']}" in fragment and seat["password"] not in page
        answer = c.get(page)  # verified against the generated CA
        assert answer.status == 200 and b"noVNC" in answer.body
        assert vnc_login(seat["url"], seat["password"], c.tls())
        assert seat["expires"].endswith("Z")
    # A link opens its own seat only: the other seat's password fails there, and its path on
    # the other seat's origin reaches nothing.
    assert not vnc_login(first["url"], second["password"], c.tls())
    assert c.get(origin(second["url"]) + urlsplit(first["url"]).path).status == 404
    # Unknown keys, unknown hosts and the bare public URL reach no seat.
    assert c.get(origin(first["url"]) + "/s/not-a-token-at-all-0000000000/").status == 404
    assert c.get(f"https://s-{'a' * 26}.lab.localhost:{c.port}/").status == 404
    assert c.get(f"{c.public}/").status == 404
    # Plain HTTP is not served: nginx says so and routes nothing.
    plain = fetch(f"http://127.0.0.1:{c.port}{urlsplit(first['url']).path}", None, {"Host": urlsplit(first["url"]).netloc})
    assert plain.status == 400 and b"plain HTTP request was sent to HTTPS port" in plain.body


@pytest.mark.docker
def test_workshop_port_answers_through_the_gateway(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    seat = data["seats"][0]
    container = docker_client().containers.get(seat["container"])
    serve = "mkdir -p /tmp/www && echo docpipe-port-ok > /tmp/www/ok.txt && cd /tmp/www && exec python3 -m http.server 8080"
    container.exec_run(["sh", "-c", serve], user="student", detach=True)
    _until(lambda: c.get(seat["ports"]["8080"] + "ok.txt").status == 200, 20)
    assert c.get(seat["ports"]["8080"] + "ok.txt").body == b"docpipe-port-ok\n"
    # The other seat's port 8080 is its own (nothing listens there).
    assert c.get(data["seats"][1]["ports"]["8080"] + "ok.txt").status == 502


@pytest.mark.docker
def test_status_shows_time_left_and_watch_links_are_view_only(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    status = c.cli("lab", "status", "--json")
    assert status.returncode == 0, status.stderr
    listed = json.loads(status.stdout)
    assert listed["gateway"] == c.public
    assert sorted(s["url"] for s in listed["seats"] if s["workshop"] == WORKSHOP) == sorted(s["url"] for s in data["seats"])
    text = c.cli("lab", "status", WORKSHOP)
    assert "3h" in text.stdout or "4h" in text.stdout or "3h5" in text.stdout, text.stdout
    watch = c.cli("lab", "watch", WORKSHOP, "--json")
    links = json.loads(watch.stdout)["seats"]
    for seat, link in zip(data["seats"], links, strict=True):
        assert link["watch_url"] == seat["watch_url"] and "view_only=1" in link["watch_url"]
        view_password = link["watch_url"].split("password=")[1]
        assert vnc_login(link["watch_url"], view_password, c.tls())  # accepted (as a viewer)
        assert not vnc_login(link["watch_url"], "wrongpw1", c.tls())
    page = c.get(data["class_url"])
    assert page.status == 200 and page.body.count(b"<iframe") == 2
    assert all(s["watch_url"].split("#")[0].encode() in page.body for s in data["seats"])


@pytest.mark.docker
def test_a_watcher_sees_the_desktop_but_its_input_reaches_nothing(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    seat = data["seats"][1]
    container = docker_client().containers.get(seat["container"])
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



def _status(c: Class, url: str) -> int:
    try:
        return c.get(url).status
    except (ConnectionError, OSError):
        return 0


def docker_client() -> Any:
    import docker

    return docker.from_env(timeout=120)


@pytest.mark.docker
def test_lab_up_again_keeps_every_running_seats_links(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    """A late student: `lab up --seats 3` adds one seat and changes nothing of the two running
    (links, passwords, expiry, containers), read back from the seats' labels; going back to two
    removes the third, its network with it."""
    c, data = klass
    more = c.up(WORKSHOP, "--seats", "3")
    assert [s for s in more["seats"] if s["seat"] != "seat-3"] == data["seats"]
    assert more["class_url"] == data["class_url"]
    third = next(s for s in more["seats"] if s["seat"] == "seat-3")
    assert origin(third["url"]) not in {origin(s["url"]) for s in data["seats"]}
    assert c.get(third["url"].split("#")[0]).status == 200 and c.get(more["class_url"]).body.count(b"<iframe") == 3
    back = c.up(WORKSHOP, "--seats", "2")
    assert back["seats"] == data["seats"]
    client = docker_client()
    assert not client.containers.list(all=True, filters={"name": third["container"]})
    assert not client.networks.list(names=[third["container"]])
    assert c.get(third["url"].split("#")[0]).status == 404


# What a student could run to outlive the ttl: the seat's own timer (a `sleep` under the desktop's
# shell) killed, parent first, so it never stops the seat.
_KILL_TIMER = """
import os, signal
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    except OSError:
        continue
    if argv[0] == b"sleep":
        parent = int(next(l for l in open(f"/proc/{pid}/status") if l.startswith("PPid:")).split()[1])
        os.kill(parent, signal.SIGKILL)
        os.kill(int(pid), signal.SIGKILL)
        print("killed", parent, pid)
"""


def _watch_until_cut(viewers: list[VncSession], until: dt.datetime) -> list[dt.datetime | None]:
    """When each viewer's connection closed (None: still open at `until`)."""
    cut: list[dt.datetime | None] = [None] * len(viewers)
    for v in viewers:
        v.ws.sock.settimeout(0.5)
    while dt.datetime.now(dt.UTC) < until and None in cut:
        for i, v in enumerate(viewers):
            if cut[i] is not None:
                continue
            try:
                v.ws.recv(1)
            except TimeoutError:
                continue
            except (ConnectionError, OSError):
                cut[i] = dt.datetime.now(dt.UTC)
    return cut


@pytest.mark.docker
def test_the_ttl_ends_the_seat_with_no_command_run(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    """`--ttl 1m` and a viewer on each seat: within 30 s of the expiry every viewer is cut off, the
    seat has stopped (kept, for `lab reap`) and the class page is gone; nothing but time passed.
    The second seat's student killed its timer: it keeps running, but the gateway cuts its viewer
    off all the same and routes it no more."""
    c, data = klass
    image = docker_client().containers.get(data["seats"][0]["container"]).attrs["Config"]["Image"]
    up = c.up("expiring", "--image", image, "--seats", "2", "--ttl", "1m")
    seats = up["seats"]
    expires = dt.datetime.strptime(seats[0]["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    assert {s["expires"] for s in seats} == {seats[0]["expires"]} and c.get(up["class_url"]).status == 200
    client = docker_client()
    stubborn = client.containers.get(seats[1]["container"])
    assert stubborn.exec_run(["python3", "-c", _KILL_TIMER], user="student").output.startswith(b"killed")
    viewers = [VncSession(s["watch_url"], c.tls()) for s in seats]
    try:
        for seat, viewer in zip(seats, viewers, strict=True):
            assert viewer.login(seat["watch_url"].split("password=")[1]) and viewer.start() == (1280, 800)
        cut = _watch_until_cut(viewers, expires + dt.timedelta(seconds=30))
    finally:
        for viewer in viewers:
            viewer.close()
    assert None not in cut, f"a viewer was still connected 30 s after the expiry: {cut}"
    assert all(t >= expires - dt.timedelta(seconds=1) for t in cut if t)  # not before it: the ttl, nothing else
    _until(lambda: client.containers.get(seats[0]["container"]).status == "exited",
           max(1.0, (expires + dt.timedelta(seconds=30) - dt.datetime.now(dt.UTC)).total_seconds()))
    # (A request that meets the gateway's reload at that very moment may be dropped: asked again.)
    _until(lambda: _status(c, up["class_url"]) == 404
           and all(_status(c, s["url"].split("#")[0]) == 404 for s in seats), 10)
    assert c.get(data["class_url"]).status == 200  # the other class is untouched
    assert client.containers.get(seats[0]["container"]).status == "exited"  # stopped, not removed
    assert client.containers.get(seats[1]["container"]).status == "running"  # its timer gone: unrouted only
    reap = c.cli("lab", "reap")
    assert reap.returncode == 0 and "removed 2 expired seat" in reap.stderr, reap.stderr
    assert not [s for s in seats if client.containers.list(all=True, filters={"name": s["container"]})]
    assert c.get(data["seats"][0]["url"].split("#")[0]).status == 200


@pytest.mark.docker
def test_two_workdirs_run_the_same_workshop_side_by_side(klass: tuple[Class, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    """Another workdir's class of the same workshop gets its own gateway and networks; asking for an
    address the first one holds is one line, not a takeover; `lab down` there leaves this class be."""
    c, data = klass
    image = docker_client().containers.get(data["seats"][0]["container"]).attrs["Config"]["Image"]
    registry, prefix = c.env["DOCPIPE_LAB_REGISTRY"], c.env["DOCPIPE_LAB_PREFIX"]
    taken = Class(tmp_path / "other", registry, prefix, c.port)
    clash = taken.cli("lab", "up", WORKSHOP, "--image", image, "--seats", "1")
    assert clash.returncode == 1
    assert clash.stderr.strip().splitlines()[-1] == (f"docpipe: error: lab listen address 127.0.0.1:{c.port} is taken by the lab gateway "
                                    f"of workdir {c.workdir.resolve()}: choose another --listen / [lab] listen, or "
                                    "`docpipe lab down` there")
    other = Class(tmp_path / "other", registry, prefix, free_port())
    try:
        theirs = other.up(WORKSHOP, "--image", image, "--seats", "2")
        assert {s["container"] for s in theirs["seats"]}.isdisjoint(s["container"] for s in data["seats"])
        assert other.get(theirs["seats"][0]["url"].split("#")[0]).status == 200
        listed = json.loads(other.cli("lab", "status", "--json").stdout)["seats"]
        assert sorted(s["container"] for s in listed) == sorted(s["container"] for s in theirs["seats"])
    finally:
        down = other.cli("lab", "down", WORKSHOP)
    assert down.returncode == 0 and down.stdout.strip() == f"removed 2 seat(s) of {WORKSHOP}"
    for seat in data["seats"]:  # this workdir's class still answers, over RFB too
        assert c.get(seat["url"].split("#")[0]).status == 200
        assert vnc_login(seat["url"], seat["password"], c.tls())
    mine = json.loads(c.cli("lab", "status", WORKSHOP, "--json").stdout)["seats"]
    assert [s["container"] for s in mine] == [s["container"] for s in data["seats"]]


@pytest.mark.docker
@pytest.mark.browser
def test_a_browser_opens_the_desktop_link_through_the_gateway(klass: tuple[Class, dict]) -> None:  # type: ignore[type-arg]
    c, data = klass
    seat = data["seats"][0]
    container = docker_client().containers.get(seat["container"])
    browser = Browser(trust(c.ca))
    try:
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
    finally:
        browser.close()
