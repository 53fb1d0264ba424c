"""The classroom without an engine: rosters (hostile names stay inert), seat links (an origin per seat,
class page and workshop port; passwords out of queries), deciding a class, and what WORKSHOP may name."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pipeline.errors import BadInput
from pipeline.lab.classroom import classpage, links, roster

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
    # The instructor's class page escapes them.
    page = classpage.class_html("w", [(s.name, "https://h/x") for s in students], ["https://h"])
    assert "<script>alert" not in page and "&lt;script&gt;" in page


def test_control_characters_leave_student_names(tmp_path: Path) -> None:
    """C0, C1 and bidi overrides, as the hooks' output loses them: nothing reaches labels, `lab
    status` or the seats CSV that could drive a terminal or reverse the text around it."""
    data = ('name\n"Ada\u202eecalevol"\n"Grace\u0085 Hopper\u009b31m"\n"Alan\u2066\u2069 \x1b[2JTuring"\n'
            '"two\nlines\tand a tab"\n"\u202e\u0085"\n')
    students = roster.parse(data)
    names = [s.name for s in students]
    assert names == ["Adaecalevol", "Grace Hopper31m", "Alan [2JTuring", "two lines and a tab"]
    assert not any(re.search("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", n) for n in names)
    out = tmp_path / "seats.csv"
    roster.write_seats_csv(out, [(s.name, "", "https://h/", "2026-12-04T18:00:00Z") for s in students])
    assert "\u202e" not in out.read_text() and "\x1b" not in out.read_text()


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
    origins = links.gateway_origins("https://lab.example.org:8443", "T" * 32, "W" * 32, (8080,))
    url = links.desktop_url(origins.desktop, "T" * 32, "p&w=1")
    page, fragment = url.split("#", 1)
    assert page == f"{origins.desktop}/s/{'T' * 32}/vnc.html" and "p%26w%3D1" in fragment
    assert f"path=s/{'T' * 32}/websockify" in fragment and links.password_in(url) == "p&w=1"
    assert links.password_in(links.desktop_url(origins.watch, "W" * 32, "v&w#1", view_only=True)) == "v&w#1"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@pytest.mark.parametrize("public", ["https://lab.example.org:8443", "https://lab.example.org", "https://192.168.1.10:8443",
                                    "http://[fd00::5]:8080"])
def test_every_seat_its_class_page_and_each_workshop_port_are_origins_of_their_own(public: str) -> None:
    seats = [(f"T{i}" * 16, f"W{i}" * 16) for i in range(3)]
    by_port = links.public(public).by_port
    found = []
    for i, (token, watch) in enumerate(seats):
        o = links.gateway_origins(public, token, watch, (8080, 9090), offset=1 + 3 * i if by_port else 0)
        found.append(o)
        urls = [links.desktop_url(o.desktop, token, "pw"), links.port_url(o.ports[8080], token, 8080),
                links.port_url(o.ports[9090], token, 9090)]
        assert len({_origin(u) for u in urls}) == 3  # desktop, and each port apart from it and each other
        assert token not in urls[1] and token not in urls[2]  # a shared port link tells nothing of the desktop's
        assert (o.watch == o.desktop) == by_port  # the watch link: its own host, or its seat's port
    klass = links.class_origin(public, "C" * 32)
    every = [o.desktop for o in found] + [p for o in found for p in o.ports.values()]
    assert len(set(every)) == len(every) and klass not in every
    assert not any(o.watch in every[len(found):] or o.watch == klass for o in found)
    if by_port:  # the listen port serves class pages; seats take the ports after it
        port = links.public(public).port
        assert klass == public and _origin(found[1].desktop) == public.rsplit(":", 1)[0] + f":{port + 4}"
    else:
        assert all(urlsplit(u).hostname.endswith(".lab.example.org") for u in every + [klass])  # type: ignore[union-attr]
        assert urlsplit(found[0].ports[8080]).hostname.startswith("p8080-")  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["https://h/lab", "ftp://h", "https://u:p@h", "https://h?x=1", "https://h:99999",
                                 "https://h_x.example", "https://h;x{.example"])
def test_a_public_url_is_a_scheme_host_and_port_only(bad: str) -> None:
    with pytest.raises(BadInput, match="must look like https://host"):
        links.public(bad)


def test_only_links_py_spells_a_seat_path() -> None:
    import ast

    pipeline = Path(__file__).resolve().parents[2] / "pipeline"
    spelled = [f"{p.name}:{node.lineno}" for p in sorted(pipeline.rglob("*.py")) if p.name != "links.py"
               for node in ast.walk(ast.parse(p.read_text()))
               if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.search(r"(^|/)(s|class)/", node.value)]
    assert spelled == []


def test_lab_up_again_keeps_every_running_seats_links_and_adds_new_ones() -> None:
    import datetime as dt

    from pipeline.lab.classroom.instructor import ImageInfo, class_request
    from pipeline.lab.settings import LabSettings

    settings = LabSettings(public_url="https://lab.example.org:8443")
    image = ImageInfo("r/w:1", "abc", 6080, (8080,), 2 << 30, 1.0)
    now = dt.datetime(2026, 12, 4, 8, 0, tzinfo=dt.UTC)
    first = class_request("w", image, settings, count=1, students=None, existing=[], now=now)
    seat = first.seats[0]
    again = class_request("w", image, settings, count=2, students=None, existing=[seat],
                          now=now + dt.timedelta(hours=1), class_token=first.class_token)
    kept, added = again.seats
    assert kept == seat  # token, watch token, passwords and expiry: the links printed stay valid
    assert added.seat == "seat-2" and added.token != seat.token and added.view_password
    assert again.class_token == first.class_token and again.egress == "none"


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
