"""`docpipe lab collect WORKSHOP`: every seat's home as WORKDIR/lab/<workshop>-work/<seat>.tar.gz.

The archive is made by tar in the seat itself (GNU tar on a running seat, through Docker's exec or
Kubernetes' exec over the official client's WebSocket stream; the engine's archive API on a stopped
Docker seat), so symlinks are stored as symlinks and nothing outside the home is read.
A file the student is writing while tar reads it is stored at the size tar first saw (GNU tar
says "file changed as we read it" and exits 1): the archive stays valid. Each archive is written
through pipeline/atomic.py, checked (read to its end) before it replaces the previous one; a seat
that fails is reported and the others are still collected.
"""

from __future__ import annotations

import gzip
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.atomic import atomic_file
from pipeline.errors import DocpipeError


@dataclass(frozen=True)
class Collected:
    seat: str
    student: str
    path: str       # "" when it failed
    bytes: int      # of the .tar.gz
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"seat": self.seat, "student": self.student, "path": self.path, "bytes": self.bytes,
                "error": self.error}


def work_dir(workdir: Path, workshop: str) -> Path:
    return Path(workdir) / "lab" / f"{workshop}-work"


def write_archive(dest: Path, chunks: Iterable[bytes]) -> int:
    """The tar stream `chunks`, gzip'd (mtime 0: the same home gives the same bytes), to `dest`
    atomically, after checking the tar reads to its end. Returns the file's size."""
    with atomic_file(dest, mode=0o600) as fh:
        with gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0, compresslevel=6) as gz:
            for chunk in chunks:
                gz.write(chunk)
        fh.flush()
        fh.seek(0)
        try:
            with tarfile.open(fileobj=fh, mode="r:gz") as tar:
                for _ in tar:
                    pass
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DocpipeError(f"the archive of {dest.name} is incomplete: {exc}") from None
        fh.seek(0, 2)
    return dest.stat().st_size


def tar_command(home: str) -> list[str]:
    """GNU tar of the home (its own folder name at the top), to stdout; symlinks stored as links."""
    home_path = PurePosixPath(home)
    return ["tar", "--warning=no-file-changed", "--warning=no-file-removed", "-C", str(home_path.parent),
            "-cf", "-", home_path.name]


def _exec_tar(client: Any, container: Any, home: str, user: str | None) -> Iterator[bytes]:
    """`tar` run in a running seat, its stdout streamed; its exit status checked at the end."""
    cmd = tar_command(home)
    exec_id = client.api.exec_create(container.id, cmd, stdout=True, stderr=False, user=user or "")
    yield from client.api.exec_start(exec_id, stream=True)
    code = client.api.exec_inspect(exec_id).get("ExitCode")
    if code not in (0, 1):  # 1: a file changed while tar read it (the archive is still whole)
        raise DocpipeError(f"tar in {container.name} exited with status {code}")


def docker_home_stream(client: Any, container: Any, home: str, user: str | None) -> Iterable[bytes]:
    container.reload()
    if container.status == "running":
        return _exec_tar(client, container, home, user)
    # A stopped seat (reaped for idleness, or past its ttl): the engine reads its volume itself.
    stream, _ = container.get_archive(home)
    chunks: Iterable[bytes] = stream
    return chunks
