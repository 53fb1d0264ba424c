"""Student homes that outlive the seat: their names and labels (pure), and the Docker volumes.

A home belongs to (workdir, workshop, seat): the seat is the roster's slug of the student's name,
so the same roster gives every student their own home back, and a student in two workshops has
two homes. The name carries a hash of the seat, never the student's name (volume names show up
in `docker volume ls` and in logs of whoever runs the engine).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from pipeline.lab.labels import HOME_LABEL, LAUNCHER_ORIGIN, MANAGED_LABEL, MANAGER, SEAT_LABEL, WORKDIR_LABEL, WORKSHOP_LABEL

HOME = "/home/student"  # docpipe's desktop base's $HOME (uid 1000)


def owner(seat: str, student: str, origin: str) -> str:
    """Whose home a seat mounts. A class's seat is named after its roster row, so the seat is the
    owner; each seat `lab serve` starts has a name of its own, and its student is the visitor's
    opaque id, kept across their seats: keyed by it, a returning visitor gets their home back."""
    return student if origin == LAUNCHER_ORIGIN and student else seat


def home_key(workshop: str, seat: str) -> str:
    """20 hex digits of sha256 over (workshop, seat): stable, says nothing of the student."""
    return hashlib.sha256(f"{workshop}\n{seat}".encode()).hexdigest()[:20]


def volume_name(lab: str, workshop: str, seat: str) -> str:
    """The Docker volume of one home: the workdir's lab id keeps two workdirs apart."""
    return f"docpipe-{lab}-home-{workshop[:60]}-{home_key(workshop, seat)}"


def volume_labels(lab: str, workshop: str, seat: str) -> dict[str, str]:
    return {MANAGED_LABEL: MANAGER, WORKDIR_LABEL: lab, WORKSHOP_LABEL: workshop, SEAT_LABEL: seat,
            HOME_LABEL: home_key(workshop, seat)}


def ensure_volume(client: Any, lab: str, workshop: str, seat: str) -> tuple[str, bool]:
    """The home's volume and whether it is new (made empty: Docker copies the image's home into
    an empty named volume on its first mount, ownership included)."""
    from docker.errors import NotFound

    name = volume_name(lab, workshop, seat)
    try:
        client.volumes.get(name)
        return name, False
    except NotFound:
        client.volumes.create(name=name, driver="local", labels=volume_labels(lab, workshop, seat))
        return name, True


def drop_volume(client: Any, name: str) -> None:
    """A home `lab up` made for a seat it then rolled back (nothing of a student's is in it)."""
    from docker.errors import APIError, NotFound

    try:
        client.volumes.get(name).remove(force=True)
    except (APIError, NotFound):
        pass


def volumes(client: Any, lab: str, workshop: str | None = None) -> list[Any]:
    wanted = [f"{MANAGED_LABEL}={MANAGER}", f"{WORKDIR_LABEL}={lab}", HOME_LABEL]
    if workshop:
        wanted.append(f"{WORKSHOP_LABEL}={workshop}")
    return sorted(client.volumes.list(filters={"label": wanted}), key=lambda v: v.name)


@dataclass(frozen=True)
class Purged:
    homes: int
    bytes: int


def sizes(client: Any, names: set[str]) -> dict[str, int]:
    """Bytes each volume holds, as the engine measures them (`docker system df -v`)."""
    found: dict[str, int] = {}
    for v in client.df().get("Volumes") or []:
        if v.get("Name") in names:
            size = (v.get("UsageData") or {}).get("Size", -1)
            found[v["Name"]] = max(int(size), 0)
    return found


def purge(client: Any, lab: str, workshop: str) -> Purged:
    """Remove every home of `workshop` in this workdir (their seats are gone already)."""
    from docker.errors import NotFound

    found = volumes(client, lab, workshop)
    measured = sizes(client, {v.name for v in found}) if found else {}
    for v in found:
        try:
            v.remove(force=True)
        except NotFound:
            pass
    return Purged(len(found), sum(measured.values()))


def human(n: int) -> str:
    """1536 -> "1.5 KiB": what `down --purge` prints beside the exact byte count."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def purge_backend(backend: Any, workshop: str) -> Purged:
    """`lab down --purge` on either backend (both have purge_homes; the Backend contract stays as it was)."""
    result: Purged = backend.purge_homes(workshop)
    return result


_UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4,
          "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}


def quantity_bytes(text: str) -> int:
    """A Kubernetes storage quantity ("1Gi", "500M") in bytes (0 when it is not one)."""
    import re

    m = re.fullmatch(r"([0-9]+)([kMGT]i?|Ki)?", str(text).strip())
    return int(m.group(1)) * _UNITS[m.group(2) or ""] if m else 0
