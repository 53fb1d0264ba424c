"""The gateway's routes to the seat agent (nginx.py) and the links to it (links.py): on the
desktop's origin under the desktop's key only, never under the watch key or a port's."""

from __future__ import annotations

import dataclasses
import re

import pytest

from pipeline.lab.classroom import links, nginx

agent = pytest.importorskip("pipeline.lab.seat.agent")

ROUTE = nginx.Route("w-seat-1", "A" * 32, "B" * 32, "10.213.0.3", 6080, (8080,), "2026-12-04T18:00:00Z", "C" * 32,
                    agent_port=6081)
PUB = links.public("https://lab.example.org:8443")


def test_agent_routes_use_the_desktop_key_only() -> None:
    conf = nginx.seat_conf(ROUTE, PUB, True)
    files = re.findall(r"location \^~ (\S+) \{\n        proxy_pass http://10\.213\.0\.3:6081/files/;", conf)
    progress = re.findall(r"location = (\S+) \{\n        proxy_pass http://10\.213\.0\.3:6081/progress;", conf)
    assert files == [f"/s/{'A' * 32}/files/"] and progress == [f"/s/{'A' * 32}/progress"]
    assert conf.count(":6081") == 2  # nothing under the watch key or the port's key
    block = conf.split(f"location ^~ /s/{'A' * 32}/files/")[1].split("    }\n")[0]
    assert "client_max_body_size 0;" in block and "proxy_request_buffering off;" in block
    assert 'add_header Cache-Control "no-store" always;' in block and "proxy_hide_header Set-Cookie;" in block
    assert f'add_header Content-Security-Policy "{agent.POLICY}" always;' in block  # one policy, the agent's
    origin = links.gateway_origins(PUB.origin(), ROUTE.token, ROUTE.watch_token, ROUTE.ports).desktop
    assert links.files_url(origin, ROUTE.token) == f"https://s-{links.host_id('A' * 32)}.lab.example.org:8443/s/{'A' * 32}/files/"
    assert links.progress_url(origin, ROUTE.token).endswith(f"/s/{'A' * 32}/progress")


def test_a_base_without_agent_gets_no_route() -> None:
    assert ":6081" not in nginx.seat_conf(dataclasses.replace(ROUTE, agent_port=0), PUB, True)
