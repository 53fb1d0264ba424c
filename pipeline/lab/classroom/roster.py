"""A class roster (CSV with `name`, optional `email`) -> seat names; the seats CSV for a mail merge.

Names are untrusted: they become DNS-1123 slugs for seat names (never paths or markup) and are
kept as plain text only where a person reads them.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import BadInput
from pipeline.slugs import seat_slug

MAX_NAME = 100
MAX_STUDENTS = 500
# What the hooks' output loses too (pipeline/hooks.py): C0 and C1 controls, DEL, and the
# bidirectional overrides and isolates, so a name cannot drive a terminal, forge a line in
# `lab status` or reverse the text around it in a label or the seats CSV. A name is one line:
# line breaks and tabs become spaces first.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Student:
    name: str
    email: str
    seat: str


def parse(data: str, *, source: str = "roster") -> list[Student]:
    reader = csv.DictReader(io.StringIO(data))
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    if "name" not in fields:
        raise BadInput(f"{source} has no `name` column (a CSV with a header line: name,email)")
    reader.fieldnames = fields
    students: list[Student] = []
    taken: set[str] = set()
    for line, row in enumerate(reader, start=2):
        name = " ".join(_CONTROL.sub("", " ".join((row.get("name") or "").split())).split())
        email = (row.get("email") or "").strip()
        if not name:
            continue
        if len(name) > MAX_NAME:
            raise BadInput(f"{source} line {line}: a name must be at most {MAX_NAME} characters")
        if email and not re.fullmatch(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+", email):
            raise BadInput(f"{source} line {line}: {email[:60]!r} is not an email address")
        base = seat_slug(name)
        seat, n = base, 2
        while seat in taken:  # two Ada Lovelaces get ada-lovelace and ada-lovelace-2
            seat, n = f"{base}-{n}", n + 1
        taken.add(seat)
        students.append(Student(name, email, seat))
        if len(students) > MAX_STUDENTS:
            raise BadInput(f"{source} has more than {MAX_STUDENTS} students")
    if not students:
        raise BadInput(f"{source} names no students")
    return students


def load(path: Path) -> list[Student]:
    try:
        data = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read roster {path}: {getattr(exc, 'strerror', None) or exc}") from None
    return parse(data, source=str(path))


def _cell(text: str) -> str:
    # A leading =, +, - or @ makes spreadsheets evaluate the cell: keep names inert there too.
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def seats_csv(rows: Sequence[tuple[str, str, str, str]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["student", "email", "url", "expires"])
    for row in rows:
        w.writerow([_cell(v) for v in row])
    return out.getvalue().encode("utf-8")


def write_seats_csv(path: Path, rows: Sequence[tuple[str, str, str, str]]) -> None:
    """Atomically, owner-only: the links carry the seats' passwords."""
    from pipeline.atomic import atomic_write

    atomic_write(path, seats_csv(rows), mode=0o600)
