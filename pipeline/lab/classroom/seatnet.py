"""One small network per Docker seat, shared with nothing but the gateway.

Each is an internal bridge with `inhibit_ipv4`: the host gets no address on it, so a seat reaches
neither the host (on that bridge or any other of its addresses) nor, having no route, anything else;
the only other container on it is the gateway, which joins every seat's network and forwards
nothing (ip_forward is off in it). No iptables rule is needed. Docker's default address pools hold
about 31 networks, so each network gets an explicit /29 from `[lab] subnet_pool`, one that no
network on the engine uses yet: .2 is the gateway, .3 the seat.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from pipeline.errors import DocpipeError

PREFIX = 29
INHIBIT = "com.docker.network.bridge.inhibit_ipv4"
GATEWAY_HOST = 2  # the gateway's address in each seat network: subnet[2]
SEAT_HOST = 3


def _taken(client: Any) -> list[ipaddress.IPv4Network]:
    """Every IPv4 subnet a network on this engine uses."""
    out = []
    for net in client.api.networks():
        for cfg in (net.get("IPAM") or {}).get("Config") or []:
            try:
                subnet = ipaddress.ip_network(cfg.get("Subnet") or "", strict=False)
            except ValueError:
                continue
            if isinstance(subnet, ipaddress.IPv4Network):
                out.append(subnet)
    return out


def addresses(network: Any) -> tuple[str, str]:
    """(the gateway's, the seat's) address on a seat network."""
    subnet = ipaddress.IPv4Network(network.attrs["IPAM"]["Config"][0]["Subnet"])
    return str(subnet[GATEWAY_HOST]), str(subnet[SEAT_HOST])


def create(client: Any, name: str, labels: dict[str, str], pool: str) -> Any:
    """A new seat network named `name` (the seat container's name), on the first free /29."""
    from docker.errors import APIError
    from docker.types import IPAMConfig, IPAMPool

    taken = _taken(client)
    for subnet in ipaddress.IPv4Network(pool).subnets(new_prefix=PREFIX):
        if any(subnet.overlaps(t) for t in taken):
            continue
        try:
            return client.networks.create(
                name, driver="bridge", internal=True, options={INHIBIT: "true"}, labels=labels,
                ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))]), check_duplicate=True)
        except APIError as exc:
            if "overlap" in str(exc).lower():  # another `lab up` took it a moment ago
                taken.append(subnet)
                continue
            raise DocpipeError(f"creating the network of seat {name} failed: "
                               f"{' '.join(str(exc.explanation or exc).split())[:200]}") from None
    raise DocpipeError(f"[lab] subnet_pool {pool} has no free /{PREFIX} left for another seat")


def join(network: Any, gateway: Any) -> None:
    """The gateway joins a seat network, on its fixed address there."""
    network.connect(gateway, ipv4_address=addresses(network)[0])


def remove(client: Any, name: str, gateway: Any | None) -> None:
    """A seat's network, once its container is gone (the gateway leaves it first)."""
    from docker.errors import APIError, NotFound

    try:
        network = client.networks.get(name)
    except NotFound:
        return
    if gateway is not None:
        try:
            network.disconnect(gateway, force=True)
        except (APIError, NotFound):
            pass  # not joined (any more)
    try:
        network.remove()
    except NotFound:
        pass
    except APIError as exc:
        raise DocpipeError(f"removing the network of seat {name} failed: "
                           f"{' '.join(str(exc.explanation or exc).split())[:200]}") from None
