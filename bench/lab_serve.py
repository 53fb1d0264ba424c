#!/usr/bin/env python3
"""`docpipe lab serve` under a rush: --visitors (50) press "Start my desktop" within --within (10) s,
with `[lab] warm = --warm` (10) and `max_seats = --max-seats` (30), on a real Docker Engine with the
sample workshop's image, every request through the workdir's HTTPS gateway as a browser sends it.

Each visitor opens the start page (as from the tutorial: no cookie), presses the button (its CSRF
token and cookie), follows the 303 to its desktop and logs into it over RFB through the gateway
(the student's password from the link): "time to a working desktop" is from the press to that
login. Figures: warm and cold starts (the launcher's X-Docpipe-Seat answer says which) p50/p95,
how many got the 503 page (should be visitors - max_seats), and whether any visitor got a seat
that is not theirs (each seat's owner in the launcher's state, checked against the visitor's
own cookie with the workdir's launcher key and the launcher's state). Baseline (same run): the start page's own answer
time (p50 of 20), so a warm start reads as a multiple of one page load.
The launcher, its seats, the gateway and the workshop image are removed at the end.

    python bench/lab_serve.py [--visitors 50] [--within 10] [--warm 10] [--max-seats 30]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.lab.image import engine, provision
from pipeline.lab.launcher import tokens
from pipeline.lab.settings import LabSettings
from tests.support.docker_env import SAMPLE_WORKSHOP, VncSession, address_of, make_archive

WS = "ws-go-promisegrid"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(method: str, url: str, ctx: ssl.SSLContext, body: str = "",
            cookies: dict[str, str] | None = None) -> tuple[int, dict[str, str], list[str], bytes]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn = http.client.HTTPSConnection(host, parts.port or 443, timeout=600, context=ctx)
    conn.sock = ctx.wrap_socket(socket.create_connection((address_of(host), parts.port or 443), timeout=600),
                                server_hostname=host)
    headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in (cookies or {}).items())} if cookies else {}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    try:
        conn.request(method, parts.path, body=body or None, headers=headers)
        resp = conn.getresponse()
        return (resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.headers.get_all("Set-Cookie") or [],
                resp.read())
    finally:
        conn.close()


def _cookies(set_cookies: list[str], jar: dict[str, str]) -> None:
    for line in set_cookies:
        name, _, rest = line.partition("=")
        jar[name] = rest.split(";", 1)[0]


@dataclass
class Visitor:
    n: int
    status: int = 0
    how: str = ""
    url: str = ""
    seconds: float = 0.0
    working: bool = False
    jar: dict[str, str] = field(default_factory=dict)
    error: str = ""


def visit(v: Visitor, start_url: str, ctx: ssl.SSLContext) -> None:
    try:
        status, _, set_cookies, page = request("GET", start_url, ctx)
        assert status == 200, status
        _cookies(set_cookies, v.jar)
        token = re.search(rb'name="csrf" value="([^"]+)"', page)
        assert token, page[:200]
        begin = time.monotonic()
        v.status, headers, set_cookies, _ = request("POST", start_url, ctx, urlencode({"csrf": token.group(1).decode()}),
                                                    v.jar)
        _cookies(set_cookies, v.jar)
        if v.status != 303:
            return
        v.how, v.url = headers.get("x-docpipe-seat", ""), headers["location"]
        password = re.search(r"password=([^&]+)", v.url)
        assert password, v.url
        with VncSession(v.url, ctx) as session:  # the desktop works: RFB through the gateway, logged in
            v.working = session.login(password.group(1))
        v.seconds = time.monotonic() - begin
    except Exception as exc:  # one visitor's failure is a figure, not the end of the run
        v.error = f"{type(exc).__name__}: {exc}"[:200]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--visitors", type=int, default=50)
    ap.add_argument("--within", type=float, default=10.0)
    ap.add_argument("--warm", type=int, default=10)
    ap.add_argument("--max-seats", type=int, default=30)
    args = ap.parse_args()
    client = engine.client()
    prefix = f"docpipe-bench-{os.urandom(3).hex()}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp) / "wd"
        make_archive(workdir, {f"workshops/{WS}.md": SAMPLE_WORKSHOP})
        provision.provision(workdir, LabSettings(prefix=prefix))
        port = _port()
        public = f"https://lab.localhost:{port}"
        env = {**os.environ, "DOCPIPE_WORKDIR": str(workdir), "DOCPIPE_LAB_PREFIX": prefix,
               "DOCPIPE_LAB_LISTEN": f"127.0.0.1:{port}", "DOCPIPE_LAB_PUBLIC_URL": public,
               "DOCPIPE_LAB_WARM": str(args.warm), "DOCPIPE_LAB_MAX_SEATS": str(args.max_seats),
               "DOCPIPE_LAB_STARTS_PER_HOUR": "10000"}
        log = Path(tmp) / "serve.log"
        serve = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "lab", "serve"], env=env,
                                 stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        start_url = f"{public}/start/{WS}/"
        try:
            ca = workdir / "lab" / "ca" / "ca.crt"
            deadline = time.monotonic() + 600
            warm_seconds = time.monotonic()
            while True:  # the pool filled
                assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                try:
                    ctx = ssl.create_default_context(cafile=str(ca))
                    status, _, _, body = request("GET", f"{public}/start/-/health", ctx)
                    if status == 200 and json.loads(body)["warm"] >= args.warm:
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.5)
            warm_seconds = time.monotonic() - warm_seconds
            pages = []
            for _ in range(20):
                t = time.monotonic()
                request("GET", start_url, ctx)
                pages.append(time.monotonic() - t)
            visitors = [Visitor(i) for i in range(args.visitors)]
            threads = []
            gap = args.within / max(1, args.visitors)
            for v in visitors:
                t = threading.Thread(target=visit, args=(v, start_url, ctx))
                t.start()
                threads.append(t)
                time.sleep(gap)
            for t in threads:
                t.join(timeout=900)
            # Whose seat is whose: each seat's student label against its visitor's own cookie.
            key = tokens.load_key(workdir / "lab" / "launcher" / "key")
            out = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "status", "--json"], env=env,
                                 capture_output=True, text=True, check=True)
            names = {s["url"]: s["seat"] for s in json.loads(out.stdout)["seats"]}
            with sqlite3.connect(workdir / "lab" / "launcher" / "state.db") as db:
                owner = dict(db.execute("SELECT name, visitor FROM seats").fetchall())
            wrong = 0
            for v in visitors:
                if v.status != 303:
                    continue
                cookie = next(val for name, val in v.jar.items() if name.endswith("docpipe-visitor"))
                vid = tokens.cookie_id(key, cookie)
                if vid is None or owner.get(names.get(v.url, "")) != tokens.visitor_key(key, vid):
                    wrong += 1
        finally:
            serve.send_signal(signal.SIGINT)
            try:
                serve.wait(timeout=60)
            except subprocess.TimeoutExpired:
                serve.kill()
            subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "down", WS, "--purge"], env=env, capture_output=True,
                           check=False)
            for image in client.images.list():
                for tag in image.tags:
                    if prefix in tag:
                        client.images.remove(tag, force=True)
    warm = [v.seconds for v in visitors if v.how == "warm" and v.working]
    cold = [v.seconds for v in visitors if v.how == "cold" and v.working]
    codes = [v.status for v in visitors]
    urls = [v.url for v in visitors if v.url]
    page = statistics.median(pages)
    print(f"pool of {args.warm} warm seats filled in {warm_seconds:.1f} s after the launcher started")
    print(f"start page answer (baseline): p50 {page * 1000:.0f} ms")
    print(f"{args.visitors} visitors pressed start within {args.within:g} s (warm = {args.warm}, "
          f"max_seats = {args.max_seats})")
    print(f"warm starts ({len(warm)}): to a working desktop p50 {pct(warm, 0.5):.2f} s, p95 {pct(warm, 0.95):.2f} s "
          f"({pct(warm, 0.5) / page:.0f}x the page)")
    print(f"cold starts ({len(cold)}): to a working desktop p50 {pct(cold, 0.5):.2f} s, p95 {pct(cold, 0.95):.2f} s "
          f"({pct(cold, 0.5) / max(pct(warm, 0.5), 1e-9):.0f}x a warm start)")
    print(f"503 'all desktops are taken': {codes.count(503)} (expected {max(0, args.visitors - args.max_seats)}); "
          f"other answers: {sorted(set(codes) - {303, 503})}; errors: {sum(1 for v in visitors if v.error)}")
    print(f"seats handed out: {len(urls)}, distinct: {len(set(urls))}; a seat not its visitor's: {wrong}")
    for v in visitors:
        if v.error:
            print(f"  visitor {v.n}: {v.error}")


if __name__ == "__main__":
    main()
