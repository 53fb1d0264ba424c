"""`docpipe lab serve` on Kubernetes and as a systemd service: the shipped manifests validated
strictly (and bound to no more than the seats' Role), the unit file read as systemd reads it, and
the launcher's seats on the Kubernetes backend against tests/support/kube_server.py."""

from __future__ import annotations

import configparser
import secrets
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from starlette.testclient import TestClient

from pipeline.lab.classroom.kube_manifests import K8S_VERSION
from pipeline.lab.classroom.kube_seats import KubernetesBackend
from pipeline.lab.launcher import tokens
from pipeline.lab.launcher.app import Options, make_app
from pipeline.lab.launcher.pool import Launcher
from pipeline.lab.launcher.seats import ClassroomSeats
from pipeline.lab.launcher.serve import parse_images
from pipeline.lab.launcher.store import Store
from pipeline.lab.settings import LabSettings
from tests.support.kube_server import KubeServer, server

__all__ = ["server"]  # the fixture

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "registry.example.org:5000/docpipe/intro@sha256:" + "ab" * 32


def docs(name: str) -> list[dict]:  # type: ignore[type-arg]
    return list(yaml.safe_load_all((ROOT / "templates/kubernetes" / name).read_text()))


def test_the_launcher_manifests_validate_and_use_the_seats_role_only() -> None:
    objs = docs("launcher.yaml")
    for obj in objs:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    kinds = {o["kind"]: o for o in objs}
    assert set(kinds) == {"ServiceAccount", "RoleBinding", "PersistentVolumeClaim", "Deployment", "Service",
                          "Ingress", "NetworkPolicy"}  # no Role of its own, nothing cluster-wide
    binding = kinds["RoleBinding"]
    role = next(d for d in docs("rbac.yaml") if d["kind"] == "Role")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "docpipe-launcher", "namespace": "docpipe"}]
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "docpipe-launcher" and pod["securityContext"]["runAsNonRoot"] is True
    assert kinds["Deployment"]["spec"]["replicas"] == 1 and kinds["Deployment"]["spec"]["strategy"]["type"] == "Recreate"
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    args = container["args"]
    assert args[:2] == ["lab", "serve"] and "--backend=kubernetes" in args
    images = parse_images([a.split("=", 1)[1] for a in args if a.startswith("--image=")])
    assert list(images) == ["ws-go-promisegrid"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/start/-/health"
    path = kinds["Ingress"]["spec"]["rules"][0]["http"]["paths"]
    assert [(p["path"], p["pathType"]) for p in path] == [("/start/", "Prefix")]  # the launcher's path only
    policy = kinds["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress"] and len(policy["ingress"]) == 1


def test_the_systemd_unit_runs_lab_serve() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "templates/systemd/docpipe-lab-serve.service")
    service = unit["Service"]
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/docpipe") and argv[1:3] == ["lab", "serve"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGINT"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["User"] != "root" and "docker.service" in unit["Unit"]["Requires"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"




def test_launcher_seats_on_the_kubernetes_backend(server: KubeServer, tmp_path: Path) -> None:
    from pipeline.lab.classroom.instructor import plain_image_info

    settings = LabSettings(host="lab.example.org", ingress_class="nginx", tls_secret="lab-wildcard", backend="kubernetes")
    backend = KubernetesBackend(settings, workdir=tmp_path)
    seats = ClassroomSeats(backend, settings, tmp_path, {"intro": plain_image_info(DIGEST)},
                           public_url="https://lab.example.org")
    launcher = Launcher(seats, Store(tmp_path / "state.db"), warm=1, max_seats=5, starts_per_hour=100,
                        keep_home_seconds=86400)
    launcher.recover()
    launcher.start_background()
    try:
        client = TestClient(make_app(launcher, tokens.load_key(tmp_path / "key"), Options()),
                            base_url="https://lab.example.org", follow_redirects=False)
        deadline = time.monotonic() + 30
        while launcher.status()["warm"] < 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        page = client.get("/start/intro/")
        token = page.text.split('name="csrf" value="')[1].split('"')[0]
        answer = client.post("/start/intro/", data={"csrf": token})
        assert answer.status_code == 303 and answer.headers["location"].startswith("https://s-")
        listed = [s for s in backend.status("intro") if s.origin == "launcher"]
        assert answer.headers["location"] in [s.url for s in listed]
        assert all(s.to_json()["origin"] == "launcher" for s in listed)
        deployment = next(v for k, v in server.state.objects.items() if k[0] == "deployments")
        assert deployment["metadata"]["labels"]["docpipe.io/origin"] == "launcher"
    finally:
        launcher.stop()
