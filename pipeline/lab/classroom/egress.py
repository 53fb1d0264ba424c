"""`[lab] egress = "internet"` on Docker: an HTTP(S) proxy in the gateway, the seats' only way out.

Seats sit on internal networks with no route anywhere; with egress on, their http_proxy and
https_proxy point at the gateway's squid (Debian's), which answers only seats whose class asked for
it and refuses, after resolving the name itself (so a DNS answer cannot point it elsewhere later),
every loopback, private, link-local, shared, multicast and reserved address, every IPv6 destination
(seats have none), and the host's own addresses. No firewall rule on the host is needed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from pathlib import Path

PORT = 3128
# Not the internet: where the host, its LAN, the engine's networks and cloud metadata live.
BLOCKED = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
           "192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/3")


def host_addresses(also: Iterable[str] = ()) -> list[str]:
    """This host's IPv4 addresses (the kernel's local routes) and the addresses `also` names resolve
    to (the public URL's host): what a seat must not reach through the proxy even when public."""
    found: set[str] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for prev, line in zip(lines, lines[1:], strict=False):
        if "/32 host LOCAL" in line:
            found.add(prev.split()[-1])
    for name in also:
        try:
            found.update(str(info[4][0]) for info in socket.getaddrinfo(name, None, socket.AF_INET))
        except (OSError, UnicodeError):
            continue
    out = []
    for text in sorted(found):
        try:
            address = ipaddress.IPv4Address(text)
        except ValueError:
            continue
        if not any(address in ipaddress.IPv4Network(net) for net in BLOCKED):
            out.append(str(address))
    return out


def squid_conf(sources: Iterable[str], host: Iterable[str]) -> str:
    """squid's configuration: `sources` are the seats allowed out, `host` the host's own addresses."""
    seats = " ".join(str(ipaddress.IPv4Address(s)) for s in sorted(set(sources)))
    blocked = " ".join([*BLOCKED, *(f"{ipaddress.IPv4Address(a)}/32" for a in sorted(set(host)))])
    return f"""# docpipe lab egress: written by docpipe, run by the gateway (gateway.sh) when present.
http_port {PORT}
pid_filename /tmp/squid.pid
cache_log stdio:/dev/stderr
debug_options ALL,1
access_log none
cache deny all
cache_mem 0 MB
coredump_dir /tmp
pinger_enable off
shutdown_lifetime 1 seconds
via off
forwarded_for delete
acl seats src {seats or "255.255.255.255/32"}
# An IPv6 literal is refused by name: squid 5.7 asserts on some of them, and seats have no IPv6.
acl ipv6_name dstdom_regex ^\\[ :
acl blocked dst {blocked}
acl blocked_v6 dst ipv6
acl safe_ports port 80 443 1025-65535
acl tls_port port 443
acl CONNECT method CONNECT
http_access deny ipv6_name
http_access deny !seats
http_access deny !safe_ports
http_access deny CONNECT !tls_port
http_access deny blocked
http_access deny blocked_v6
http_access allow seats
http_access deny all
"""
