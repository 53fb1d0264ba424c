#!/usr/bin/env python3
"""A class of N seats behind the gateway, on a real Docker Engine, with the sample workshop's image.

Figures: seconds from `lab up --seats N` until every seat's desktop page answers through the
gateway (HTTPS, verified with the local CA); idle memory per seat from `docker stats` after the
seats settled; baseline (same run): one seat's time to answer. Goals: N=20 in <= 30 s, <= 150 MB
idle per seat. Then every seat is logged into through the gateway (RFB, the student's
password), which starts its browser, and memory is measured again: the cost of a seat in use.
Then the class grows to --class-of seats (30) and, from inside seat-1 as its student, every other
seat is tried by address on noVNC's port (6080, where the gateway reaches each one) and by name:
none may answer or resolve, while the gateway on the seat's network answers (the control). The
full-port version of that check, against two seats and the host, is a test
(tests/lab/test_classroom_docker_isolation.py).
Homes (issue 20): every seat has its own home volume. Each home gets 10 MB of incompressible
data and `lab collect` archives the class (goal: 20 homes < 30 s); baseline (same run): one
seat's home of 10 MB collected alone. `lab down --purge` then says how much it removed.
The class, its gateway, its networks, its homes and the workshop images are removed at the end.

    python bench/lab_class.py [--seats 20] [--settle 20] [--class-of 30] [--homes-only]

--homes-only skips the logged-in memory and the grown-class isolation phases (issue 18's figures).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.lab.classroom.gateway import lab_id
from pipeline.lab.image import engine, provision
from pipeline.lab.settings import LabSettings
from tests.support.docker_env import SAMPLE_WORKSHOP, VncSession, make_archive
from tests.support.lab import fetch
from tests.support.seat_scripts import PROBE


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory(client: object) -> list[float]:
    mems = []
    for c in client.containers.list(filters={"label": "docpipe.io/workshop=ws-go-promisegrid"}):  # type: ignore[attr-defined]
        mem = c.stats(stream=False)["memory_stats"]
        mems.append((mem.get("usage", 0) - mem.get("stats", {}).get("inactive_file", 0)) / 1024**2)
    return mems


def _up(workdir: Path, env: dict[str, str], seats: int, ca: Path) -> tuple[float, list[dict[str, str]]]:
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "up", "ws-go-promisegrid", "--seats",
                          str(seats), "--json"], capture_output=True, text=True, env=env, check=True, timeout=900)
    ctx = ssl.create_default_context(cafile=str(ca))
    seats = json.loads(out.stdout)["seats"]
    for seat in seats:  # lab up waits itself; check each again from outside (as a browser would)
        assert fetch(seat["url"].split("#")[0], ctx).status == 200
    return time.monotonic() - start, seats


def _isolation(client: object, seats: list[dict[str, str]]) -> tuple[int, int, list[str]]:
    """From inside seat-1: (other seats, names of theirs that resolved, what answered on noVNC's
    port 6080, which the gateway reaches on every seat)."""
    first = client.containers.get(seats[0]["container"])  # type: ignore[attr-defined]
    others = [client.containers.get(s["container"]) for s in seats[1:]]  # type: ignore[attr-defined]
    addresses = [c.attrs["NetworkSettings"]["Networks"][c.name]["IPAddress"] for c in others]
    names = [s["seat"] for s in seats[1:]] + [c.name for c in others]
    network = client.networks.get(first.name)  # type: ignore[attr-defined]
    gateway = str(ipaddress.ip_network(network.attrs["IPAM"]["Config"][0]["Subnet"])[2])
    code, out = first.exec_run(["python3", "-c", PROBE, ",".join([*addresses, *names, gateway]), "2", "6080,8443"],
                               user="student")
    assert code == 0, out
    result = json.loads(out)
    assert f"{gateway}:8443" in result["open"], result  # the control: the gateway does answer
    resolved = len(names) - sum(1 for k in result["failed"] if k.startswith("unresolved "))
    return len(others), resolved, [a for a in result["open"] if not a.startswith(gateway)]


HOME_MB = 10


class _Done(Exception):
    """--homes-only: the rest of the phases are skipped."""


def _fill(client: object, seats: list[dict[str, str]]) -> None:
    """HOME_MB of random bytes (gzip cannot shrink them) in every seat's home, as its student."""
    for seat in seats:
        c = client.containers.get(seat["container"])  # type: ignore[attr-defined]
        code, out = c.exec_run(["sh", "-c", f"head -c {HOME_MB * 2**20} /dev/urandom > ~/work.bin"], user="student")
        assert code == 0, out


def _collect(env: dict[str, str]) -> tuple[float, list[dict[str, object]]]:
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "lab", "collect", "ws-go-promisegrid", "--json"],
                         capture_output=True, text=True, env=env, timeout=900)
    seconds = time.monotonic() - start
    assert out.returncode == 0, out.stdout + out.stderr
    return seconds, json.loads(out.stdout)["seats"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seats", type=int, default=20)
    ap.add_argument("--settle", type=float, default=20.0)
    ap.add_argument("--class-of", type=int, default=30)
    ap.add_argument("--homes-only", action="store_true")
    args = ap.parse_args()
    client = engine.client()
    prefix = f"docpipe-bench-{os.urandom(3).hex()}"
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        make_archive(workdir, {"workshops/ws-go-promisegrid.md": SAMPLE_WORKSHOP})
        provision.provision(workdir, LabSettings(prefix=prefix))
        port = _port()
        env = {**os.environ, "DOCPIPE_WORKDIR": str(workdir), "DOCPIPE_LAB_PREFIX": prefix,
               "DOCPIPE_LAB_LISTEN": f"127.0.0.1:{port}", "DOCPIPE_LAB_PUBLIC_URL": f"https://lab.localhost:{port}",
               "DOCPIPE_LAB_MAX_SEATS": str(max(args.seats, args.class_of))}
        ca = workdir / "lab" / "ca" / "ca.crt"
        down = [sys.executable, "-m", "pipeline.cli", "lab", "down", "ws-go-promisegrid", "--purge"]
        used: list[float] = []
        grown, gw_mb, others, resolved = 0.0, 0.0, 0, 0
        answered: list[str] = []
        try:
            one, first = _up(workdir, env, 1, ca)
            _fill(client, first)
            collect_one, _ = _collect(env)
            subprocess.run(down, env=env, check=True, capture_output=True)  # seat-1's home starts empty again
            many, seats = _up(workdir, env, args.seats, ca)
            time.sleep(args.settle)
            mems = _memory(client)
            _fill(client, seats)
            collect_all, collected = _collect(env)
            archived = sum(int(str(s["bytes"])) for s in collected)
            if args.homes_only:
                raise _Done
            ctx = ssl.create_default_context(cafile=str(ca))
            sessions = [VncSession(seat["url"], ctx) for seat in seats]  # every student opens their link
            try:
                for session, seat in zip(sessions, seats, strict=True):
                    assert session.login(seat["password"])
                    session.start()
                time.sleep(args.settle)
                used = _memory(client)
            finally:
                for session in sessions:
                    session.close()
            grown, everyone = _up(workdir, env, args.class_of, ca)
            gateway = client.containers.get(f"docpipe-lab-{lab_id(workdir)}")
            gw_mem = gateway.stats(stream=False)["memory_stats"]
            gw_mb = (gw_mem.get("usage", 0) - gw_mem.get("stats", {}).get("inactive_file", 0)) / 1024**2
            others, resolved, answered = _isolation(client, everyone)
        except _Done:
            pass
        finally:
            purged = subprocess.run(down, env=env, capture_output=True, check=False, text=True).stdout.strip()
            for image in client.images.list():
                for tag in image.tags:
                    if prefix in tag:
                        client.images.remove(tag, force=True)
    print(f"1 seat up and answering through the gateway: {one:.1f} s (baseline)")
    print(f"{args.seats} seats up and answering: {many:.1f} s ({many / one:.1f}x one seat; goal <= 30 s)")
    print(f"idle memory per seat after {args.settle:g} s: mean {sum(mems) / len(mems):.0f} MB, "
          f"max {max(mems):.0f} MB (goal <= 150 MB)")
    print(f"collect 1 home of {HOME_MB} MB: {collect_one:.1f} s (baseline); {len(collected)} homes of {HOME_MB} MB: "
          f"{collect_all:.1f} s ({collect_all / collect_one:.1f}x one home; goal < 30 s), "
          f"{archived / 2**20:.0f} MB of archives")
    print(f"lab down --purge: {purged.splitlines()[-1] if purged else '?'}")
    if args.homes_only:
        return
    print(f"memory per seat in use (student logged in, browser open) after {args.settle:g} s: "
          f"mean {sum(used) / len(used):.0f} MB, max {max(used):.0f} MB")
    print(f"class grown to {args.class_of} seats (each on a network of its own): {grown:.1f} s for "
          f"{args.class_of - args.seats} more; gateway {gw_mb:.0f} MB")
    print(f"isolation in a class of {args.class_of}: from inside seat-1, {len(answered)} of the {others} other seats "
          f"answered on noVNC's port by address, {resolved} of their {2 * others} names resolved "
          "(the gateway, the control, answered)")


if __name__ == "__main__":
    main()
