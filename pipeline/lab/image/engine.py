"""The Docker Engine, through the docker SDK: build from a hand-made context, tag, push, look up.

Only this module knows the engine's wire format (build/push JSON chunks).
"""

from __future__ import annotations

import io
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import DocpipeError

DEFAULT_BUILD_TIMEOUT = 1800.0
LOG_TAIL = 15


def client() -> Any:
    """A connected docker client, or a one-line error saying no engine answers."""
    import docker
    from docker.errors import DockerException

    try:
        c = docker.from_env(timeout=120)
        c.ping()
        return c
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        # The socket's absence is the usual case: say that plainly, the library's words otherwise.
        reason = "nothing listens there" if "FileNotFoundError" in str(exc) or "No such file" in str(exc) else _short(exc)
        raise DocpipeError(f"no Docker Engine answers at {where} ({reason}); start dockerd or set DOCKER_HOST") from None


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) < 200 else text[:197] + "..."


def _chunk_error(chunk: dict[str, Any]) -> str | None:
    """The error an engine stream chunk reports, as one line; None for a normal chunk."""
    if "error" not in chunk and "errorDetail" not in chunk:
        return None
    detail = chunk.get("error") or chunk.get("errorDetail", {}).get("message", "")
    return " ".join(str(detail).split())


def image_exists(c: Any, ref: str) -> bool:
    from docker.errors import ImageNotFound

    try:
        c.images.get(ref)
        return True
    except ImageNotFound:
        return False


def remote_digest(c: Any, ref: str) -> str | None:
    """The manifest digest of ref in its registry, or None when the registry lacks it."""
    from docker.errors import APIError

    try:
        return str(c.api.inspect_distribution(ref)["Descriptor"]["digest"])
    except (APIError, KeyError):
        return None


@dataclass
class BuildLog:
    lines: deque[str]

    def tail(self) -> str:
        return " | ".join(line for line in self.lines if line)[-1500:]


def build(c: Any, context_tar: bytes, tags: list[str], *, timeout: float = DEFAULT_BUILD_TIMEOUT,
          on_line: Callable[[str], None] | None = None, what: str = "image") -> str:
    """Build and tag; return the image id. Any `error` chunk, or the deadline, fails the build
    with the last log lines in the message."""
    from docker.errors import APIError

    log = BuildLog(deque(maxlen=LOG_TAIL))
    deadline = time.monotonic() + timeout
    image_id = ""
    try:
        stream = c.api.build(fileobj=io.BytesIO(context_tar), custom_context=True, tag=tags[0],
                             rm=True, forcerm=True, decode=True, pull=False, timeout=timeout)
        for chunk in stream:
            error = _chunk_error(chunk)
            if error is not None:
                raise DocpipeError(f"building {what} failed: {error} (last log lines: {log.tail()})")
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in str(text).splitlines():
                log.lines.append(line.strip())
                if on_line and line.strip():
                    on_line(line.rstrip())
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                image_id = aux["ID"]
            if time.monotonic() > deadline:
                stream.close()  # dropping the connection makes the engine cancel the build
                raise DocpipeError(f"building {what} timed out after {timeout:g}s (last log lines: {log.tail()})")
    except DocpipeError:
        raise
    except APIError as exc:
        raise DocpipeError(f"building {what} failed: {_short(exc)}") from None
    except Exception as exc:  # read timeouts from the HTTP layer
        raise DocpipeError(f"building {what} failed: {_short(exc)} (last log lines: {log.tail()})") from None
    image = c.images.get(image_id or tags[0])
    for ref in tags[1:]:
        repo, _, tag = ref.rpartition(":")
        image.tag(repo, tag)
    return str(image.id)


def pull(c: Any, ref: str) -> None:
    """Fetch `ref` from its registry into the engine (an image pushed by another docpipe)."""
    from docker.errors import APIError

    repo, _, tag = ref.rpartition(":")
    try:
        c.images.pull(repo, tag=tag)
    except APIError as exc:
        raise DocpipeError(f"pulling {ref} failed: {_short(exc)}") from None


def push(c: Any, ref: str) -> str:
    """Push one tag; return the manifest digest (sha256:...) the registry reports."""
    from docker.errors import APIError

    repo, _, tag = ref.rpartition(":")
    digest = ""
    try:
        for chunk in c.api.push(repo, tag=tag, stream=True, decode=True):
            error = _chunk_error(chunk)
            if error is not None:
                raise DocpipeError(f"pushing {ref} failed: {error}")
            aux = chunk.get("aux")
            if isinstance(aux, dict) and aux.get("Digest"):
                digest = aux["Digest"]
    except APIError as exc:
        raise DocpipeError(f"pushing {ref} failed: {_short(exc)}") from None
    if not digest:
        raise DocpipeError(f"pushing {ref} failed: the registry reported no digest")
    return digest
