"""What one student can do to another, for real: origins (a host per seat, class page and workshop
port; a port of each behind an IP address), what the gateway lets through (Service-Worker-Allowed,
cookies, caching, Referer, Host), TLS, the gateway's own confinement, the seats' networks (nothing
but the gateway on them: no other seat, not the host), the egress proxy, and Chromium refusing a
student's Service Worker over another origin."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from pipeline.lab.classroom import links
from pipeline.lab.classroom.gateway import lab_id
from tests.support.docker_env import (
    Browser,
    SampleBuild,
    docker_engine,
    registry,
    sample_build,
    test_base,
    vnc_login,
)
from tests.support.lab import Class, fetch, free_port, origin, trust
from tests.support.seat_scripts import APP, PROBE

pytestmark = pytest.mark.docker

WORKSHOP = "ws-go-promisegrid"


def _client() -> Any:
    import docker

    return docker.from_env(timeout=120)


def _serve_app(container: Any, port: int, cookie_domain: str) -> None:
    container.exec_run(["python3", "-c", APP, str(port), cookie_domain], user="student", detach=True)


@pytest.fixture(scope="module")
def klass(sample_build: SampleBuild) -> Iterator[tuple[Class, dict[str, Any]]]:
    """Two seats behind a host name (lab.localhost), outbound internet on, and a student's app
    (tests/support/seat_scripts.py) on the first seat's workshop port 8080."""
    c = Class(sample_build.workdir, sample_build.settings.registry, sample_build.settings.prefix,  # type: ignore[attr-defined]
              free_port(), DOCPIPE_LAB_EGRESS="internet")
    try:
        data = c.up(WORKSHOP, "--seats", "2")
        _serve_app(_client().containers.get(data["seats"][0]["container"]), 8080, "lab.localhost")
        port_url = data["seats"][0]["ports"]["8080"]
        for _ in range(60):
            if c.get(port_url + "echo").status == 200:
                break
            import time

            time.sleep(0.5)
        yield c, data
    finally:
        c.cli("lab", "down", WORKSHOP)


def test_every_seat_the_class_page_and_each_workshop_port_are_origins_of_their_own(
        klass: tuple[Class, dict[str, Any]]) -> None:
    c, data = klass
    first, second = data["seats"]
    desktops = [origin(s["url"]) for s in data["seats"]]
    watches = [origin(s["watch_url"]) for s in data["seats"]]
    ports = [origin(s["ports"]["8080"]) for s in data["seats"]]
    every = desktops + watches + ports + [origin(data["class_url"])]
    assert len(set(every)) == len(every), every
    assert all(urlsplit(o).hostname.endswith(".lab.localhost") and urlsplit(o).port == c.port for o in every)  # type: ignore[union-attr]
    for url in (first["url"].split("#")[0], first["watch_url"].split("#")[0], data["class_url"]):
        assert c.get(url).status == 200
    # A link's path on any other origin of the gateway reaches nothing.
    assert c.get(ports[0] + urlsplit(first["url"]).path).status == 404
    assert c.get(desktops[1] + urlsplit(first["ports"]["8080"]).path + "echo").status == 404


def test_what_a_seat_answers_is_filtered_at_the_gateway(klass: tuple[Class, dict[str, Any]]) -> None:
    c, data = klass
    seat = data["seats"][0]
    port = seat["ports"]["8080"]
    worker = c.get(port + "sw.js")
    assert worker.status == 200 and b"hijacked" in worker.body
    assert "service-worker-allowed" not in worker.headers  # the app sent "/"
    # The app's cookie for the whole lab.localhost is held to its own host and path.
    [cookie] = worker.cookies
    assert f"Domain={urlsplit(port).hostname};" in cookie and f"Path={urlsplit(port).path}" in cookie
    for answer in (worker, c.get(seat["url"].split("#")[0]), c.get(data["class_url"])):
        h = answer.headers
        assert h["cache-control"] == "no-store" and h["referrer-policy"] == "no-referrer"  # the app said public
        assert h["strict-transport-security"].startswith("max-age=") and h["x-content-type-options"] == "nosniff"
        assert "etag" not in h and "last-modified" not in h
    assert c.get(seat["url"].split("#")[0]).headers["content-security-policy"] == "frame-ancestors 'self'"
    watch = c.get(seat["watch_url"].split("#")[0]).headers["content-security-policy"]
    assert watch == f"frame-ancestors 'self' {origin(data['class_url'])}"  # the class page frames it
    # No Referer reaches a seat, and its Host is its own origin whatever the browser said.
    echoed = json.loads(c.get(port + "echo", Referer=data["class_url"]).body)
    assert "Referer" not in echoed and echoed["Host"] == urlsplit(port).netloc
    # A seat's own redirect stays on its path; a foreign Host reaches no seat and no redirect names it.
    moved = c.get(seat["url"].split("vnc.html")[0] + "app")
    assert moved.status in (301, 302) and moved.headers["location"] == urlsplit(seat["url"]).path.replace("vnc.html", "app/")
    evil = c.get(seat["url"].split("vnc.html")[0] + "app", Host="evil.example")
    assert evil.status == 404 and "evil" not in json.dumps(evil.headers)
    # Folders are not listed (websockify would).
    assert c.get(seat["url"].split("vnc.html")[0] + "app/").status == 404


def test_tls_is_mozillas_intermediate_profile(klass: tuple[Class, dict[str, Any]]) -> None:
    c, data = klass
    host = urlsplit(data["seats"][0]["url"]).hostname

    def handshake(**settings: Any) -> str:
        ctx = ssl.create_default_context(cafile=str(c.ca))
        ctx.set_ciphers(settings.pop("ciphers", "DEFAULT") + ":@SECLEVEL=0")
        ctx.minimum_version = settings.pop("low", ssl.TLSVersion.MINIMUM_SUPPORTED)
        ctx.maximum_version = settings.pop("high", ssl.TLSVersion.MAXIMUM_SUPPORTED)
        try:
            with socket.create_connection(("127.0.0.1", c.port), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname=host) as tls:
                return f"{tls.version()} {tls.cipher()[0]}"  # type: ignore[index]
        except ssl.SSLError as exc:
            return f"refused {exc.reason}"

    assert handshake().startswith("TLSv1.3 ")
    assert handshake(high=ssl.TLSVersion.TLSv1_2).startswith("TLSv1.2 ECDHE-ECDSA-AES")
    assert "GCM" in handshake(high=ssl.TLSVersion.TLSv1_2)
    # The server says no (its alert), not this client: CBC suites with SHA-1 or SHA-2 MACs, TLS 1.1.
    for old in ("ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384", "ECDHE-ECDSA-AES128-SHA256"):
        assert handshake(high=ssl.TLSVersion.TLSv1_2, ciphers=old) == "refused SSLV3_ALERT_HANDSHAKE_FAILURE", old
    assert handshake(low=ssl.TLSVersion.TLSv1_1, high=ssl.TLSVersion.TLSv1_1) == "refused TLSV1_ALERT_PROTOCOL_VERSION"


def test_the_gateway_is_confined_and_seats_sit_alone_on_networks_of_their_own(
        klass: tuple[Class, dict[str, Any]]) -> None:
    c, data = klass
    client = _client()
    gw = client.containers.get(f"docpipe-lab-{lab_id(c.workdir)}")
    host = gw.attrs["HostConfig"]
    assert gw.attrs["Config"]["User"] == "www-data" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"] and 0 < host["PidsLimit"] <= 256
    code, out = gw.exec_run(["sh", "-c", "id -u; grep CapEff /proc/self/status; cat /proc/sys/net/ipv4/ip_forward; "
                                         "touch /etc/x 2>&1 || true"])
    uid, caps, forward, touch = out.decode().strip().splitlines()
    assert (uid, caps.split()[1], forward) == ("33", "0000000000000000", "0") and "Read-only" in touch
    pool = ipaddress.ip_network("10.213.0.0/16")
    gateway_networks = gw.attrs["NetworkSettings"]["Networks"]
    for seat in data["seats"]:
        container = client.containers.get(seat["container"])
        assert not container.attrs["HostConfig"].get("PortBindings")
        nets = container.attrs["NetworkSettings"]["Networks"]
        assert list(nets) == [seat["container"]]  # one network, its own
        network = client.networks.get(seat["container"])
        subnet = ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])
        assert network.attrs["Internal"] is True and subnet.prefixlen == 29 and subnet.subnet_of(pool)  # type: ignore[arg-type]
        assert network.attrs["Options"]["com.docker.network.bridge.inhibit_ipv4"] == "true"
        assert sorted(network.attrs["Containers"]) == sorted([container.id, gw.id])  # the seat and the gateway
        assert seat["container"] in gateway_networks
        assert container.exec_run(["cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6"]).output.strip() == b"1"


def test_a_seat_reaches_no_other_seat_and_not_the_host(klass: tuple[Class, dict[str, Any]]) -> None:
    """From inside seat 1, as its student: seat 2 by address and by name, the host's address on the
    seat's network, and every other address of the host (its interfaces, docker0), every port.
    The gateway's address there is the control: it answers (HTTPS, and the egress proxy this class
    asked for), so the probe does see an open port when there is one."""
    c, data = klass
    client = _client()
    one, two = (client.containers.get(s["container"]) for s in data["seats"])
    subnet = ipaddress.ip_network(client.networks.get(one.name).attrs["IPAM"]["Config"][0]["Subnet"])
    host_on_network, gateway_address = str(subnet[1]), str(subnet[2])
    seat_two = two.attrs["NetworkSettings"]["Networks"][two.name]["IPAddress"]
    host = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    host_addresses = sorted({line.split()[3].split("/")[0] for line in host.splitlines()} - {"127.0.0.1"})
    assert host_addresses, host
    targets = [seat_two, "seat-2", two.name, host_on_network, *host_addresses, gateway_address]
    code, out = one.exec_run(["python3", "-c", PROBE, ",".join(targets), "0.3"], user="student")
    assert code == 0, out
    result = json.loads(out)
    assert sorted(result["open"]) == [f"{gateway_address}:3128", f"{gateway_address}:8443"], result
    assert result["failed"]["unresolved seat-2"] == 1 and result["failed"][f"unresolved {two.name}"] == 1
    unreachable = [seat_two, host_on_network, *host_addresses]
    assert result["failed"].get("no answer", 0) + result["failed"].get("EHOSTUNREACH", 0) == 65535 * len(unreachable)
    # Nor through the gateway's proxy: it refuses the other seat, the host and private ranges.
    for url in (f"http://{seat_two}:6080/", *(f"http://{a}/" for a in host_addresses), f"http://{host_on_network}/",
                "http://127.0.0.2/", "https://10.0.0.1/"):
        assert "403" in _through_proxy(one, url), url


def _through_proxy(container: Any, url: str) -> str:
    """GET `url` from inside a seat with the seat's own environment (http_proxy / https_proxy)."""
    script = ("import sys, ssl, urllib.request\ntry:\n"
              "    r = urllib.request.urlopen(sys.argv[1], timeout=30, context=ssl.create_default_context())\n"
              "    print(r.status)\nexcept urllib.error.HTTPError as e:\n    print(e.code)\n"
              "except Exception as e:\n    print('refused', getattr(e, 'reason', e))\n")
    code, out = container.exec_run(["python3", "-c", script, url], user="student")
    return str(out.decode().strip())


def test_egress_internet_reaches_the_internet_through_the_gateway_only(klass: tuple[Class, dict[str, Any]]) -> None:
    c, data = klass
    client = _client()
    seat = client.containers.get(data["seats"][1]["container"])
    assert _through_proxy(seat, "http://deb.debian.org/debian/dists/bookworm/Release") == "200"
    assert _through_proxy(seat, "https://pypi.org/simple/six/") == "200"
    # Without the proxy nothing leaves the seat at all.
    code, out = seat.exec_run(["env", "-u", "http_proxy", "-u", "HTTP_PROXY", "python3", "-c",
                               "import urllib.request\ntry:\n urllib.request.urlopen('http://deb.debian.org/', timeout=5)"
                               "\n print('reached')\nexcept Exception as e:\n print('no', e)"], user="student")
    assert out.decode().startswith("no"), out


def test_behind_an_ip_address_every_seat_and_port_is_a_port_of_its_own(sample_build: SampleBuild,
                                                                       tmp_path: Path) -> None:
    """A class on a LAN without DNS: origins differ by port; the gateway publishes the listen port
    and max_seats x (1 + workshop ports) more, no others. Its seats have no egress (the default)."""
    port = free_port(span=1 + 2 * 2)
    c = Class(tmp_path / "lan", sample_build.settings.registry, sample_build.settings.prefix,  # type: ignore[attr-defined]
              port, public=f"https://127.0.0.1:{port}", DOCPIPE_LAB_MAX_SEATS="2")
    client = _client()
    try:
        data = c.up("byport", "--image", sample_build.first.tags[0], "--seats", "2")  # type: ignore[attr-defined]
        every = [origin(s["url"]) for s in data["seats"]] + [origin(s["ports"]["8080"]) for s in data["seats"]]
        assert sorted(every) == sorted(f"https://127.0.0.1:{port + i}" for i in range(1, 5))
        assert origin(data["class_url"]) == f"https://127.0.0.1:{port}"
        assert [origin(s["watch_url"]) for s in data["seats"]] == [origin(s["url"]) for s in data["seats"]]
        for seat in data["seats"]:
            assert c.get(seat["url"].split("#")[0]).status == 200 and vnc_login(seat["url"], seat["password"], c.tls())
        assert c.get(data["class_url"]).status == 200
        assert c.get(every[1] + urlsplit(data["seats"][0]["url"]).path).status == 404  # seat 1's path on seat 2's port
        first = client.containers.get(data["seats"][0]["container"])
        _serve_app(first, 8080, "127.0.0.1")
        worker = None
        for _ in range(60):
            worker = c.get(data["seats"][0]["ports"]["8080"] + "sw.js")
            if worker.status == 200:
                break
            import time

            time.sleep(0.5)
        assert worker is not None and worker.status == 200 and "service-worker-allowed" not in worker.headers
        gw = client.containers.get(f"docpipe-lab-{lab_id(c.workdir)}")
        published = sorted(int(b[0]["HostPort"]) for b in gw.attrs["HostConfig"]["PortBindings"].values())
        assert published == list(range(port, port + 5))
        # No egress: the seat has no proxy, and the gateway's proxy refuses it anyway.
        assert "http_proxy" not in " ".join(first.attrs["Config"]["Env"])
        gateway_address = str(ipaddress.ip_network(
            client.networks.get(first.name).attrs["IPAM"]["Config"][0]["Subnet"])[2])
        code, out = first.exec_run(["env", f"http_proxy=http://{gateway_address}:3128", "python3", "-c",
                                    "import urllib.request\ntry:\n urllib.request.urlopen('http://deb.debian.org/', "
                                    "timeout=10)\n print('reached')\nexcept Exception as e:\n print('no', e)"],
                                   user="student")
        assert out.decode().startswith("no"), out
    finally:
        down = c.cli("lab", "down", "byport")
        assert down.returncode == 0, down.stderr


@pytest.mark.browser
def test_a_students_page_cannot_put_a_service_worker_over_a_seat_or_the_class_page(
        klass: tuple[Class, dict[str, Any]]) -> None:
    """Chromium (trusting the class's CA) opens a page served from seat 1's workshop port. Its Service
    Worker registers for its own path (so workers do work there), not for its whole origin (the
    gateway dropped Service-Worker-Allowed: /), and not for seat 2's desktop or the class page:
    other origins."""
    c, data = klass
    port_page = data["seats"][0]["ports"]["8080"] + "page.html"
    seat = links.seat_base(origin(data["seats"][1]["url"]), urlsplit(data["seats"][1]["url"]).path.split("/")[2])
    browser = Browser(trust(c.ca))
    try:
        browser.call("Page.navigate", url=f"{port_page}#seat={seat}&class={data['class_url']}")
        found = browser.wait_for("document.title == 'done' && document.getElementById('out').textContent", 30)
    finally:
        browser.close()
    assert isinstance(found, str), found
    result = json.loads(found)
    assert result["own"] == "registered " + data["seats"][0]["ports"]["8080"], result
    assert result["wide"] == result["seat"] == result["klass"] == "refused SecurityError", result
    assert fetch(seat, ssl.create_default_context(cafile=str(c.ca))).status == 200  # seat 2 is there all along
