"""`lab progress` without an engine: seats checked a few at a time, a failing seat reported in its
row without stopping the rest, the table, and the class page's line per tile (no secret in it)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from pipeline.lab.classroom import classpage, progress
from pipeline.lab.classroom.backend import SeatInfo


def _seat(name: str, student: str = "", status: str = "running") -> SeatInfo:
    return SeatInfo(workshop="ws", seat=name, student=student, url="u", password="p", watch_url="w", ports={},
                    container=f"c-{name}", expires="2099-01-01T00:00:00Z", status=status)


def _out(*oks: bool) -> bytes:
    return json.dumps({"checks": [{"name": f"Step {i + 1}", "ok": ok, "timed_out": False, "exit": 0 if ok else 1,
                                   "seconds": 0.1, "output": ""} for i, ok in enumerate(oks)]}).encode()


def test_gather_is_bounded_and_survives_a_failing_seat() -> None:
    seats = [_seat(f"seat-{i}", f"Student {i}") for i in range(20)] + [_seat("gone", status="exited")]
    running, most = 0, 0
    lock = threading.Lock()

    def run(seat: SeatInfo) -> bytes:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        if seat.seat == "seat-3":
            raise RuntimeError("exec failed:\nconnection reset")
        if seat.seat == "seat-4":
            return b"not json"
        return _out(True, seat.seat == "seat-1")

    rows = progress.gather(seats, run, jobs=8)
    assert [r.seat for r in rows] == [s.seat for s in seats] and most <= 8
    by = {r.seat: r for r in rows}
    assert by["seat-3"].error == "exec failed: connection reset" and by["seat-4"].error
    assert by["gone"].error == "seat is exited"
    assert (by["seat-1"].done, by["seat-2"].done) == (2, 1)
    table = progress.table(rows)
    assert "Student 1" in table and "2/2" in table and "exec failed" in table and " 1. Step 1" in table
    assert by["seat-2"].to_json()["checks"][1]["ok"] is False


def test_class_page_shows_the_last_check_and_nothing_else(tmp_path: Path) -> None:
    rows = progress.gather([_seat("seat-1", "<Ada>"), _seat("seat-2")],
                           lambda s: _out(True, False) if s.seat == "seat-1" else b"{}")
    progress.save(tmp_path, "ws", rows, "2026-12-07T14:05:00Z")
    saved = progress.summary_path(tmp_path, "ws").read_text()
    assert '"output"' not in saved and "password" not in saved
    lines = progress.summaries(tmp_path, "ws")
    assert lines["seat-1"] == "1/2 steps done at 14:05Z" and lines["seat-2"].startswith("progress unknown")
    page = classpage.class_html("ws", [("<Ada>", "https://s/x#password=v")], ["https://s"],
                                {"<Ada>": lines["seat-1"]})
    assert "&lt;Ada&gt; <small>1/2 steps done at 14:05Z</small>" in page
    assert progress.summaries(tmp_path, "other") == {}
