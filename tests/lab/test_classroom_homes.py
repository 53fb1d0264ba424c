"""Homes, collect, the instructor's hand and idle seats, without an engine: names (never a
student's name, a home per workshop), archives (symlinks kept as links, a cut stream refused,
the old archive kept), the audit log's lines, the help link, idle arithmetic, quantities."""

from __future__ import annotations

import datetime as dt
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from pipeline.errors import BadInput, DocpipeError
from pipeline.lab.classroom import audit, collect, homes, idle
from pipeline.lab.classroom.backend import SeatInfo
from pipeline.lab.labels import HOME_LABEL, LAUNCHER_ORIGIN, SEAT_LABEL, WORKDIR_LABEL, WORKSHOP_LABEL


def test_a_home_is_named_from_a_hash_never_the_students_name() -> None:
    name = homes.volume_name("abc123", "ws-go", "ada-lovelace")
    assert name.startswith("docpipe-abc123-home-ws-go-") and "ada" not in name.removeprefix("docpipe-abc123-home-ws-go-")
    assert "lovelace" not in name
    assert name == homes.volume_name("abc123", "ws-go", "ada-lovelace")  # the same roster finds it again
    # A student in two workshops has two homes; two workdirs never share one.
    assert name != homes.volume_name("abc123", "ws-rust", "ada-lovelace")
    assert name != homes.volume_name("def456", "ws-go", "ada-lovelace")
    assert name != homes.volume_name("abc123", "ws-go", "ada-lovelace-2")
    labels = homes.volume_labels("abc123", "ws-go", "ada-lovelace")
    assert labels[WORKDIR_LABEL] == "abc123" and labels[WORKSHOP_LABEL] == "ws-go"
    assert labels[SEAT_LABEL] == "ada-lovelace" and labels[HOME_LABEL] == homes.home_key("ws-go", "ada-lovelace")


def test_sizes_and_quantities() -> None:
    assert homes.human(512) == "512 B" and homes.human(1536) == "1.5 KiB" and homes.human(10 * 2**20) == "10.0 MiB"
    assert homes.quantity_bytes("1Gi") == 2**30 and homes.quantity_bytes("500M") == 500 * 10**6
    assert homes.quantity_bytes("nonsense") == 0


def _tar(members: list[tuple[str, bytes | str]]) -> bytes:
    """A home as tar would stream it: files (bytes) and symlinks (str targets)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            if isinstance(body, str):
                info.type, info.linkname = tarfile.SYMTYPE, body
                tar.addfile(info)
            else:
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def test_an_archive_keeps_links_as_links_and_is_deterministic(tmp_path: Path) -> None:
    data = _tar([("student/notes.txt", b"mine\n"), ("student/passwd", "/etc/passwd")])
    dest = tmp_path / "lab" / "ws-work" / "ada.tar.gz"
    size = collect.write_archive(dest, [data[:700], data[700:]])
    assert size == dest.stat().st_size > 0 and stat.S_IMODE(dest.stat().st_mode) == 0o600
    with tarfile.open(dest) as tar:
        link = tar.getmember("student/passwd")
        assert link.issym() and link.linkname == "/etc/passwd"
    first = dest.read_bytes()
    collect.write_archive(dest, [data])
    assert dest.read_bytes() == first  # gzip without a time: the same home, the same bytes


def test_a_cut_stream_is_refused_and_the_old_archive_kept(tmp_path: Path) -> None:
    data = _tar([("student/big.bin", os.urandom(50_000))])
    dest = tmp_path / "ada.tar.gz"
    collect.write_archive(dest, [data])
    before = dest.read_bytes()
    with pytest.raises(DocpipeError, match="incomplete"):
        collect.write_archive(dest, [data[:20_000]])
    assert dest.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["ada.tar.gz"]

    def failing() -> list[bytes]:
        raise DocpipeError("tar in seat exited with status 2")
    with pytest.raises(DocpipeError, match="status 2"):
        collect.write_archive(tmp_path / "grace.tar.gz", failing())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ada.tar.gz"]


def _seat(seat: str, student: str) -> SeatInfo:
    url = f"https://s-x.lab.example.org/s/k/vnc.html#autoconnect=1&password=pw{seat}"
    return SeatInfo("ws", seat, student, url, f"pw{seat}", url.replace("autoconnect=1", "view_only=1"), {}, "c", "", "running")


def test_the_help_link_is_a_shared_full_control_link_never_the_watch_link() -> None:
    seat = _seat("ada-lovelace", "Ada Lovelace")
    link = audit.help_url(seat.url)
    assert link.split("#")[0] == seat.url.split("#")[0] and "shared=1" in link and "view_only" not in link
    with pytest.raises(BadInput):
        audit.help_url(seat.watch_url)
    seats = [seat, _seat("ada-lovelace-2", "Ada Lovelace"), _seat("grace-hopper", "Grace Hopper")]
    assert audit.find_seat(seats, "grace-hopper").student == "Grace Hopper"
    assert audit.find_seat(seats, "grace hopper").seat == "grace-hopper"
    with pytest.raises(BadInput, match="names 2 seats"):
        audit.find_seat(seats, "Ada Lovelace")
    with pytest.raises(BadInput, match="no seat or student"):
        audit.find_seat(seats, "Nobody")


def test_every_use_is_one_line_of_the_audit_log(tmp_path: Path) -> None:
    when = dt.datetime(2026, 12, 7, 17, 0, tzinfo=dt.UTC)
    audit.record(tmp_path, "ws", "a", "Ada\nLovelace\tX", "command", when)
    audit.record(tmp_path, "ws", "b", "Grace", "class-page", when)
    log = audit.log_path(tmp_path, "ws")
    assert log == tmp_path / "lab" / "ws-audit.log" and stat.S_IMODE(log.stat().st_mode) == 0o600
    assert log.read_text().splitlines() == ["2026-12-07T17:00:00Z\ta\tAda\\nLovelace\\tX\tcommand",
                                            "2026-12-07T17:00:00Z\tb\tGrace\tclass-page"]


def test_idle_is_counted_from_the_last_viewer_else_the_start() -> None:
    now = dt.datetime(2026, 12, 7, 17, 0, tzinfo=dt.UTC)
    started = now - dt.timedelta(hours=1)
    never = idle.activity("a", True, None, started, now)
    assert (never.connected, never.last_seen, idle.idle_for(never, now)) == (False, None, 3600)
    seen = int((now - dt.timedelta(seconds=4)).timestamp())
    here = idle.activity("b", True, seen, started, now)
    assert here.connected and here.last_seen == "2026-12-07T16:59:56Z" and idle.idle_for(here, now) == 0
    gone = idle.activity("c", True, int((now - dt.timedelta(minutes=40)).timestamp()), started, now)
    assert not gone.connected and idle.idle_for(gone, now) == 2400
    restarted = idle.activity("d", True, seen - 7200, now - dt.timedelta(minutes=5), now)
    assert idle.idle_for(restarted, now) == 300  # started again after the last viewer: idle since the start
    stopped = idle.activity("e", False, seen, started, now)
    assert not stopped.connected and stopped.to_json() == {"connected": False, "last_seen": "2026-12-07T16:59:56Z"}
    assert idle.parse_seen(b"1765126800\n") == 1765126800 and idle.parse_seen(b"junk") is None
    assert idle.started_at("2026-12-07T16:00:00.123456789Z") == started


def test_the_class_page_offers_each_seat_the_help_command() -> None:
    from pipeline.lab.classroom.classpage import class_html

    page = class_html("ws-go", [("Ada Lovelace", "https://s-a.h/s/k/vnc.html#view_only=1"),
                                ("<b>x</b>'; rm -rf /", "https://s-b.h/s/k/vnc.html#view_only=1")], ["https://s-a.h"])
    assert "<code>docpipe lab help ws-go &#x27;Ada Lovelace&#x27;</code>" in page
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page  # escaped, and quoted for the shell
    assert "<script" not in page


def test_a_launcher_seat_mounts_its_visitors_home_a_class_seat_its_own() -> None:
    assert homes.owner("launch-1a2b", "v-7f3c", LAUNCHER_ORIGIN) == "v-7f3c"
    assert homes.owner("ada-lovelace", "Ada Lovelace", "") == "ada-lovelace"
    assert homes.owner("launch-1a2b", "", LAUNCHER_ORIGIN) == "launch-1a2b"
