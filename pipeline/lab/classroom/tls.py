"""The gateway's certificate: the operator's own, or one from a local CA docpipe makes.

The local CA is what students' browsers are asked to trust, so it can do little harm if its key
leaks: it is name-constrained to the class's public host (a DNS name and its subdomains, or one IP
address) and lives CA_DAYS (longer than any seat's ttl). It is kept while it still fits (same host,
valid past the class's end); otherwise docpipe makes a new one, which students import again.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.errors import BadInput

CA_DAYS = 31  # the longest ttl is 30 days (config.duration_seconds)


@dataclass(frozen=True)
class Pem:
    cert: bytes
    key: bytes
    ca: Path | None  # the CA certificate to trust, when docpipe made it


def _write_private(path: Path, data: bytes) -> None:
    """Atomically, and readable by the owner only: it holds a key."""
    from pipeline.atomic import atomic_write

    atomic_write(path, data, mode=0o600)


def _name(common: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def name_constraints(host: str) -> Any:
    """Only `host` (and, for a DNS name, its subdomains): a DNS CA signs no IP address, an IP CA
    no DNS name but the reserved `.invalid`."""
    from cryptography import x509

    ip = _ip(host)
    if ip is None:
        return x509.NameConstraints(
            permitted_subtrees=[x509.DNSName(host)],
            excluded_subtrees=[x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
                               x509.IPAddress(ipaddress.ip_network("::/0"))])
    return x509.NameConstraints(
        permitted_subtrees=[x509.IPAddress(ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}")), x509.DNSName("invalid")],
        excluded_subtrees=None)


def _fits(cert: Any, host: str, until: dt.datetime) -> bool:
    from cryptography import x509

    try:
        constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        return False  # an older docpipe's CA: unconstrained, ten years; replaced
    return bool(constraints == name_constraints(host) and cert.not_valid_after_utc >= until)


def _ca(ca_dir: Path, host: str, until: dt.datetime) -> tuple[Any, Any]:
    """The local CA for `host`, made when there is none that fits."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    cert_path, key_path = ca_dir / "ca.crt", ca_dir / "ca.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if _fits(cert, host, until):
            return cert, serialization.load_pem_private_key(key_path.read_bytes(), None)
    ca_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(f"docpipe lab CA for {host}"[:64])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(max(now + dt.timedelta(days=CA_DAYS), until))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(name_constraints(host), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_private(key_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    _write_private(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def server_names(host: str) -> list[str]:
    """What the gateway's certificate names: the host and every host under it, or the IP address."""
    return [host] if _ip(host) is not None else [host, f"*.{host}"]


def local_cert(ca_dir: Path, host: str, *, until: dt.datetime) -> Pem:
    """A server certificate for `host` and `*.host` (or the IP address), signed by the local CA,
    valid at least until `until` (the class's last expiry): the one made before while it fits."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ca_cert, ca_key = _ca(ca_dir, host, until)
    names: list[x509.GeneralName] = []
    for name in server_names(host):
        ip = _ip(name)
        names.append(x509.IPAddress(ip) if ip is not None else x509.DNSName(name))
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    # The same certificate while it fits: every seat start configures the gateway, and a fresh
    # key each time would hand browsers a new certificate mid-session for nothing.
    kept = ca_dir / "server.pem"
    if kept.exists():
        try:
            data = kept.read_bytes()  # key_pem + cert_pem, as written below
            old_key = serialization.load_pem_private_key(data, None)
            old = x509.load_pem_x509_certificate(data)
            if (old.issuer == ca_cert.subject and old.not_valid_after_utc >= until
                    and old.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
                    == x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())
                    and list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value) == names):
                return Pem(old.public_bytes(serialization.Encoding.PEM) + ca_pem,
                           old_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()), ca_dir / "ca.crt")
        except (ValueError, x509.ExtensionNotFound):
            pass  # unreadable or not ours: made again below
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    # Not the host as the common name: OpenSSL holds a name-like CN to the CA's DNS constraints too,
    # and browsers read only the alternative names.
    cert = (x509.CertificateBuilder().subject_name(_name("docpipe lab gateway")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(ca_cert.not_valid_after_utc)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    _write_private(kept, key_pem + cert_pem)
    return Pem(cert_pem + ca_pem, key_pem, ca_dir / "ca.crt")


def configured(cert: str, key: str) -> Pem:
    try:
        return Pem(Path(cert).read_bytes(), Path(key).read_bytes(), None)
    except OSError as exc:
        raise BadInput(f"lab TLS certificate/key cannot be read: {exc.strerror}: {exc.filename}") from None
