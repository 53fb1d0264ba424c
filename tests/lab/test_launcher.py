"""`docpipe lab serve`'s app in-process (Starlette's test client) over a fake seat backend: cookies,
CSRF, limits, the warm pool, a restart. The real thing, through the gateway with Chromium and
Docker seats, is tests/lab/test_launcher_docker.py."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pipeline.lab.classroom.backend import SeatInfo, rfc3339
from pipeline.lab.launcher import tokens
from pipeline.lab.launcher.app import Options, make_app
from pipeline.lab.launcher.pool import Launcher
from pipeline.lab.launcher.store import Store

WS = "ws-go-promisegrid"
BASE = "https://lab.test"
VISITOR, CSRF = "__Host-docpipe-visitor", "__Host-docpipe-csrf"


class FakeSeats:
    """Seats as a backend would give them: each start takes `delay` seconds; `fail` makes it fail."""

    def __init__(self, delay: float = 0.0, ttl: int = 3600) -> None:
        self.delay, self.ttl = delay, ttl
        self.running: dict[str, SeatInfo] = {}
        self.students: dict[str, str] = {}
        self.starts = 0
        self.fail = False
        self.lock = threading.Lock()

    @property
    def ttl_seconds(self) -> int:
        return self.ttl

    def workshops(self) -> tuple[str, ...]:
        return (WS, "ws-other")

    def start(self, workshop: str, name: str, student: str) -> SeatInfo:
        time.sleep(self.delay)
        if self.fail:
            raise RuntimeError("engine said no")
        expires = rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.ttl))
        info = SeatInfo(workshop=workshop, seat=name, student=student, url=f"https://s-{name}.lab.test/s/k/vnc.html#p",
                        password="pw", watch_url="", ports={}, container=name, expires=expires, status="running",
                        origin="launcher")
        with self.lock:
            self.running[name] = info
            self.students[name] = student
            self.starts += 1
        return info

    def live(self) -> dict[str, SeatInfo]:
        with self.lock:
            return dict(self.running)

    def maintain(self) -> None:
        pass


def make(tmp_path: Path, seats: FakeSeats, *, warm: int = 0, max_seats: int = 30,
         starts_per_hour: int = 1000) -> tuple[Launcher, TestClient]:
    store = Store(tmp_path / "state.db")
    key = tokens.load_key(tmp_path / "key")
    launcher = Launcher(seats, store, warm=warm, max_seats=max_seats, starts_per_hour=starts_per_hour,
                        keep_home_seconds=7 * 86400)
    launcher.recover()
    launcher.start_background()
    client = TestClient(make_app(launcher, key, Options(trust_proxy=True)), base_url=BASE, follow_redirects=False)
    return launcher, client


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Launcher, TestClient, FakeSeats]]:
    seats = FakeSeats()
    launcher, client = make(tmp_path, seats)
    try:
        yield launcher, client, seats
    finally:
        launcher.stop()


def token_of(page: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', page)
    assert m, page
    return m.group(1)


def press(client: TestClient, workshop: str = WS, ip: str = "") -> object:
    """What the browser does: open the start page (no visitor cookie: it came from another site),
    then press the button (same site: every cookie goes along)."""
    page = client.get(f"/start/{workshop}/")
    assert page.status_code == 200
    headers = {"x-real-ip": ip} if ip else {}
    return client.post(f"/start/{workshop}/", data={"csrf": token_of(page.text)}, headers=headers)


def test_the_button_starts_a_seat_and_the_same_browser_gets_it_again(running) -> None:  # type: ignore[no-untyped-def]
    launcher, client, seats = running
    page = client.get(f"/start/{WS}/")
    assert page.status_code == 200 and "Start my desktop" in page.text and "<script" not in page.text
    csrf = page.headers["set-cookie"]
    assert csrf.startswith(f"{CSRF}=") and all(a in csrf for a in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"))
    answer = client.post(f"/start/{WS}/", data={"csrf": token_of(page.text)})
    assert answer.status_code == 303
    seat = next(iter(seats.running.values()))
    assert answer.headers["location"] == seat.url
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{VISITOR}=") and all(a in cookie for a in ("HttpOnly", "Secure", "SameSite=strict", "Path=/"))
    value = client.cookies[VISITOR]
    assert value.split(".")[0] not in seats.students[seat.seat]  # the seat's student is not the cookie
    assert seats.students[seat.seat].startswith("visitor-")
    # Back with the cookie (a same-site visit): the page links the desktop, the button gives it again.
    again = client.get(f"/start/{WS}/")
    assert "Open my desktop" in again.text and seat.url.split("#")[0] in again.text
    second = client.post(f"/start/{WS}/", data={"csrf": token_of(again.text)})
    assert second.status_code == 303 and second.headers["location"] == seat.url
    assert seats.starts == 1
    # Another browser gets a seat of its own.
    other = TestClient(client.app, base_url=BASE, follow_redirects=False)
    theirs = press(other)
    assert theirs.status_code == 303 and theirs.headers["location"] != seat.url  # type: ignore[attr-defined]
    assert seats.starts == 2


def test_a_workshop_that_is_not_published_is_404(running) -> None:  # type: ignore[no-untyped-def]
    _, client, seats = running
    for path in ("/start/nope/", "/start/../etc/", "/start/WS-GO/", "/start/", "/start/%3Cscript%3E/", "/other"):
        answer = client.get(path)
        assert answer.status_code == 404, path
        assert "<script" not in answer.text
    assert client.post("/start/nope/", data={"csrf": "x"}).status_code == 404
    assert seats.starts == 0


def test_forged_foreign_and_replayed_csrf_tokens_are_refused(running, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, client, seats = running
    page = client.get(f"/start/{WS}/")
    token = token_of(page.text)
    nonce, at, mac = token.split(".")
    forged = [f"{nonce}.{at}.{'0' * 32}", f"{nonce}.{int(at) + 5}.{mac}", "", "a.b.c", "x" * 5000,
              tokens.csrf_token(b"k" * 32, nonce, WS)]
    for bad in forged:
        answer = client.post(f"/start/{WS}/", data={"csrf": bad})
        assert answer.status_code in (403, 400), bad[:40]
    # A token of another workshop's page, or of another browser (its own csrf cookie).
    assert client.post("/start/ws-other/", data={"csrf": token}).status_code == 403
    other = TestClient(client.app, base_url=BASE, follow_redirects=False)
    other.get(f"/start/{WS}/")
    assert other.post(f"/start/{WS}/", data={"csrf": token}).status_code == 403
    # An old token.
    old = tokens.csrf_token(tokens.load_key(tmp_path / "key"), nonce, WS, now=time.time() - tokens.CSRF_SECONDS - 5)
    assert client.post(f"/start/{WS}/", data={"csrf": old}).status_code == 403
    assert seats.starts == 0
    # The real one works once; replayed, it is refused.
    assert client.post(f"/start/{WS}/", data={"csrf": token}).status_code == 303
    replay = client.post(f"/start/{WS}/", data={"csrf": token})
    assert replay.status_code == 403 and "expired" in replay.text
    assert seats.starts == 1


def test_hostile_cookies_are_refused_and_cleared(running) -> None:  # type: ignore[no-untyped-def]
    _, client, seats = running
    valid, _ = tokens.new_cookie(b"another launcher's key..........")
    for value in ("garbage", "a" * 4000, valid, valid.split(".")[0] + "." + "0" * 32, "..", "\u00e9t\u00e9"):
        fresh = TestClient(client.app, base_url=BASE, follow_redirects=False)
        page = fresh.get(f"/start/{WS}/")
        fresh.cookies.set(VISITOR, value.encode("ascii", "replace").decode())
        answer = fresh.post(f"/start/{WS}/", data={"csrf": token_of(page.text)})
        assert answer.status_code == 400, value[:20]
        assert answer.headers["set-cookie"].startswith(f'{VISITOR}=""') and "Max-Age=0" in answer.headers["set-cookie"]
        assert "Traceback" not in answer.text
    assert seats.starts == 0
    assert press(client).status_code == 303  # type: ignore[attr-defined]


def test_a_burst_from_one_address_is_limited_per_hour(tmp_path: Path) -> None:
    seats = FakeSeats()
    launcher, client = make(tmp_path, seats, starts_per_hour=10)
    try:
        answers = []
        for _ in range(100):
            fresh = TestClient(client.app, base_url=BASE, follow_redirects=False)
            answers.append(press(fresh, ip="203.0.113.7"))
        codes = [a.status_code for a in answers]  # type: ignore[attr-defined]
        assert codes.count(303) == 10 and codes.count(429) == 90
        limited = answers[-1]
        assert int(limited.headers["retry-after"]) > 3000 and "come back" in limited.text  # type: ignore[attr-defined]
        assert seats.starts == 10 and len(launcher.store.seats()) == 10
        # Another address still starts, and the launcher still serves.
        assert press(TestClient(client.app, base_url=BASE, follow_redirects=False), ip="203.0.113.8").status_code == 303  # type: ignore[attr-defined]
        assert client.get(f"/start/{WS}/").status_code == 200
    finally:
        launcher.stop()


def test_a_full_launcher_says_so_and_when_to_come_back(tmp_path: Path) -> None:
    seats = FakeSeats()
    launcher, client = make(tmp_path, seats, max_seats=3)
    try:
        codes = [press(TestClient(client.app, base_url=BASE, follow_redirects=False)).status_code  # type: ignore[attr-defined]
                 for _ in range(5)]
        assert codes == [303, 303, 303, 503, 503]
        full = press(TestClient(client.app, base_url=BASE, follow_redirects=False))
        assert full.status_code == 503 and "All desktops are taken" in full.text  # type: ignore[attr-defined]
        assert 3000 < int(full.headers["retry-after"]) <= 3700  # type: ignore[attr-defined]
        assert seats.starts == 3
    finally:
        launcher.stop()


def test_a_failed_start_leaks_no_seat(tmp_path: Path) -> None:
    seats = FakeSeats()
    seats.fail = True
    launcher, client = make(tmp_path, seats)
    try:
        answer = press(client)
        assert answer.status_code == 503 and "could not be started" in answer.text  # type: ignore[attr-defined]
        assert launcher.store.seats() == [] and launcher.status()["starting"] == 0
        seats.fail = False
        assert press(client).status_code == 303  # type: ignore[attr-defined]
    finally:
        launcher.stop()


def _until(check, seconds: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_the_warm_pool_hands_out_started_seats_and_refills(tmp_path: Path) -> None:
    seats = FakeSeats(delay=0.3)
    launcher, client = make(tmp_path, seats, warm=2)
    try:
        _until(lambda: launcher.status()["warm"] == 4)  # two per workshop
        warm = set(seats.running)
        begin = time.monotonic()
        answer = press(client)
        assert time.monotonic() - begin < 0.3  # no start waited for
        assert answer.status_code == 303  # type: ignore[attr-defined]
        given = next(n for n in warm if n in answer.headers["location"])  # type: ignore[attr-defined]
        assert launcher.store.seats_of(launcher.store.seats()[0].visitor or "", WS) or given
        _until(lambda: launcher.status()["warm"] == 4 and seats.starts == 5)
        # A warm seat is someone's once: two more visitors get two other seats.
        urls = {press(TestClient(client.app, base_url=BASE, follow_redirects=False)).headers["location"]  # type: ignore[attr-defined]
                for _ in range(2)}
        assert len(urls) == 2 and answer.headers["location"] not in urls  # type: ignore[attr-defined]
    finally:
        launcher.stop()


def test_state_survives_a_killed_launcher(tmp_path: Path) -> None:
    seats = FakeSeats()
    first, client = make(tmp_path, seats, warm=1)
    _until(lambda: first.status()["warm"] == 2)
    answer = press(client)
    url = answer.headers["location"]  # type: ignore[attr-defined]
    _until(lambda: first.status()["warm"] == 2)
    cookies = dict(client.cookies)
    first.stopping.set()  # as after kill -9: nothing cleaned up, the store left as it is
    started = seats.starts
    second, client2 = make(tmp_path, seats, warm=1)
    try:
        assert second.status()["warm"] == 2 and second.started_seats == 0  # the pool was full: nothing started
        for name, value in cookies.items():
            client2.cookies.set(name, value)
        again = client2.post(f"/start/{WS}/", data={"csrf": token_of(client2.get(f"/start/{WS}/").text)})
        assert again.status_code == 303 and again.headers["location"] == url
        assert seats.starts == started
    finally:
        second.stop()
        first.stop()


def test_a_warm_seat_past_half_its_ttl_is_replaced_and_handed_out_only_when_full(tmp_path: Path) -> None:
    seats = FakeSeats(ttl=100)
    launcher, client = make(tmp_path, seats, warm=1, max_seats=3)
    try:
        _until(lambda: launcher.status()["warm"] == 2)
        old = {n: i for n, i in seats.running.items() if i.workshop == WS}
        stale = rfc3339(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30))  # under half the ttl left
        for name, info in old.items():
            seats.running[name] = dataclasses.replace(info, expires=stale)
        launcher.jobs.put((2, next(launcher.order), "maintain", ()))
        _until(lambda: seats.starts == 3)  # a fresh warm seat beside the stale one: the launcher is full
        fresh = press(client)
        assert fresh.status_code == 303 and fresh.headers["location"] not in {i.url for i in old.values()}  # type: ignore[attr-defined]
        # Full now: the stale seat beats a 503.
        last = press(TestClient(client.app, base_url=BASE, follow_redirects=False))
        assert last.status_code == 303 and last.headers["location"] in {i.url for i in old.values()}  # type: ignore[attr-defined]
        assert press(TestClient(client.app, base_url=BASE, follow_redirects=False)).status_code == 503  # type: ignore[attr-defined]
    finally:
        launcher.stop()


def test_the_gateway_routes_start_to_the_launcher_socket_on_the_public_origin_only() -> None:
    from pipeline.lab.classroom import links, nginx

    for public in ("https://lab.example.org:8443", "https://192.168.1.10:8443"):
        pub = links.public(public)
        server = nginx.server_conf(pub, True)
        assert "include /etc/docpipe/launcher/*.conf;" in server and "default_server" in server
        route = nginx.Route(seat="ws-launch-1", token="t" * 32, watch_token="w" * 32, address="10.213.0.3",
                            desktop_port=6080, ports=(), expires="2030-01-01T00:00:00Z", class_token="",
                            offset=1 if pub.by_port else 0)
        assert "launcher" not in nginx.seat_conf(route, pub, True)  # no seat's origin routes /start/
    conf = nginx.launcher_conf(True)
    assert "location /start/ {" in conf and "proxy_pass http://unix:/srv/docpipe-launcher/launcher.sock;" in conf
    assert "proxy_set_header X-Real-IP $remote_addr;" in conf and 'proxy_set_header X-Forwarded-For "";' in conf
    assert "client_max_body_size 4k;" in conf and "frame-ancestors 'none'" in conf


def test_lab_serve_bad_flags_are_one_line(tmp_path: Path) -> None:
    from tests.support.pull import cli

    for args, message in ((["--bind", "nowhere"], "--bind 'nowhere' must be HOST:PORT or unix:PATH"),
                          (["--image", "Bad=x y"], "--image 'Bad=x y' must be WORKSHOP=IMAGE")):
        r = cli(["lab", "serve", "--workdir", str(tmp_path / "wd"), "--backend", "kubernetes", *args],
                env={"KUBECONFIG": str(tmp_path / "none")})
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip().splitlines()[-1].startswith(f"docpipe: error: {message}"), r.stderr


def test_a_returning_visitor_gets_a_new_desktop_with_the_same_home(tmp_path: Path) -> None:
    """Their seat ended: the next one is started with their first seat's student (the name their
    home is kept under), not taken from the warm pool (whose seats have students of their own)."""
    seats = FakeSeats()
    launcher, client = make(tmp_path, seats, warm=1)
    try:
        _until(lambda: launcher.status()["warm"] == 2)
        first = press(client)
        assert first.headers["x-docpipe-seat"] == "warm"  # type: ignore[attr-defined]
        seat = next(n for n, i in seats.running.items() if i.url == first.headers["location"])  # type: ignore[attr-defined]
        home = seats.students[seat]
        with seats.lock:
            del seats.running[seat]  # its ttl ended
        launcher.jobs.put((2, next(launcher.order), "maintain", ()))
        _until(lambda: launcher.status()["warm"] == 2 and launcher.seat_of(
            launcher.store.seats()[0].visitor or "", WS) is None)
        again = client.post(f"/start/{WS}/", data={"csrf": token_of(client.get(f"/start/{WS}/").text)})
        assert again.status_code == 303 and again.headers["x-docpipe-seat"] == "cold"
        assert again.headers["location"] != first.headers["location"]  # type: ignore[attr-defined]
        new = next(n for n, i in seats.running.items() if i.url == again.headers["location"])
        assert seats.students[new] == home
        # Someone else still gets a warm seat, with a home of their own.
        other = press(TestClient(client.app, base_url=BASE, follow_redirects=False))
        assert other.headers["x-docpipe-seat"] == "warm"  # type: ignore[attr-defined]
        theirs = next(n for n, i in seats.running.items() if i.url == other.headers["location"])  # type: ignore[attr-defined]
        assert seats.students[theirs] != home
    finally:
        launcher.stop()


def test_the_launchers_socket_binds_however_deep_the_workdir(tmp_path: Path) -> None:
    """The kernel holds a socket's path to 108 bytes; a workdir may be deeper than that."""
    import socket

    from pipeline.lab.launcher.serve import unix_socket

    folder = tmp_path / ("w" * 100) / "lab" / "launcher-socket"
    folder.mkdir(parents=True)
    path = folder / "launcher.sock"
    assert len(str(path)) > 108
    sock = unix_socket(str(path))
    try:
        sock.listen()
        assert path.is_socket() and path.stat().st_mode & 0o777 == 0o666
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        folder_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            client.connect(f"/proc/self/fd/{folder_fd}/launcher.sock")
        finally:
            os.close(folder_fd)
            client.close()
    finally:
        sock.close()
