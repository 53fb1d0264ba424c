"""The instructor's hand on a student's desktop, and its trace.

`docpipe lab help WORKSHOP SEAT_OR_STUDENT` prints a full-control link to that seat's desktop,
shared with the student: x11vnc runs with `-shared -forever` (a new viewer never disconnects the
others) and the link asks noVNC for a shared session (`shared=1`), so both type and point at
once. VNC authentication has two levels only (full control, view only), so the link carries the
seat's full-control password, as the student's own link does; it is never the watch link.
Every use is one line appended to WORKDIR/lab/<workshop>-audit.log (0600): UTC time, seat,
student, how (`command` or `class-page`), tab-separated, the student's name escaped. The class
page's links go through the Docker gateway, which logs each one followed; every lab command of the
workdir moves those lines here first (DockerBackend.reap), so `docpipe lab status` brings the log
up to date. (The Kubernetes class page is a file and shows the `lab help` command instead.)
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from pipeline.errors import BadInput
from pipeline.lab.classroom.backend import SeatInfo, rfc3339


def help_url(url: str) -> str:
    """The seat's full-control desktop link, as a shared session (noVNC's `shared` flag)."""
    if "#" not in url or "view_only=1" in url:
        raise BadInput("this seat has no full-control desktop link (a webtop asks for its own password)")
    page, fragment = url.split("#", 1)
    return f"{page}#shared=1&{fragment}"


def find_seat(seats: list[SeatInfo], who: str) -> SeatInfo:
    """A seat by its name, or by its student's name (exact, then case-insensitive)."""
    for match in (lambda s: who in (s.seat, s.student), lambda s: who.casefold() == s.student.casefold()):
        found = [s for s in seats if match(s)]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise BadInput(f"{who!r} names {len(found)} seats: use the seat name ({', '.join(s.seat for s in found)})")
    raise BadInput(f"no seat or student {who!r} in this class (`docpipe lab status` lists them)")


def gateway_lines(workdir: Path, workshop: str, data: bytes, students: dict[str, str]) -> int:
    """The gateway's log of the class page's help links (nginx.AUDIT_FORMAT: ISO time, seat), as
    audit lines `class-page`; `students`: seat -> student. Returns how many."""
    n = 0
    for raw in data.decode("utf-8", errors="replace").splitlines():
        stamp, _, seat = raw.partition("\t")
        try:
            when = dt.datetime.fromisoformat(stamp)
        except ValueError:
            continue  # not a line nginx wrote: never copied
        record(workdir, workshop, seat, students.get(seat, ""), "class-page", when)
        n += 1
    return n


def log_path(workdir: Path, workshop: str) -> Path:
    return Path(workdir) / "lab" / f"{workshop}-audit.log"


def _field(text: str) -> str:
    """One tab-free, line-free field (a student's name is untrusted text)."""
    return text.encode("unicode_escape").decode("ascii").replace("\t", "\\t")


def record(workdir: Path, workshop: str, seat: str, student: str, how: str, when: dt.datetime | None = None) -> str:
    """Append one line to the workshop's audit log (one write on an O_APPEND file: lines never mix)."""
    line = "\t".join((rfc3339(when or dt.datetime.now(dt.UTC)), _field(seat), _field(student), how)) + "\n"
    path = log_path(workdir, workshop)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return line
