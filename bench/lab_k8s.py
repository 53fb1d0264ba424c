#!/usr/bin/env python3
"""Benchmark `lab up` on Kubernetes against tests/support/kube_server.py: manifests and apply calls per class size.

Prints, for 50, 100 and 200 seats: seconds to build the manifests, seconds and HTTP requests of a
first `up` (the real `kubernetes` client, server-side apply), of a repeated `up` (no changes), and
requests per seat. Growth is shown as ratios against the 50-seat class measured in the same run:
linear growth gives a requests ratio of 2.0 and 4.0, quadratic growth 4.0 and 16.0.

    python bench/lab_k8s.py
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.lab.classroom.backend import ClassRequest, SeatRequest
from pipeline.lab.classroom.kube_manifests import manifests
from pipeline.lab.classroom.kube_seats import KubernetesBackend
from pipeline.lab.settings import LabSettings
from tests.support.kube_server import KubeServer

SETTINGS = LabSettings(host="lab.example.org", ingress_class="nginx", tls_secret="lab-wildcard")


def klass(n: int) -> ClassRequest:
    seats = tuple(SeatRequest(seat=f"seat-{i}", student=f"Student {i}", email="", token=secrets.token_urlsafe(16),
                              watch_token=secrets.token_urlsafe(16), password=secrets.token_urlsafe(6)[:8],
                              view_password=secrets.token_urlsafe(6)[:8], expires="2099-01-01T00:00:00Z")
                  for i in range(n))
    return ClassRequest(workshop=f"w{n}", class_id=f"w{n}", class_token=secrets.token_urlsafe(16),
                        image="registry.example.org/docpipe/w@sha256:" + "ab" * 32, revision="0" * 40,
                        desktop_port=6080, ports=(8080,), memory=2 * 2**30, cpus=1.0,
                        public_url="https://lab.example.org", seats=seats)


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, KubeServer(secrets.token_hex(16)) as server:
        os.environ["KUBECONFIG"] = str(server.kubeconfig(Path(tmp) / "kubeconfig"))
        backend = KubernetesBackend(SETTINGS)
        for n in (50, 100, 200):
            cls = klass(n)
            t0 = time.perf_counter()
            objects = manifests(cls, SETTINGS)
            t_manifests = time.perf_counter() - t0
            before = backend.requests
            t0 = time.perf_counter()
            backend.up(cls)
            t_up = time.perf_counter() - t0
            first = backend.requests - before
            before = backend.requests
            t0 = time.perf_counter()
            backend.up(cls)
            t_again = time.perf_counter() - t0
            again = backend.requests - before
            assert len(server.state.requests) >= first + again
            rows.append((n, len(objects), t_manifests, t_up, first, t_again, again))
            backend.down(cls.workshop)
    base = rows[0]
    print(f"{'seats':>5} {'objects':>7} {'manifests s':>11} {'up s':>6} {'requests':>8} {'req/seat':>8} "
          f"{'req x50':>7} {'time x50':>8} {'again s':>7} {'again req':>9}")
    for n, objs, t_m, t_up, req, t_again, again in rows:
        print(f"{n:>5} {objs:>7} {t_m:>11.3f} {t_up:>6.2f} {req:>8} {req / n:>8.2f} {req / base[4]:>7.2f} "
              f"{t_up / base[3]:>8.2f} {t_again:>7.2f} {again:>9}")


if __name__ == "__main__":
    main()
