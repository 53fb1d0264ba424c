"""A class with homes, for real (issue 20): a roster of two on the sample workshop's image. A
student's files survive `lab down` + `lab up` and come back in `lab collect`'s archive (symlinks
as symlinks, a student writing meanwhile), `down --purge` removes them; the help link takes the
mouse beside the student while the watch link cannot; `lab status` says who is connected and
`lab reap --idle` stops only the idle seat, which `lab up` starts again with the same links."""

from __future__ import annotations

import json
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.lab.classroom.homes import volume_name
from pipeline.lab.classroom.links import password_in
from tests.support.docker_env import (
    SampleBuild,
    VncSession,
    docker_engine,
    pointer_position,
    registry,
    sample_build,
    test_base,
)
from tests.support.lab import Class, free_port
from tests.support.lab import until as _until

pytestmark = pytest.mark.docker

WORKSHOP = "ws-go-promisegrid"
ROSTER = "name,email\nAda Lovelace,ada@example.org\nGrace Hopper,\n"



def _sh(container: Any, script: str) -> str:
    code, out = container.exec_run(["sh", "-c", script], user="student")
    assert code == 0, out
    return str(out.decode())


@pytest.fixture(scope="module")
def homes_class(sample_build: SampleBuild, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Class, Path, dict[str, Any]]]:
    """One class of two students (one gateway) for the whole module; homes purged at the end."""
    roster = tmp_path_factory.mktemp("roster") / "class.csv"
    roster.write_text(ROSTER)
    c = Class(sample_build.workdir, sample_build.settings.registry, sample_build.settings.prefix,  # type: ignore[attr-defined]
              free_port())
    try:
        data = c.up(WORKSHOP, "--students", str(roster))
        yield c, roster, {s["seat"]: s for s in data["seats"]}
    finally:
        c.cli("lab", "down", WORKSHOP, "--purge")


def _client(sample_build: SampleBuild) -> Any:
    return sample_build.client


@pytest.mark.docker
def test_help_link_shares_full_control_and_is_logged(homes_class: tuple[Class, Path, dict[str, Any]],
                                                    sample_build: SampleBuild) -> None:
    c, _, seats = homes_class
    ada = seats["ada-lovelace"]
    out = c.cli("lab", "help", WORKSHOP, "Ada Lovelace", "--json")
    assert out.returncode == 0, out.stderr
    link = json.loads(out.stdout)["help_url"]
    assert link != ada["watch_url"] and "view_only" not in link and "shared=1" in link
    container = _client(sample_build).containers.get(ada["container"])
    with VncSession(ada["url"], c.tls()) as student, VncSession(link, c.tls()) as helper:
        assert student.login(ada["password"]) and student.start() == (1280, 800)
        assert helper.login(password_in(link)) and helper.start() == (1280, 800)  # both at once
        helper.pointer(300, 400)
        _until(lambda: pointer_position(container) == (300, 400))
        student.pointer(310, 410)  # the student was not cut off: their hand works too
        _until(lambda: pointer_position(container) == (310, 410))
    with VncSession(ada["watch_url"], c.tls()) as watcher:
        assert watcher.login(password_in(ada["watch_url"])) and watcher.start() == (1280, 800)
        watcher.pointer(900, 600)
        time.sleep(1.5)
    assert pointer_position(container) == (310, 410)
    log = (c.workdir / "lab" / f"{WORKSHOP}-audit.log").read_text().splitlines()
    when, seat, student_name, how = log[-1].split("\t")
    assert (seat, student_name, how) == ("ada-lovelace", "Ada Lovelace", "command") and when.endswith("Z")
    assert c.cli("lab", "help", WORKSHOP, "Nobody").returncode == 2
    # The class page offers the same link per seat, through the gateway, which logs it as followed.
    page = c.get(c.class_url).body.decode()
    assert '<a href="help/ada-lovelace"' in page and '<a href="help/grace-hopper"' in page
    followed = c.get(c.class_url.split("#")[0] + "help/ada-lovelace")
    assert followed.status == 302 and followed.headers["location"] == link
    assert c.get(c.class_url.split("#")[0] + "help/nobody").status == 404
    assert c.cli("lab", "status", WORKSHOP).returncode == 0  # any lab command brings the log up to date
    log = (c.workdir / "lab" / f"{WORKSHOP}-audit.log").read_text().splitlines()
    when, seat, student_name, how = log[-1].split("\t")
    assert (seat, student_name, how) == ("ada-lovelace", "Ada Lovelace", "class-page") and when.endswith("Z")
    assert c.cli("lab", "status", WORKSHOP).returncode == 0  # taken once, never twice
    assert len((c.workdir / "lab" / f"{WORKSHOP}-audit.log").read_text().splitlines()) == len(log)


@pytest.mark.docker
def test_status_shows_viewers_and_reap_idle_stops_only_the_idle_seat(
        homes_class: tuple[Class, Path, dict[str, Any]], sample_build: SampleBuild) -> None:
    c, roster, seats = homes_class
    ada, grace = seats["ada-lovelace"], seats["grace-hopper"]
    client = _client(sample_build)

    def status() -> dict[str, Any]:
        out = c.cli("lab", "status", WORKSHOP, "--json")
        assert out.returncode == 0, out.stderr
        return {s["seat"]: s for s in json.loads(out.stdout)["seats"]}

    with VncSession(ada["url"], c.tls()) as student:
        assert student.login(ada["password"]) and student.start() == (1280, 800)
        _until(lambda: status()["ada-lovelace"]["connected"] is True, 20)
        now = status()
        assert now["ada-lovelace"]["last_seen"].endswith("Z")
        assert now["grace-hopper"]["connected"] is False and now["grace-hopper"]["last_seen"] is None
        out = c.cli("lab", "reap", "--idle", "1s")
        assert out.returncode == 0, out.stderr
        assert "stopped 1 idle seat(s)" in out.stdout and grace["container"] in out.stdout
        assert client.containers.get(ada["container"]).status == "running"
        assert client.containers.get(grace["container"]).status == "exited"
    again = {s["seat"]: s for s in c.up(WORKSHOP, "--students", str(roster))["seats"]}
    assert again["grace-hopper"]["url"] == grace["url"] and again["grace-hopper"]["status"] == "running"
    assert c.get(grace["url"].split("#")[0]).status == 200  # routed again by the gateway
    assert c.cli("lab", "reap", "--idle", "soon").returncode == 2


@pytest.mark.docker
def test_homes_outlive_the_seat_are_collected_and_purged(
        homes_class: tuple[Class, Path, dict[str, Any]], sample_build: SampleBuild) -> None:
    c, roster, seats = homes_class
    client = _client(sample_build)
    ada = client.containers.get(seats["ada-lovelace"]["container"])
    # Seeded from the image's home on first use, owned by the student.
    assert _sh(ada, "stat -c %u:%g /home/student /home/student/README.txt").split() == ["1000:1000", "1000:1000"]
    _sh(ada, "mkdir -p ~/work && echo 'ada was here' > ~/work/notes.txt && ln -s /etc/passwd ~/passwd")
    down = c.cli("lab", "down", WORKSHOP)
    assert down.returncode == 0 and "removed 2 seat(s)" in down.stdout, down.stderr
    lab = ada.labels["io.docpipe.workdir"]
    assert client.volumes.get(volume_name(lab, WORKSHOP, "ada-lovelace")).name  # kept
    out = c.cli("lab", "collect", WORKSHOP, "--json")  # collected with no seat running, too
    assert out.returncode == 0, out.stdout + out.stderr
    assert sorted(s["seat"] for s in json.loads(out.stdout)["seats"]) == ["ada-lovelace", "grace-hopper"]
    with tarfile.open(c.workdir / "lab" / f"{WORKSHOP}-work" / "ada-lovelace.tar.gz") as tar:
        notes = tar.extractfile("student/work/notes.txt")
        assert notes is not None and notes.read() == b"ada was here\n"

    seats = {s["seat"]: s for s in c.up(WORKSHOP, "--students", str(roster))["seats"]}
    ada = client.containers.get(seats["ada-lovelace"]["container"])
    grace = client.containers.get(seats["grace-hopper"]["container"])
    assert _sh(ada, "cat ~/work/notes.txt") == "ada was here\n"
    assert _sh(grace, "ls ~/work 2>/dev/null || echo none") == "none\n"  # her own home, not Ada's

    # Grace writes while the class is collected: her archive is still whole.
    grace.exec_run(["sh", "-c", "while :; do head -c 65536 /dev/urandom >> ~/growing.bin; done"],
                   user="student", detach=True)
    time.sleep(1)
    out = c.cli("lab", "collect", WORKSHOP, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    done = {s["seat"]: s for s in json.loads(out.stdout)["seats"]}
    assert set(done) == {"ada-lovelace", "grace-hopper"} and all(s["bytes"] > 0 for s in done.values())
    work = c.workdir / "lab" / f"{WORKSHOP}-work"
    with tarfile.open(work / "ada-lovelace.tar.gz") as tar:
        notes = tar.extractfile("student/work/notes.txt")
        assert notes is not None and notes.read() == b"ada was here\n"
        link = tar.getmember("student/passwd")
        assert link.issym() and link.linkname == "/etc/passwd"  # the link, not the host's or seat's file
        assert not any(m.name.startswith("etc") for m in tar.getmembers())
    with tarfile.open(work / "grace-hopper.tar.gz") as tar:
        names = [m.name for m in tar]  # read to its end: a valid archive
        assert "student/growing.bin" in names and "student/work/notes.txt" not in names
    grace.exec_run(["pkill", "-u", "student", "-f", "growing.bin"])

    purge = c.cli("lab", "down", WORKSHOP, "--purge")
    assert purge.returncode == 0, purge.stderr
    assert "removed 2 home(s)" in purge.stdout and " bytes (" in purge.stdout
    assert int(purge.stdout.split("home(s) of")[1].split(":")[1].split()[0]) > 0
    assert not client.volumes.list(filters={"label": [f"io.docpipe.workdir={lab}", "io.docpipe.home"]})
