"""Kubernetes seats' agent routes: the files and progress pages of docpipe's desktop base on the
desktop's host, under the desktop's key (links.files_url), every manifest strictly valid."""

from __future__ import annotations

import json
import secrets
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from pipeline.lab.classroom.kube_manifests import K8S_VERSION, manifests
from pipeline.lab.classroom.kube_seats import KubernetesBackend
from tests.lab.test_classroom_kubernetes import DIGEST, SETTINGS, klass, seat
from tests.support.kube_server import KubeServer, schema_errors, server

__all__ = ["server"]  # the fixture

HOST = "lab.example.org"




def test_the_agent_is_routed_on_the_desktops_host_only(server: KubeServer) -> None:
    cls = klass((seat(1), seat(2)))
    objects = manifests(cls, SETTINGS)
    assert [schema_errors(o) for o in objects] == [[]] * len(objects)
    for obj in objects[:4] + objects[-2:]:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    secret, dep, svc = objects[:3]
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "agent", "containerPort": 6081, "protocol": "TCP"} in container["ports"]
    env = container["env"]
    key = env.index({"name": "DOCPIPE_AGENT_KEY", "valueFrom": {"secretKeyRef": {"name": "intro-seat-1", "key": "token"}}})
    # The kubelet fills $(DOCPIPE_AGENT_KEY) in only from a variable listed before it.
    assert env[key + 1] == {"name": "DOCPIPE_AGENT_PREFIX", "value": "/s/$(DOCPIPE_AGENT_KEY)"}
    assert {"name": "agent", "port": 6081, "targetPort": "agent", "protocol": "TCP"} in svc["spec"]["ports"]
    ingress, policy = objects[-2:]
    assert {"port": 6081, "protocol": "TCP"} in policy["spec"]["ingress"][0]["ports"]
    text = json.dumps(ingress)
    assert cls.seats[0].token not in text and cls.seats[1].token not in text  # no key in the Ingress

    backend = KubernetesBackend(SETTINGS)
    infos = backend.up(cls)
    rules = {r["host"]: r["http"]["paths"] for r in server.state.objects[("ingresses", "docpipe", "intro")]["spec"]["rules"]}
    for info, s in zip(infos, cls.seats, strict=True):
        files = urllib.parse.urlsplit(info.files_url)
        desktop = urllib.parse.urlsplit(info.url).hostname
        assert files.hostname == desktop and files.path == f"/s/{s.token}/files/"  # the desktop's key, as on Docker
        assert urllib.parse.urlsplit(info.progress_url).path == f"/s/{s.token}/progress"
        paths = rules[desktop]
        # The Ingress picks the longest matching Prefix: /s/<token>/... reaches the agent, the rest the desktop.
        best = max((p for p in paths if files.path.startswith(p["path"])), key=lambda p: len(p["path"]))
        assert best["backend"]["service"] == {"name": f"intro-{s.seat}", "port": {"name": "agent"}}
        assert [p["path"] for p in paths] == ["/", "/s/"]
        watch = rules[urllib.parse.urlsplit(info.watch_url).hostname]
        assert [p["backend"]["service"]["port"]["name"] for p in watch] == ["desktop"]  # view-only: no files
    # status reads them back the same; a webtop class (no agent) has none.
    assert [i.to_json()["files_url"] for i in backend.status("intro")] == [i.files_url for i in infos]
    webtop = klass((seat(3),), "web")
    webtop = type(webtop)(**{**webtop.__dict__, "desktop_port": 3000, "ports": ()})
    assert "files_url" not in backend.up(webtop)[0].to_json()
    assert all(p["path"] == "/" for r in manifests(webtop, SETTINGS)[-2]["spec"]["rules"] for p in r["http"]["paths"])


def test_cli_lab_up_json_prints_files_urls(server: KubeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`docpipe lab up --backend kubernetes --json`: the engine only answers what the image is (faked:
    no Docker here); the seats are applied to the test server and their files links printed."""
    from types import SimpleNamespace

    from typer.testing import CliRunner

    from pipeline.cli import app
    from pipeline.lab.image import engine

    image = SimpleNamespace(labels={}, attrs={"RepoDigests": [DIGEST]})
    fake = SimpleNamespace(images=SimpleNamespace(get=lambda ref: image))
    monkeypatch.setattr(engine, "client", lambda: fake)
    monkeypatch.setenv("DOCPIPE_LAB_HOST", HOST)
    result = CliRunner().invoke(app, ["lab", "up", "intro", "--seats", "2", "--image", DIGEST, "--backend", "kubernetes",
                                      "--workdir", str(tmp_path / "wd"), "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    assert len(data["seats"]) == 2
    for s in data["seats"]:
        host = urllib.parse.urlsplit(s["url"]).hostname
        assert s["files_url"].startswith(f"https://{host}/s/") and s["files_url"].endswith("/files/")
        assert s["progress_url"] == s["files_url"][:-len("files/")] + "progress"
