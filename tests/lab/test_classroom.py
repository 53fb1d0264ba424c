"""The classroom without an engine: rosters (hostile names stay inert), seat links (passwords out of
queries), the gateway's config, deciding a class, and what WORKSHOP may name."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import BadInput
from pipeline.lab.classroom import gateway, links, roster

DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def test_hostile_names_become_inert_seat_names_and_text(tmp_path: Path) -> None:
    names = ["../x", "Robert'); DROP TABLE--", '"quoted"', "<script>alert(1)</script>", "Ada Lovelace",
             "Ada Lovelace", "=HYPERLINK(\"http://evil\")", "Zoë Ünicode", "../../etc/passwd"]
    data = "name,email\n" + "".join(f'"{n.replace(chr(34), chr(34) * 2)}",\n' for n in names)
    students = roster.parse(data)
    assert [s.name for s in students] == names
    seats = [s.seat for s in students]
    assert len(set(seats)) == len(seats)
    assert all(DNS1123.fullmatch(s) and len(s) <= 63 for s in seats), seats
    assert seats[4:6] == ["ada-lovelace", "ada-lovelace-2"] and seats[0] == "x"
    # The mail-merge CSV keeps names as text, and a formula stays a string in a spreadsheet.
    out = tmp_path / "lab" / "w-seats.csv"
    roster.write_seats_csv(out, [(s.name, s.email, "https://h/s/t/", "2026-12-04T18:00:00Z") for s in students])
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["student", "email", "url", "expires"] and rows[3][0] == '"quoted"'
    assert rows[7][0].startswith("'=") and out.stat().st_mode & 0o077 == 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["w-seats.csv"]
    # The instructor's grid page escapes them.
    page = gateway.class_html(gateway.ClassPage("t" * 32, "w", tuple((s.name, "https://h/x") for s in students)))
    assert "<script>alert" not in page and "&lt;script&gt;" in page


@pytest.mark.parametrize("data,message", [
    ("name\n" + "A" * 300 + "\n", "at most 100 characters"),
    ("email\na@b.c\n", "no `name` column"),
    ("name,email\nx,not an address\n", "is not an email address"),
    ("name\n\n", "names no students"),
])
def test_bad_rosters_are_refused(data: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        roster.parse(data)


def test_desktop_link_carries_the_password_only_in_the_fragment() -> None:
    url = links.desktop_url("https://lab.example.org:8443", "TOK", "p&w=1")
    page, fragment = url.split("#", 1)
    assert page == "https://lab.example.org:8443/s/TOK/vnc.html" and "p%26w%3D1" in fragment
    assert "path=s/TOK/websockify" in fragment
    assert "path=lab/s/TOK/websockify" in links.desktop_url("https://h/lab", "TOK", "p")
    assert links.port_url("https://h:1", "TOK", 8080) == "https://h:1/s/TOK/port/8080/"


@pytest.mark.parametrize("public", ["https://lab.example.org:8443", "https://h/lab", "http://h:8080/a/b/"])
def test_every_link_reads_back_its_token_and_gateway(public: str) -> None:
    token, watch = "A_b-" * 8, "Zz9_" * 8
    for url in (links.desktop_url(public, token, "pw"), links.port_url(public, token, 8080), links.seat_base(public, token)):
        assert links.token_in(url) == token and links.gateway_of(url) == public.rstrip("/")
    assert links.token_in(links.desktop_url(public, watch, "v", view_only=True)) == watch
    assert links.password_in(links.desktop_url(public, watch, "v&w#1", view_only=True)) == "v&w#1"
    assert links.token_in(links.class_url(public, "C" * 32)) == "" and links.token_in("https://h/") == ""


def test_only_links_py_spells_a_seat_path() -> None:
    import ast

    pipeline = Path(__file__).resolve().parents[2] / "pipeline"
    spelled = [f"{p.name}:{node.lineno}" for p in sorted(pipeline.rglob("*.py")) if p.name != "links.py"
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"(^|/)(s|class)/", node.value)]
    assert spelled == []


def test_gateway_refuses_tokens_or_addresses_that_would_inject_config() -> None:
    from pipeline.errors import DocpipeError

    good = gateway.Route("s", "A" * 32, "B" * 32, "172.20.0.2", 6080, (8080,), "2026-12-04T18:00:00Z")
    conf = gateway.seat_conf(good)
    assert "proxy_pass http://172.20.0.2:8080/;" in conf and "location /s/" + "A" * 32 + "/ {" in conf
    for bad in (good.__class__(**{**good.__dict__, "token": "x; } location / { proxy_pass http://evil"}),
                good.__class__(**{**good.__dict__, "address": "evil.example; "})):
        with pytest.raises(DocpipeError):
            gateway.seat_conf(bad)


def test_lab_up_again_keeps_every_running_seats_links_and_adds_new_ones() -> None:
    import datetime as dt

    from pipeline.lab.classroom.backend import SeatInfo
    from pipeline.lab.classroom.instructor import ImageInfo, class_request
    from pipeline.lab.settings import LabSettings

    settings = LabSettings(public_url="https://lab.example.org:8443")
    image = ImageInfo("r/w:1", "abc", 6080, (8080,), 2 << 30, 1.0)
    now = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)
    first = class_request("w", image, settings, count=1, students=None, existing=[], now=now)
    seat = first.seats[0]
    public = "https://lab.example.org:8443"
    running = SeatInfo("w", seat.seat, "", links.desktop_url(public, seat.token, seat.password), seat.password,
                       links.desktop_url(public, seat.watch_token, seat.view_password, view_only=True), {},
                       "c1", seat.expires, "running")
    again = class_request("w", image, settings, count=2, students=None, existing=[running],
                          now=now + dt.timedelta(hours=1), class_token=first.class_token)
    kept, added = again.seats
    assert (kept.token, kept.watch_token, kept.password, kept.view_password, kept.expires) == (
        seat.token, seat.watch_token, seat.password, seat.view_password, seat.expires)
    assert added.seat == "seat-2" and added.token != seat.token and added.view_password
    assert again.class_token == first.class_token
    assert links.password_in(running.watch_url) == seat.view_password


def test_lab_up_rejects_bad_seat_counts_and_unknown_workshops(tmp_path: Path) -> None:
    from tests.support.docker_env import SAMPLE_WORKSHOP, make_archive

    make_archive(tmp_path, {"w/ws-go-promisegrid.md": SAMPLE_WORKSHOP})
    run = lambda *a: subprocess.run([sys.executable, "-m", "pipeline.cli", *a], capture_output=True, text=True,  # noqa: E731
                                    timeout=120, env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"})
    for count in ("0", "31"):
        bad = run("lab", "up", "ws-go-promisegrid", "--seats", count, "--workdir", str(tmp_path))
        assert bad.returncode == 2 and "--seats must be between 1 and 30" in bad.stderr


@pytest.mark.parametrize("ref,doc_id", [
    ("https://docs.google.com/document/d/1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789/edit", "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "1AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
    ("ws-go-promisegrid", None),
    ("mcp-376-cswg-workshop-virtual-desktops", None),
])
def test_workshop_argument_may_be_a_docs_link(ref: str, doc_id: str | None) -> None:
    from pipeline.lab.classroom.instructor import doc_id_of

    assert doc_id_of(ref) == doc_id


def test_a_docs_link_is_pulled_and_replayed_through_the_stage_runner_into_the_folder_it_names(tmp_path: Path) -> None:
    """The instructor flow's first half, no engine needed: `lab up <link> --config --workdir` pulls
    just that doc into the folder whose workdir it is, under its lock, firing `pulled` and
    `replayed` as `docpipe pull` and `replay` do, before the engine is asked."""
    from pipeline.emulator import Emulator, load_dataset
    from pipeline.resources import shipped
    from tests.support.pull import cli

    hooks, log = tmp_path / "hooks", tmp_path / "events.jsonl"
    for event in ("pulled", "replayed"):
        (hooks / event).parent.mkdir(exist_ok=True)
        (hooks / event).write_text(f"#!/bin/sh\ncat >> {log}; echo >> {log}\n")
        (hooks / event).chmod(0o755)
    with Emulator(load_dataset(shipped("sample-data")), token="lab-test-token") as emu:
        config = tmp_path / "docpipe.toml"
        # The first folder's Drive answers nothing: only the second's may be asked.
        config.write_text(f'workdir = "{tmp_path / "wd"}"\n[hooks]\ndirs = ["{hooks}"]\n'
                          '[[folders]]\nid = "1OtherFolderXXXXXXXXXXXXXXX"\nname = "other"\n'
                          '[folders.drive]\nendpoint = "http://127.0.0.1:9/"\n'
                          f'[[folders]]\nid = "{emu.root_folder_id}"\nname = "workshops"\n'
                          f'[folders.drive]\nendpoint = "{emu.url}"\n')
        wd = tmp_path / "wd" / "workshops"
        link = "https://docs.google.com/document/d/1wsGoPromiseGridPp9Aa8Ss7Dd6Ff5Gg/edit"
        r = cli(["lab", "up", link, "--config", str(config), "--workdir", str(wd), "--backend", "kubernetes",
                 "--dry-run", "-o", "yaml"],
                env={"DOCPIPE_ACCESS_TOKEN": "lab-test-token", "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert r.returncode == 1 and "no Docker Engine answers" in r.stderr, r.stderr
    # Only that doc was pulled, into the second folder's workdir, and replayed there.
    assert [p.name for p in (wd / "store" / "docs").iterdir()] == ["1wsGoPromiseGridPp9Aa8Ss7Dd6Ff5Gg.json"]
    assert not (tmp_path / "wd" / "other").exists()
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert [e["event"] for e in events] == ["pulled", "replayed"]
    assert events[1]["workdir"] == str(wd.resolve()) and len(events[1]["commit"]) == 40
    assert not (wd / ".lock").exists() and not (wd / ".pull.lock").exists()
    from pipeline.lab.classroom.instructor import resolve_workshop
    from pipeline.lab.settings import LabSettings

    def no_fetch(file_id: str) -> None:
        raise AssertionError(file_id)

    commit, ws = resolve_workshop(wd, "ws-go-promisegrid", LabSettings(), fetch=no_fetch)
    assert ws is not None and ws.error is None and ws.spec is not None and len(commit) == 40
    assert ws.name == "ws-go-promisegrid" and ws.doc_id == "1wsGoPromiseGridPp9Aa8Ss7Dd6Ff5Gg"
    assert ws.spec.base == "debian-novnc" and "golang-go" in ws.spec.packages
    assert "hello/main.go" in dict(ws.spec.files)
