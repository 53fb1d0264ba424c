"""Building lab images for real: engine, registry, the debian-novnc base, the provision stage and its events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.lab.image import provision
from pipeline.resources import shipped
from tests.support.docker_env import (
    PLAIN_DOC,
    SAMPLE_WORKSHOP,
    SampleBuild,
    docker_engine,
    make_archive,
    registry,
    sample_build,
    test_base,
)

# One engine, one registry, one gateway: these run one after another (README: `pytest -m docker`).
pytestmark = pytest.mark.docker

docker = pytest.mark.docker


def run_cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, input=stdin, timeout=900)


def test_dry_run_prints_plan_and_dockerfile_without_an_engine(tmp_path: Path) -> None:
    make_archive(tmp_path, {"w/ws-go-promisegrid.md": SAMPLE_WORKSHOP, "n/mcp-1-notes.md": PLAIN_DOC,
                            "w/broken.md": "# Lab desktop\n\nbase: ubuntu:latest\n"})
    env = {"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    out = run_cli("provision", "--workdir", str(tmp_path), "--dry-run", "--registry", "127.0.0.1:5000", env=env)
    assert out.returncode == 2, out.stderr  # the broken workshop fails, after the good one was planned
    assert "ws-go-promisegrid: would build 127.0.0.1:5000/docpipe/ws-go-promisegrid:" in out.stdout
    assert 'RUN ["/bin/sh", "-c", "apt-get update' in out.stdout and '"git", "jq", "python3"' in out.stdout
    assert "docpipe: error: 1 of 2 workshops failed (broken: lab desktop base 'ubuntu:latest': not an allowed base" \
        in out.stderr
    data = json.loads(run_cli("provision", "--workdir", str(tmp_path), "--dry-run", "--json", env=env).stdout)
    assert [w["workshop"] for w in data["workshops"]] == ["broken", "ws-go-promisegrid"]
    assert data["workshops"][1]["dockerfile"].startswith("FROM docpipe/debian-novnc:")


def test_provision_without_engine_is_one_line(tmp_path: Path) -> None:
    make_archive(tmp_path, {"w/ws-go-promisegrid.md": SAMPLE_WORKSHOP})
    out = run_cli("provision", "--workdir", str(tmp_path), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert out.returncode == 1
    assert out.stderr.count("\n") <= 2 and "no Docker Engine answers" in out.stderr


def test_no_archive_is_bad_input(tmp_path: Path) -> None:
    out = run_cli("provision", "--workdir", str(tmp_path / "nothing"), "--dry-run")
    assert out.returncode == 2 and "run `docpipe replay` first" in out.stderr


def test_template_override_is_used(tmp_path: Path) -> None:
    from pipeline.lab.settings import LabSettings, desktop_templates

    tdir = tmp_path / "templates" / "desktop"
    tdir.mkdir(parents=True)
    text = (shipped("templates") / "desktop" / "Dockerfile.j2").read_text()
    # A comment before FROM must not hide the base image the build needs first.
    text = text.replace("FROM {{", "# our course image\nFROM {{", 1).replace("USER root", "USER root\nWORKDIR /srv")
    (tdir / "Dockerfile.j2").write_text(text)
    make_archive(tmp_path, {"w/ws-go-promisegrid.md": SAMPLE_WORKSHOP})
    settings = LabSettings(templates=desktop_templates(tmp_path / "templates"))
    results = provision.provision(tmp_path, settings, dry_run=True).results
    assert "\nWORKDIR /srv\n" in (results[0].dockerfile or "")
    _, (ws,) = provision.archive_workshops(tmp_path, settings)
    assert provision.plan(ws, settings).context.base_ref.startswith("docpipe/debian-novnc:")


@docker
def test_sample_workshop_builds_pushes_and_pulls_back_by_digest(sample_build: SampleBuild) -> None:
    result = sample_build.first
    client = sample_build.client
    assert result.error is None and result.built and result.pushed
    repo = f"{sample_build.settings.registry}/{sample_build.settings.prefix}/ws-go-promisegrid"
    assert result.image == repo and result.tags[1] == f"{repo}:latest"
    assert result.digest.startswith(f"{repo}@sha256:")
    image = client.images.get(result.tags[0])
    labels = image.labels
    assert labels["org.opencontainers.image.title"] == "Go and PromiseGrid, hands on"
    assert labels["org.opencontainers.image.revision"] == sample_build.commit
    assert labels["org.opencontainers.image.source"] == "http://127.0.0.1:3000/cswg/docs"  # no credentials
    # Pull it back from the registry by digest alone.
    for tag in result.tags:
        client.images.remove(tag)
    # Gone here but in the registry: provision finds it there and builds nothing.
    (again,) = provision.provision(sample_build.workdir, sample_build.settings).results
    assert again.error is None and not again.built and not again.pushed and again.digest == result.digest
    pulled = client.images.pull(result.digest)
    try:
        assert pulled.id == image.id
        # What the doc asked for is inside: packages, the pip venv, files in the home, env.
        script = ("command -v git && command -v jq && python -c 'import six; print(six.__version__)'"
                  " && cat README.txt exercises/one.md && echo $GREETING && id -un")
        out = client.containers.run(pulled.id, entrypoint=["/bin/sh", "-c", script], remove=True).decode()
    finally:
        for tag in result.tags:
            pulled.tag(*tag.rsplit(":", 1))
    assert "/usr/bin/git" in out and "/usr/bin/jq" in out and "1.17" in out
    assert "Welcome to the Go workshop." in out and "Write a promise." in out
    assert "hello from the lab" in out and out.strip().endswith("student")


@docker
def test_latest_moves_only_within_its_own_archive(sample_build: SampleBuild) -> None:
    """Engines are shared: another archive building the same workshop gets its own image (the
    archive is part of the tag) and never takes over this archive's `:latest`."""
    import dataclasses

    client = sample_build.client
    ours = sample_build.first
    # This test archive's manifest names no Drive folder, so its Gitea repository names it.
    assert client.images.get(ours.tags[0]).labels["io.docpipe.archive"] == "http://127.0.0.1:3000/cswg/docs"
    other = dataclasses.replace(sample_build.settings, archive="drive:someone-elses-folder", source="")
    (theirs,) = provision.provision(sample_build.workdir, other).results
    assert theirs.error is None and theirs.tags[0] != ours.tags[0]
    assert client.images.get(theirs.tags[0]).labels["io.docpipe.archive"] == "drive:someone-elses-folder"
    assert client.images.get(ours.tags[1]).id == client.images.get(ours.tags[0]).id  # :latest still ours
    client.images.remove(theirs.tags[0], force=True)


@docker
def test_unchanged_spec_builds_nothing(sample_build: SampleBuild) -> None:
    client = sample_build.client
    before = {i.id for i in client.images.list(all=True)}
    start = time.monotonic()
    results = provision.provision(sample_build.workdir, sample_build.settings).results
    noop = time.monotonic() - start
    assert results[0].built is False and results[0].error is None
    assert results[0].digest == sample_build.first.digest
    assert {i.id for i in client.images.list(all=True)} == before
    print(f"sample workshop: first build {sample_build.build_seconds:.1f}s, no-op {noop:.2f}s")
    out = run_cli("provision", "--workdir", str(sample_build.workdir), "--registry", sample_build.settings.registry,
                  "--json", env={"DOCPIPE_LAB_PREFIX": sample_build.settings.prefix,
                                 # the same archive (its Gitea repository), so the same image
                                 "DOCPIPE_GITEA_URL": "http://127.0.0.1:3000", "DOCPIPE_GITEA_OWNER": "cswg",
                                 "DOCPIPE_GITEA_REPO": "docs"})
    assert out.returncode == 0, out.stderr
    (cli_result,) = json.loads(out.stdout)["workshops"]
    assert cli_result["built"] is False and cli_result["digest"] == sample_build.first.digest


@docker
def test_changed_spec_gets_a_new_tag_and_other_workshops_still_build(sample_build: SampleBuild, tmp_path: Path) -> None:
    changed = SAMPLE_WORKSHOP.replace("- ports: 8080", "- ports: 8081")
    make_archive(tmp_path, {"a/ws-go-promisegrid.md": changed, "b/bad.md": "# Lab desktop\n\npackages: vim && id\n"})
    results = provision.provision(tmp_path, sample_build.settings, dry_run=True).results
    bad, good = results
    assert bad.error and "packages" in bad.error and good.error is None
    assert good.tags[0] != sample_build.first.tags[0]


@docker
def test_provision_builds_first_then_tells_the_workshop_hooks_what_it_built(sample_build: SampleBuild,
                                                                             tmp_path: Path) -> None:
    """The built-in builder runs in-process, before the user's `workshop` hooks, which get its result."""
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "workshop").write_text(f"#!/bin/sh\ncat > {tmp_path / 'event.json'}\necho '{{\"seen\": true}}'\n")
    (hooks / "workshop").chmod(0o755)
    out = run_cli("provision", "--workdir", str(sample_build.workdir), "--registry", sample_build.settings.registry,
                  "--json", env={"DOCPIPE_LAB_PREFIX": sample_build.settings.prefix, "DOCPIPE_HOOKS_DIRS": str(hooks),
                                 "DOCPIPE_GITEA_URL": "http://127.0.0.1:3000", "DOCPIPE_GITEA_OWNER": "cswg",
                                 "DOCPIPE_GITEA_REPO": "docs"})
    assert out.returncode == 0, out.stderr
    (result,) = json.loads(out.stdout)["workshops"]
    assert result["outputs"] == [{"seen": True}] and result["digest"] == sample_build.first.digest
    event = json.loads((tmp_path / "event.json").read_text())
    assert event["doc"]["workshop"] == "ws-go-promisegrid" and event["commit"] == sample_build.commit
    assert event["image"]["tags"] == sample_build.first.tags and event["image"]["built"] is False
    assert event["image"]["digest"] == sample_build.first.digest and event["settings"]["dry_run"] is False
    assert event["doc"]["lab"]["image_tag"] == sample_build.first.tags[0].rsplit(":", 1)[1]


@docker
def test_lab_up_after_a_registry_is_set_tags_and_pushes_what_it_has(sample_build: SampleBuild,
                                                                      tmp_path: Path) -> None:
    """A workdir provisioned with no registry, then [lab] registry set: `lab up` for Kubernetes
    (which pulls by digest from the registry) pushes the image it has, not a crash; and where the
    registry has the image and this engine does not, it is pulled."""
    from pipeline.lab.settings import LabSettings

    client, prefix = sample_build.client, sample_build.settings.prefix
    make_archive(tmp_path, {"w/ws-registry-later.md": SAMPLE_WORKSHOP.replace("ws-go-promisegrid", "ws-registry-later")
                            .replace("- ports: 8080", "- ports: 8082")})
    (plain,) = provision.provision(tmp_path, LabSettings(prefix=prefix)).results
    assert plain.error is None and plain.built and not plain.pushed
    repo = f"{sample_build.settings.registry}/{prefix}/ws-registry-later"
    env = {"DOCPIPE_LAB_REGISTRY": sample_build.settings.registry, "DOCPIPE_LAB_PREFIX": prefix}
    args = ("lab", "up", "ws-registry-later", "--workdir", str(tmp_path), "--backend", "kubernetes", "--dry-run",
            "-o", "yaml")
    out = run_cli(*args, env=env)
    assert out.returncode == 0, out.stderr
    (image,) = {line.split("image: ", 1)[1] for line in out.stdout.splitlines() if line.strip().startswith("image: ")}
    assert image.startswith(f"{repo}@sha256:")
    assert "Step 1/" not in out.stderr  # tagged, not built again
    tag = plain.tags[0].rsplit(":", 1)[1]
    assert client.images.get(f"{repo}:{tag}").id == client.images.get(plain.tags[0]).id
    for ref in (f"{repo}:{tag}", f"{repo}:latest", *plain.tags):
        client.images.remove(ref)
    again = run_cli(*args, env=env)
    assert again.returncode == 0, again.stderr
    assert f"image: {image}" in again.stdout and client.images.get(f"{repo}:{tag}")  # pulled back


@docker
def test_build_failure_shows_the_log_tail(docker_engine, test_base) -> None:  # type: ignore[no-untyped-def]
    from pipeline.errors import DocpipeError
    from pipeline.lab.image import engine
    from pipeline.lab.image.dockerfile import make_tar

    tar = make_tar({"Dockerfile": b"FROM debian:bookworm-slim\nRUN echo step-one-output && false\n"})
    with pytest.raises(DocpipeError) as info:
        engine.build(docker_engine, tar, ["docpipe-test/failing:x"], what="failing")
    assert "building failing failed" in info.value.message and "step-one-output" in info.value.message
