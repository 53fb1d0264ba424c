"""Seats for real: `docpipe lab up/status/down` against the sample workshop's image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.docker_env import (
    SampleBuild,
    docker_engine,
    registry,
    sample_build,
    test_base,
)

# One engine, one registry, one gateway: these run one after another (README: `pytest -m docker`).
pytestmark = pytest.mark.docker


def free_port() -> int:
    import socket

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


def test_lab_up_rejects_bad_seat_counts_and_unknown_workshops(tmp_path: Path) -> None:
    from tests.support.docker_env import SAMPLE_WORKSHOP, make_archive

    make_archive(tmp_path, {"w/ws-go-promisegrid.md": SAMPLE_WORKSHOP})
    run = lambda *a: subprocess.run([sys.executable, "-m", "pipeline.cli", *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=120, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"})
    for count in ("0", "31"):
        bad = run("lab", "up", "ws-go-promisegrid", "--seats", count, "--workdir", str(tmp_path))
        assert bad.returncode == 2 and "--seats must be between 1 and 30" in bad.stderr


@pytest.mark.parametrize("ref,doc_id", [
    ("https://docs.google.com/document/d/1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789/edit", "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("ws-go-promisegrid", None),
    ("mcp-376-cswg-workshop-virtual-desktops", None),
])
def test_workshop_argument_may_be_a_docs_link(ref: str, doc_id: str | None) -> None:
    from pipeline.lab.classroom.instructor import doc_id_of

    assert doc_id_of(ref) == doc_id


def test_a_docs_link_pulls_just_that_doc_and_finds_its_lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The instructor flow's first half (no engine needed): link -> pull -> replay -> validated spec."""
    from pipeline.emulator import Emulator, load_dataset
    from pipeline.lab.classroom.instructor import resolve_workshop
    from pipeline.lab.settings import from_values
    from pipeline.resources import shipped

    with Emulator(load_dataset(shipped("sample-data")), token="lab-test-token") as emu:
        monkeypatch.setenv("DOCPIPE_ACCESS_TOKEN", "lab-test-token")
        monkeypatch.setenv("DOCPIPE_DRIVE_ENDPOINT", emu.url)
        monkeypatch.setenv("DOCPIPE_DRIVE_FOLDER", "1CSWGdocsRootF0lderXy7Qa2mPn5Lk8Jh")
        monkeypatch.chdir(tmp_path)
        link = "https://docs.google.com/document/d/1wsGoPromiseGridPp9Aa8Ss7Dd6Ff5Gg/edit"
        commit, ws = resolve_workshop(tmp_path / "wd", link, from_values({}))
    assert ws is not None and ws.error is None and ws.spec is not None
    assert ws.name == "ws-go-promisegrid" and ws.doc_id == "1wsGoPromiseGridPp9Aa8Ss7Dd6Ff5Gg" and len(commit) == 40
    assert ws.spec.base == "debian-novnc" and "golang-go" in ws.spec.packages
    assert "hello/main.go" in dict(ws.spec.files)
    # Only that doc was pulled.
    assert [p.name for p in (tmp_path / "wd" / "store" / "docs").iterdir()] == ["1wsGoPromiseGridPp9Aa8Ss7Dd6Ff5Gg.json"]


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
