"""Kubernetes seats: strict schema validation, a class flow against tests/support/kube_server.py, and a real cluster."""

from __future__ import annotations

import html
import json
import os
import secrets
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from pipeline.errors import BadInput, DocpipeError
from pipeline.lab.classroom.backend import ClassRequest, SeatInfo, SeatRequest
from pipeline.lab.classroom.homes import Purged
from pipeline.lab.classroom.kube_manifests import K8S_VERSION, dump_yaml, manifests
from pipeline.lab.classroom.kube_seats import KubernetesBackend, _api_client, dry_run_yaml
from pipeline.lab.labels import LAUNCHER_ORIGIN
from pipeline.lab.settings import LabSettings
from tests.support.kube_server import KubeServer, schema_errors, server

__all__ = ["server"]  # the fixture

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "registry.example.org:5000/docpipe/intro@sha256:" + "ab" * 32
HOSTILE = ['"quoted" \'name\'', "../x", "A" * 300, "<script>alert(1)</script>", "Zoë 李 \u202e", "x\ny: z"]
SETTINGS = LabSettings(host="lab.example.org", ingress_class="nginx", tls_secret="lab-wildcard")


def seat(i: int, student: str = "", expires: str = "2099-01-01T00:00:00Z") -> SeatRequest:
    return SeatRequest(seat=f"seat-{i}", student=student or f"Student {i}", email="",
                       token=secrets.token_urlsafe(16), watch_token=secrets.token_urlsafe(16),
                       password=secrets.token_urlsafe(6)[:8], view_password=secrets.token_urlsafe(6)[:8],
                       expires=expires)


def klass(seats: tuple[SeatRequest, ...], workshop: str = "intro") -> ClassRequest:
    return ClassRequest(workshop=workshop, class_id=workshop, class_token=secrets.token_urlsafe(16), image=DIGEST,
                        revision="0" * 40, desktop_port=6080, ports=(8080,), memory=2 * 2**30, cpus=1.5,
                        public_url="https://lab.example.org", seats=seats)


# ------------------------------------------------------------------------------ 1: strict schemas


@pytest.mark.parametrize("count", [1, 3, 200])
def test_every_manifest_validates_strictly(count: int) -> None:
    cls = klass(tuple(seat(i, HOSTILE[i % len(HOSTILE)]) for i in range(count)))
    objects = manifests(cls, SETTINGS)
    assert len(objects) == 4 * count + 2  # per seat: Secret, Deployment, Service, home (PVC)
    # kubernetes_validate.validate re-reads its schema files per call: the public API checks one seat's
    # objects, the same strict schemas resolved once (tests/support/kube_server.py) check all of them.
    for obj in objects[:4] + objects[-2:]:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert [schema_errors(obj) for obj in objects] == [[]] * len(objects)
    # what kubectl would read back from the dry-run stream is the same objects
    assert list(yaml.safe_load_all(dump_yaml(objects))) == objects


def test_webtops_and_long_names_validate_and_stay_unique() -> None:
    long_seats = (SeatRequest(**{**seat(1).__dict__, "seat": "a" * 63}),
                  SeatRequest(**{**seat(2).__dict__, "seat": "a" * 62 + "b"}), seat(3))
    cls = ClassRequest(**{**klass(long_seats, "w" * 63).__dict__, "desktop_port": 3000, "ports": (3000, 8080)})
    objects = manifests(cls, SETTINGS)
    assert [schema_errors(obj) for obj in objects] == [[]] * len(objects)
    names = [o["metadata"]["name"] for o in objects if o["kind"] == "Service"]
    assert len(set(names)) == 3 and all(len(n) <= 48 and n[0].isalpha() for n in names)
    container = objects[1]["spec"]["template"]["spec"]["containers"][0]
    assert "runAsNonRoot" not in container["securityContext"]  # webtops start as root and drop themselves
    assert [e["name"] for e in container["env"] if "valueFrom" in e] == ["PASSWORD", "VNC_VIEW_PASSWORD"]


def test_extending_a_class_does_not_restart_its_desktops() -> None:
    one, later = seat(1), SeatRequest(**{**seat(1).__dict__, "expires": "2100-01-01T00:00:00Z"})
    templates = [manifests(klass((s,)), SETTINGS)[1]["spec"]["template"] for s in (one, SeatRequest(
        **{**later.__dict__, "token": one.token, "watch_token": one.watch_token, "password": one.password,
           "view_password": one.view_password}))]
    assert templates[0] == templates[1]


def test_strict_validation_catches_an_unknown_field() -> None:
    obj = manifests(klass((seat(1),)), SETTINGS)[1]
    obj["spec"]["template"]["spec"]["containers"][0]["passwrd"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    assert "passwrd" in schema_errors(obj)[0]


def test_hostile_names_only_reach_annotations() -> None:
    cls = klass(tuple(seat(i, name) for i, name in enumerate(HOSTILE)))
    text = dry_run_yaml(cls, SETTINGS)
    for obj in yaml.safe_load_all(text):
        meta = obj["metadata"]
        assert all(v.isascii() and "<" not in v and "/" not in v and "." not in v
                   for v in [meta["name"], *meta["labels"].values()] if v)
        students = {meta["annotations"].get("docpipe.io/student")} - {None}
        assert students <= {n[:200] for n in HOSTILE}
    assert "<script>" in text and "\ny: z" not in text  # kept as text, escaped, never a YAML key


def test_seat_shape_what_an_operator_checks() -> None:
    secret, dep, svc, home, ingress, policy = manifests(klass((seat(1),)), SETTINGS)
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert dep["spec"]["replicas"] == 1 and "@sha256:" in c["image"]
    assert c["resources"]["requests"] == c["resources"]["limits"] == {"cpu": "1500m", "memory": str(2 * 2**30)}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}} in pod["volumes"]
    assert c["readinessProbe"]["tcpSocket"]["port"] == c["livenessProbe"]["tcpSocket"]["port"] == "desktop"
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"]
    assert all("valueFrom" in e for e in c["env"] if "PASSWORD" in e["name"])
    assert secret["stringData"]["password"] not in json.dumps(dep)
    assert svc["spec"]["type"] == "ClusterIP"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"hosts": ["*.lab.example.org"], "secretName": "lab-wildcard"}]
    assert len(ingress["spec"]["rules"]) == 3  # desktop, watch, port 8080
    hosts = [r["host"] for r in ingress["spec"]["rules"]]
    assert [h.split("-")[0] for h in hosts] == ["s", "s", "p8080"] and len(set(hosts)) == 3
    assert policy["spec"]["ingress"][0]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    # [lab] egress = "none" (the default): Egress with no rule, so seats reach nothing at all.
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and "egress" not in policy["spec"]
    # The student's home: a claim of [lab] home_size, mounted at the home, seeded once by an init container.
    assert home["kind"] == "PersistentVolumeClaim" and home["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "storageClassName" not in home["spec"] and home["metadata"]["name"].startswith("home-intro-")
    assert {"name": "home", "persistentVolumeClaim": {"claimName": home["metadata"]["name"]}} in pod["volumes"]
    assert {"name": "home", "mountPath": "/home/student"} in c["volumeMounts"]
    init = pod["initContainers"][0]
    assert init["image"] == c["image"] and init["securityContext"] == sc and ".docpipe-seeded" in init["command"][2]
    assert pod["securityContext"]["fsGroup"] == 1000
    for obj in (secret, dep, svc, home, ingress, policy):
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "docpipe"
        assert obj["metadata"]["labels"]["docpipe.io/class"] == "intro"


def test_egress_to_the_internet_leaves_private_ranges_and_the_cluster_out() -> None:
    """`[lab] egress = "internet"`: what the Docker gateway's proxy refuses, the NetworkPolicy refuses."""
    from pipeline.lab.classroom.egress import BLOCKED

    cls = ClassRequest(**{**klass((seat(1),)).__dict__, "egress": "internet"})
    policy = manifests(cls, SETTINGS)[-1]
    kubernetes_validate.validate(policy, K8S_VERSION, strict=True)
    to_internet, to_dns = policy["spec"]["egress"]
    assert to_internet == {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(BLOCKED)}}]}
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10"):
        assert private in to_internet["to"][0]["ipBlock"]["except"]
    assert to_dns["ports"] == [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    assert to_dns["to"][0]["podSelector"] == {"matchLabels": {"k8s-app": "kube-dns"}}


def test_bad_input_is_refused() -> None:
    with pytest.raises(BadInput, match="by digest"):
        manifests(ClassRequest(**{**klass((seat(1),)).__dict__, "image": "docpipe/intro:latest"}), SETTINGS)
    with pytest.raises(BadInput, match="DNS-1123"):
        manifests(klass((SeatRequest(**{**seat(1).__dict__, "seat": "../x"}),)), SETTINGS)
    with pytest.raises(BadInput, match="lab host"):
        manifests(klass((seat(1),)), LabSettings(host="evil host/"))


def test_rbac_validates_and_grants_only_what_docpipe_uses() -> None:
    docs = list(yaml.safe_load_all((ROOT / "templates/kubernetes/rbac.yaml").read_text()))
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    role = next(d for d in docs if d["kind"] == "Role")
    granted = {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
               for v in rule["verbs"]}
    assert ("", "pods", "delete") not in granted and ("", "pods", "list") in granted
    assert not any("*" in x for x in granted)
    assert ("apps", "deployments", "patch") in granted and ("", "secrets", "deletecollection") in granted
    assert ("", "persistentvolumeclaims", "deletecollection") in granted
    assert ("", "persistentvolumeclaims", "delete") not in granted  # homes go only with `down --purge`
    # collect and progress run fixed commands in seats through exec (a WebSocket GET; newer API
    # servers also ask for create); nothing attaches to or port-forwards a seat.
    assert {("", "pods/exec", "get"), ("", "pods/exec", "create")} <= granted
    assert not {r for _, r, _ in granted if r in ("pods/attach", "pods/portforward", "pods/log")}
    # reap --idle scales a seat to 0 and no further: only the scale subresource's patch.
    assert {(g, r, v) for g, r, v in granted if r == "deployments/scale"} == {("apps", "deployments/scale", "patch")}


# ------------------------------------------------------------------------------ 2: test API server




def objects(srv: KubeServer, plural: str) -> dict[str, str]:
    """name -> resourceVersion of every stored object of one kind."""
    return {k[2]: v["metadata"]["resourceVersion"] for k, v in srv.state.objects.items() if k[0] == plural}


def test_class_flow_against_the_test_server(server: KubeServer) -> None:
    backend = KubernetesBackend(SETTINGS)  # real client, configured from the generated kubeconfig
    five = tuple(seat(i) for i in range(5))
    infos = backend.up(klass(five))
    assert [i.seat for i in infos] == [f"seat-{i}" for i in range(5)]
    assert all(i.status == "running" for i in infos)
    before = {p: objects(server, p) for p in ("secrets", "deployments", "services", "ingresses", "networkpolicies")}
    assert [len(before[p]) for p in before] == [5, 5, 5, 1, 1]

    backend.up(klass(five))
    assert {p: objects(server, p) for p in before} == before  # nothing changed, not even resourceVersions

    backend.up(klass(five[:3]))
    after = {p: objects(server, p) for p in before}
    for plural in ("secrets", "deployments", "services"):
        assert set(before[plural]) - set(after[plural]) == {"intro-seat-3", "intro-seat-4"}
        assert after[plural] == {k: v for k, v in before[plural].items() if k in after[plural]}
    assert len(server.state.objects[("ingresses", "docpipe", "intro")]["spec"]["rules"]) == 9

    statuses = backend.status("intro")
    # What a Docker seat of docpipe's desktop base (it runs the seat agent) prints, key for key.
    docker_keys = set(SeatInfo("w", "s", "", "", "", "", {}, "", "", "", files_url="f", progress_url="p").to_json())
    assert [set(s.to_json()) for s in statuses] == [docker_keys] * 3
    first = statuses[0].to_json()
    assert first["password"] == five[0].password and first["url"].endswith(f"#password={five[0].password}")
    assert five[0].password not in first["url"].split("#")[0]
    assert first["ports"]["8080"].startswith("https://p8080-") and first["status"] == "running"
    assert first["student"] == "Student 0" and first["image"] == DIGEST
    json.dumps([s.to_json() for s in statuses])

    backend.up(klass(five[:2] + (SeatRequest(**{**five[2].__dict__, "expires": "2020-01-01T00:00:00Z"}),)))
    assert backend.reap("2026-12-04T00:00:00Z") == 1
    assert sorted(objects(server, "deployments")) == ["intro-seat-0", "intro-seat-1"]
    assert len(server.state.objects[("ingresses", "docpipe", "intro")]["spec"]["rules"]) == 6

    assert backend.down("intro") == 2
    # Homes outlive the seats (the reaped one's too), until `down --purge`.
    assert len(objects(server, "persistentvolumeclaims")) == 5
    assert backend.purge_homes("intro") == Purged(5, 5 * 2**30)
    assert not [k for k in server.state.objects if k[0] != "pods"] and not objects(server, "pods")
    deletes = [p for m, p in server.state.requests if m == "DELETE"]
    assert deletes and all("labelSelector=" in p for p in deletes)


def test_a_second_lab_up_keeps_every_seats_links(server: KubeServer, tmp_path: Path) -> None:
    """`lab up` again (more seats, say): the running seats' tokens come back from their Secrets, so
    their links stay what was printed, every seat keeps a host of its own and the Ingress has no
    rule twice; the class page (a file: no docpipe server runs in the cluster) follows the class."""
    import datetime as dt

    from pipeline.lab.classroom.instructor import ImageInfo, class_request

    settings = LabSettings(host="lab.example.org", ingress_class="nginx", tls_secret="lab-wildcard")
    backend = KubernetesBackend(settings, workdir=tmp_path)
    image = ImageInfo(DIGEST, "0" * 40, 6080, (8080,), 2 << 30, 1.0)

    def lab_up(count: int) -> tuple[ClassRequest, list[SeatInfo]]:  # what commands.lab_up does
        cls = class_request("intro", image, settings, count=count, students=None,
                            existing=backend.seat_requests("intro"), now=dt.datetime.now(dt.UTC),
                            class_token=backend.class_token("intro"))
        return cls, backend.up(cls)

    first, seats = lab_up(2)
    again, more = lab_up(3)
    assert [s.to_json() for s in more[:2]] == [s.to_json() for s in seats]
    assert again.seats[:2] == first.seats
    rules = server.state.objects[("ingresses", "docpipe", "intro")]["spec"]["rules"]
    hosts = [r["host"] for r in rules]
    assert len(hosts) == len(set(hosts)) == 3 * 3
    assert {urllib.parse.urlsplit(s.url).hostname for s in more} | {urllib.parse.urlsplit(s.watch_url).hostname for s in more} \
        <= set(hosts)
    page = tmp_path / "lab" / "intro-class.html"
    assert backend.class_url(again) == page.resolve().as_uri() and (page.stat().st_mode & 0o077) == 0
    assert page.read_text().count("<iframe") == 3 and all(html.escape(s.watch_url) in page.read_text() for s in more)
    assert backend.down("intro") == 3 and not page.exists()


def test_status_reports_starting_until_pods_are_ready(server: KubeServer) -> None:
    server.state.ready_after = 3600
    backend = KubernetesBackend(SETTINGS)
    assert {i.status for i in backend.up(klass((seat(1), seat(2))))} == {"starting"}
    server.state.ready_after = 0
    assert {i.status for i in backend.status()} == {"running"}


def test_overload_is_retried_and_a_full_expiry_leaves_nothing(server: KubeServer) -> None:
    backend = KubernetesBackend(SETTINGS)
    server.state.fail_next = [503, 429]
    old = tuple(seat(i, expires="2020-01-01T00:00:00Z") for i in range(2))
    assert len(backend.up(klass(old))) == 2
    assert {s.status for s in backend.status("intro")} == {"expired"}
    assert backend.reap("2026-12-04T00:00:00Z") == 2
    assert not [k for k in server.state.objects if k[0] not in ("pods", "persistentvolumeclaims")]
    assert len(objects(server, "persistentvolumeclaims")) == 2  # the homes stay
    server.state.fail_next = [503] * 4
    with pytest.raises(DocpipeError, match="503"):
        backend.status()


def _raw(srv: KubeServer, method: str, path: str, body: Any = None, ctype: str = "application/apply-patch+yaml",
         auth: bool = True) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(srv.url + path, method=method, data=json.dumps(body).encode() if body else None)
    req.add_header("Content-Type", ctype)
    if auth:
        req.add_header("Authorization", f"Bearer {srv.token}")
    try:
        with urllib.request.urlopen(req) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_test_server_rejects_what_a_real_server_would(server: KubeServer) -> None:
    good = manifests(klass((seat(1),)), SETTINGS)[1]
    path = "/apis/apps/v1/namespaces/docpipe/deployments/intro-seat-1"
    unknown = json.loads(json.dumps(good))
    unknown["spec"]["replicaz"] = 2
    wrong_kind = {**good, "kind": "StatefulSet"}
    wrong_version = {**good, "apiVersion": "apps/v1beta1"}
    cases = [
        (_raw(server, "PATCH", path + "?fieldManager=docpipe", unknown), 400, "unknown field"),
        (_raw(server, "PATCH", path + "?fieldManager=docpipe", wrong_kind), 400, "do not match"),
        (_raw(server, "PATCH", path + "?fieldManager=docpipe", wrong_version), 400, "do not match"),
        (_raw(server, "PATCH", path, good), 400, "fieldManager"),
        (_raw(server, "PATCH", path + "?fieldManager=docpipe", good, ctype="application/merge-patch+json"), 415, ""),
        (_raw(server, "PATCH", path + "?fieldManager=docpipe", good, auth=False), 401, ""),
        (_raw(server, "GET", "/apis/apps/v1/namespaces/docpipe/statefulsets"), 404, ""),
        (_raw(server, "GET", "/api/v1/namespaces/docpipe/secrets?labelSelector=a%20in%20(b"), 400, ""),
    ]
    for (code, body), want, text in cases:
        assert (code, body["kind"], body["code"]) == (want, "Status", want) and text in body["message"]
    assert not server.state.objects
    assert _raw(server, "PATCH", path + "?fieldManager=docpipe", good)[0] == 201


def test_client_errors_are_one_line_and_never_leak_passwords(server: KubeServer) -> None:
    backend = KubernetesBackend(LabSettings(host="lab.example.org", namespace="docpipe"))
    bad = manifests(klass((seat(1),)), SETTINGS)[0]
    bad["stringData"]["password"] = "hunter2-secret"
    bad["unexpected"] = True
    with pytest.raises(Exception) as err:
        backend.apply(bad)
    assert "400" in str(err.value) and "hunter2" not in str(err.value) and "\n" not in str(err.value)


def test_context_picks_the_kubeconfig_context(server: KubeServer, tmp_path: Path) -> None:
    with pytest.raises(DocpipeError, match="kubernetes configuration"):
        _api_client("no-such-context")
    assert _api_client("test").configuration.host == server.url


# ------------------------------------------------------------------------------ 3: a real cluster


@pytest.mark.skipif(not os.environ.get("DOCPIPE_TEST_KUBECONFIG"),
                    reason="DOCPIPE_TEST_KUBECONFIG is not set: no real cluster to run a class on")
def test_class_flow_on_a_real_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", os.environ["DOCPIPE_TEST_KUBECONFIG"])
    namespace = os.environ.get("DOCPIPE_TEST_NAMESPACE", "docpipe")
    image = os.environ.get("DOCPIPE_TEST_IMAGE", DIGEST)
    backend = KubernetesBackend(LabSettings(host="lab.example.org", namespace=namespace))
    workshop = f"t{secrets.token_hex(4)}"
    cls = klass(tuple(seat(i) for i in range(3)), workshop)
    cls = ClassRequest(**{**cls.__dict__, "image": image})
    try:
        assert len(backend.up(cls)) == 3
        # generation, not resourceVersion: the controller keeps writing a Deployment's status
        versions = {d["metadata"]["name"]: d["metadata"]["generation"]
                    for d in backend.list_objects("Deployment", f"docpipe.io/workshop={workshop}")}
        backend.up(cls)
        assert {d["metadata"]["name"]: d["metadata"]["generation"]
                for d in backend.list_objects("Deployment", f"docpipe.io/workshop={workshop}")} == versions
        assert len(backend.up(ClassRequest(**{**cls.__dict__, "seats": cls.seats[:2]}))) == 2
        assert {s.seat for s in backend.status(workshop)} == {"seat-0", "seat-1"}
    finally:
        assert backend.down(workshop) in (0, 2)
    assert backend.status(workshop) == []


def test_cli_dry_run_prints_a_stream_kubectl_applies(tmp_path: Path) -> None:
    """`docpipe lab up --backend kubernetes --dry-run -o yaml`: no cluster, no engine (the image is a
    digest), one seat per roster line, every document strictly valid, hostile names inert."""
    import subprocess
    import sys

    roster = tmp_path / "roster.csv"
    roster.write_text('name,email\nAda Lovelace,ada@example.org\n"<script>alert(1)</script>",\n../x,\n')
    image = "registry.example.org:5000/docpipe/ws-go@sha256:" + "ab" * 32
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "lab", "up", "ws-go", "--backend", "kubernetes", "--dry-run", "-o", "yaml",
         "--image", image, "--students", str(roster), "--workdir", str(tmp_path / "wd")],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "KUBECONFIG": str(tmp_path / "none"), "DOCPIPE_LAB_HOME_SIZE": "5Gi",
             "DOCPIPE_LAB_STORAGE_CLASS": "fast-ssd"})
    assert proc.returncode == 0, proc.stderr
    docs = list(yaml.safe_load_all(proc.stdout))
    assert sorted(d["kind"] for d in docs) == (["Deployment"] * 3 + ["Ingress", "NetworkPolicy"]
                                               + ["PersistentVolumeClaim"] * 3 + ["Secret"] * 3 + ["Service"] * 3)
    claims = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert {c["spec"]["resources"]["requests"]["storage"] for c in claims} == {"5Gi"}
    assert {c["spec"]["storageClassName"] for c in claims} == {"fast-ssd"}
    assert not any("lovelace" in c["metadata"]["name"] for c in claims)  # a hash, never the name
    for bad in ("1GB", "0Gi", "lots"):
        refused = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "lab", "up", "ws-go", "--backend", "kubernetes", "--dry-run",
             "-o", "yaml", "--image", image, "--workdir", str(tmp_path / "wd")],
            capture_output=True, text=True, timeout=120, env={**os.environ, "DOCPIPE_LAB_HOME_SIZE": bad})
        assert refused.returncode == 2 and "HOME_SIZE: must be a size" in refused.stderr, refused.stderr
        assert len(refused.stderr.splitlines()) == 1
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments} == {image}
    assert "<script>" not in json.dumps([d["metadata"].get("labels") for d in docs])
    # Without -o yaml, or on the Docker backend, --dry-run says what it needs.
    bad = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "up", "ws-go", "--dry-run", "--image", image,
                          "--workdir", str(tmp_path / "wd")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "-o yaml" in bad.stderr


def test_a_launcher_visitors_home_outlives_each_of_their_seats() -> None:
    """`lab serve` starts each seat as a class of its own, named at random; the visitor's opaque
    id (the seats' student) is what their home is keyed by, so their next seat mounts it again."""
    def launched(name: str, visitor: str) -> ClassRequest:
        one = SeatRequest(**{**seat(1, student=visitor).__dict__, "seat": name})
        return ClassRequest(**{**klass((one,)).__dict__, "class_id": name, "origin": LAUNCHER_ORIGIN})

    def claims(cls: ClassRequest) -> list[str]:
        return [o["metadata"]["name"] for o in manifests(cls, SETTINGS)
                if o["kind"] == "PersistentVolumeClaim"]

    first, again, other = launched("launch-1a2b", "v-7f3c"), launched("launch-9d8e", "v-7f3c"), launched("launch-1a2b", "v-0000")
    assert claims(first) == claims(again) and claims(first) != claims(other)
    assert "launch-1a2b" not in claims(first)[0]
    # A class keeps a home per roster seat, as before.
    assert claims(klass((seat(1),))) != claims(klass((seat(2),)))
