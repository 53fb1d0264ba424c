"""The gateway's parts without an engine: the nginx configuration it is given (nothing hostile can
write nginx's language, every answer filtered), the local CA (name-constrained, short-lived) and the
egress proxy's rules. The same gateway is checked for real in test_classroom_docker.py."""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import verification

from pipeline.errors import DocpipeError
from pipeline.lab.classroom import egress, links, nginx, tls

ROUTE = nginx.Route("w-seat-1", "A" * 32, "B" * 32, "10.213.0.3", 6080, (8080,), "2026-12-04T18:00:00Z", "C" * 32, 1)


def test_hostile_tokens_and_addresses_never_reach_nginx() -> None:
    pub = links.public("https://lab.example.org:8443")
    conf = nginx.seat_conf(ROUTE, pub, tls=True)
    assert "proxy_pass http://10.213.0.3:8080/;" in conf and f"location /s/{'A' * 32}/ {{" in conf
    for bad in (ROUTE.__class__(**{**ROUTE.__dict__, "token": "x; } location / { proxy_pass http://evil"}),
                ROUTE.__class__(**{**ROUTE.__dict__, "address": "evil.example; "}),
                ROUTE.__class__(**{**ROUTE.__dict__, "expires": "2026-12-04T18:00:00Z; rm -rf /"})):
        with pytest.raises(DocpipeError):
            nginx.files([bad], [], pub, tls=True)


@pytest.mark.parametrize("public", ["https://lab.example.org:8443", "https://192.168.1.10:8443"])
def test_every_seat_answer_is_filtered_and_routed_by_its_own_origin_only(public: str) -> None:
    pub = links.public(public)
    conf = nginx.seat_conf(ROUTE, pub, tls=True)
    origins = links.gateway_origins(public, ROUTE.token, ROUTE.watch_token, ROUTE.ports, ROUTE.offset)
    blocks = conf.split("server {")[1:]
    assert len(blocks) == (2 if pub.by_port else 3)  # a server per origin (one port: desktop and watch)
    for block in blocks:
        for must in ("proxy_hide_header Service-Worker-Allowed;", 'add_header Referrer-Policy "no-referrer" always;',
                     'add_header Cache-Control "no-store" always;', 'proxy_set_header Referer "";',
                     "add_header Strict-Transport-Security", "proxy_hide_header ETag;", "location / {\n        return 404;"):
            assert must in block, (must, block)
        assert "$host" not in block and "$http_host" not in block  # never the request's Host
    if pub.by_port:
        assert "listen 8444 ssl;" in blocks[0] and "listen 8445 ssl;" in blocks[1] and "server_name" not in conf
    else:
        names = [line.split()[1].rstrip(";") for line in conf.splitlines() if "server_name" in line]
        assert names == [urlsplit_host(o) for o in (origins.desktop, origins.watch, origins.ports[8080])]
    # Folders are never listed on a desktop; a watch page may be framed by its class page only.
    assert f"location ~ ^/s/{'A' * 32}/.+/$" in conf and f"location ~ ^/s/{links.port_key('A' * 32, 8080)}/.+/$" not in conf
    assert f"frame-ancestors 'self' {links.class_origin(public, 'C' * 32)}" in conf
    assert conf.count("frame-ancestors 'self' https") == 1
    assert f"proxy_cookie_domain ~.+ {urlsplit_host(origins.ports[8080])};" in conf


def urlsplit_host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""


def test_the_class_page_route_expires_with_its_last_seat_and_is_never_cached() -> None:
    pub = links.public("https://lab.example.org:8443")
    page = nginx.ClassPage("C" * 32, "w", (("Ada", "https://s-x.lab.example.org:8443/s/B/vnc.html#password=v"),),
                           ("https://s-x.lab.example.org:8443",), "2026-12-04T18:00:00Z")
    files = nginx.files([ROUTE], [page], pub, tls=True)
    assert sorted(files) == ["pages/20261204180000-" + links.host_id("C" * 32) + ".html", "server.conf",
                             "servers/20261204180000-class-" + links.host_id("C" * 32) + ".conf",
                             "servers/20261204180000-w-seat-1.conf"]
    conf = files["servers/20261204180000-class-" + links.host_id("C" * 32) + ".conf"].decode()
    assert "etag off;" in conf and "ssi on;" in conf and "frame-src https://s-x.lab.example.org:8443;" in conf
    assert "frame-ancestors 'none'" in conf and f"server_name {links.class_host('C' * 32, 'lab.example.org')};" in conf
    tls_conf = files["server.conf"].decode()
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in tls_conf and "SHA:" not in tls_conf and "CBC" not in tls_conf


@pytest.mark.parametrize("public", ["https://lab.example.org:8443", "https://192.168.1.10:8443"])
def test_the_class_page_offers_each_seats_help_link_through_a_logged_redirect(public: str) -> None:
    pub = links.public(public)
    help_link = "https://s-x.lab.example.org:8443/s/" + "A" * 32 + "/vnc.html#shared=1&autoconnect=1&password=Pw3"
    page = nginx.ClassPage("C" * 32, "w", (("Ada <b>", "https://s-x.lab.example.org:8443/s/B/vnc.html#password=v"),
                                           ("seat-2", "https://s-y.lab.example.org:8443/s/D/vnc.html#password=v")),
                           ("https://s-x.lab.example.org:8443",), "2026-12-04T18:00:00Z",
                           helps=(("Ada <b>", "ada", help_link),))
    files = nginx.files([ROUTE], [page], pub, tls=True)
    conf = next(v.decode() for k, v in files.items() if "class-" in k)
    block = conf.split(f"location = /class/{'C' * 32}/help/ada {{")[1].split("    }")[0]
    assert f'return 302 "{help_link}";' in block and "access_log /etc/docpipe/audit/w.log docpipe_help;" in block
    assert "Referrer-Policy" in block and "no-store" in block
    assert "log_format docpipe_help" in files["server.conf"].decode()
    html = next(v.decode() for k, v in files.items() if k.startswith("pages/"))
    # The seat with a help route gets a link (relative to the page); the other the command.
    assert '<a href="help/ada" target="_blank" rel="noopener noreferrer">take the mouse</a>' in html
    assert "Ada &lt;b&gt;" in html and "<code>docpipe lab help w seat-2</code>" in html
    # Nothing hostile reaches nginx's language through a seat name or a link.
    for bad in ((("x", "ada; }", help_link),), (("x", "ada", help_link + '"; return 200 "x'),),
                (("x", "ada", "https://h/${x}"),), (("x", "ada", help_link + " x"),)):
        with pytest.raises(DocpipeError):
            nginx.files([], [nginx.ClassPage("C" * 32, "w", (), (), "2026-12-04T18:00:00Z", helps=bad)], pub, tls=True)


def test_gateway_help_lines_reach_the_audit_log_with_the_students_name(tmp_path: Path) -> None:
    from pipeline.lab.classroom import audit

    data = b"2026-12-07T20:30:01+00:00\tada\nnot a line\n2026-12-07T20:31:00+00:00\tgone\n"
    assert audit.gateway_lines(tmp_path, "w", data, {"ada": "Ada Lovelace"}) == 2
    lines = audit.log_path(tmp_path, "w").read_text().splitlines()
    assert lines == ["2026-12-07T20:30:01Z\tada\tAda Lovelace\tclass-page", "2026-12-07T20:31:00Z\tgone\t\tclass-page"]


def _verify(ca: x509.Certificate, leaf: x509.Certificate, name: x509.GeneralName) -> None:
    store = verification.Store([ca])
    builder = verification.PolicyBuilder().store(store).time(dt.datetime.now(dt.UTC))
    builder.build_server_verifier(name).verify(leaf, [])  # type: ignore[arg-type]


def test_the_local_ca_signs_only_for_the_class_host_and_lives_a_month(tmp_path: Path) -> None:
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)
    pem = tls.local_cert(tmp_path / "ca", "lab.example.org", until=until)
    leaf, ca = x509.load_pem_x509_certificates(pem.cert)
    assert pem.ca is not None and (pem.ca.stat().st_mode & 0o077) == 0 and ((tmp_path / "ca" / "ca.key").stat().st_mode & 0o077) == 0
    assert ca.not_valid_after_utc - ca.not_valid_before_utc <= dt.timedelta(days=tls.CA_DAYS, minutes=6)
    _verify(ca, leaf, x509.DNSName("s-abc.lab.example.org"))
    _verify(ca, leaf, x509.DNSName("lab.example.org"))
    # Whatever the CA's key signs, a browser takes it for lab.example.org and below only.
    key = serialization.load_pem_private_key((tmp_path / "ca" / "ca.key").read_bytes(), None)
    other = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    for name in (x509.DNSName("bank.example"), x509.IPAddress(ipaddress.ip_address("10.0.0.1"))):
        forged = (x509.CertificateBuilder().subject_name(leaf.subject).issuer_name(ca.subject)
                  .public_key(other.public_key()).serial_number(1).not_valid_before(now)
                  .not_valid_after(now + dt.timedelta(days=1))
                  .add_extension(x509.SubjectAlternativeName([name]), critical=False)
                  .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                  .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                  .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()),  # type: ignore[arg-type]
                                 critical=False)
                  .sign(key, hashes.SHA256()))  # type: ignore[arg-type]
        with pytest.raises(verification.VerificationError, match="(?i)name constraint"):
            _verify(ca, forged, name)
    # Kept while it fits; another host, or a class outlasting it, gets a new one.
    again = tls.local_cert(tmp_path / "ca", "lab.example.org", until=until)
    assert x509.load_pem_x509_certificates(again.cert)[1] == ca
    moved = x509.load_pem_x509_certificates(tls.local_cert(tmp_path / "ca", "192.168.1.10", until=until).cert)
    assert moved[1] != ca
    _verify(moved[1], moved[0], x509.IPAddress(ipaddress.ip_address("192.168.1.10")))


def test_the_egress_proxy_lets_chosen_seats_out_but_never_to_the_host_or_private_ranges() -> None:
    conf = egress.squid_conf(["10.213.0.3", "10.213.0.11"], ["192.0.2.2", "203.0.113.7"])
    assert "acl seats src 10.213.0.11 10.213.0.3\n" in conf
    blocked = next(line for line in conf.splitlines() if line.startswith("acl blocked dst")).split()[3:]
    for net in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16", "100.64.0.0/10",
                "192.0.2.2/32", "203.0.113.7/32"):
        assert net in blocked
    rules = [line for line in conf.splitlines() if line.startswith("http_access")]
    assert rules[-2:] == ["http_access allow seats", "http_access deny all"]
    assert rules.index("http_access deny blocked") < rules.index("http_access allow seats")
    assert rules[0] == "http_access deny ipv6_name"  # squid 5.7 asserts on some IPv6 literals: refused by name first
    # The host's own addresses, public ones included, are found from the kernel's local routes.
    assert "127.0.0.1" not in egress.host_addresses() and all(ipaddress.ip_address(a) for a in egress.host_addresses())


def test_the_gateway_keeps_its_certificate_while_it_fits(tmp_path: Path) -> None:
    """Every seat start configures the gateway: a browser mid-session must not meet a new key."""
    from pipeline.lab.classroom import tls

    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)
    first = tls.local_cert(tmp_path, "lab.example.org", until=soon)
    assert tls.local_cert(tmp_path, "lab.example.org", until=soon + dt.timedelta(hours=1)) == first
    assert (tmp_path / "server.pem").stat().st_mode & 0o077 == 0
    other = tls.local_cert(tmp_path, "other.example.org", until=soon)  # another host: a new CA and key
    assert other.cert != first.cert and other.key != first.key
