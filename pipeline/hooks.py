"""Events and hooks: after each stage docpipe fires a named event; hooks are executables.

A hook is found by its event's name in each hook directory, in order: `WORKDIR/hooks`, then the
directories given by `--hooks`/config. In each directory `EVENT` runs first, then `EVENT.d/*` in
name order. (docpipe's own `workshop` handler, the lab image builder, runs in-process before
them: pipeline/stages.py.) A hook reads one JSON object on
stdin and may print one JSON object on stdout; a non-zero exit or a timeout fails the stage.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline import children
from pipeline.errors import DocpipeError

EVENTS = ("pulled", "replayed", "pushed", "rendered", "workshop")
DEFAULT_TIMEOUT = 1800.0
# Secrets docpipe itself holds are not handed to hooks unless the operator says so:
# a hook is told what happened, not given the keys.
_SECRET_ENV = ("DOCPIPE_ACCESS_TOKEN", "GITEA_TOKEN", "DOCPIPE_GITEA_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS")
_STDERR_TAIL_LINES = 12
_STDERR_KEEP = 64 * 1024  # of a hook's stderr, only the tail is kept (and shown on failure)
OUTPUT_LIMIT = 1 << 20  # a hook printing more than this on stdout fails


@dataclass
class HookResult:
    hook: str
    event: str
    output: Any

    def to_json(self) -> dict[str, Any]:
        return {"hook": self.hook, "event": self.event, "output": self.output}


@dataclass
class HookRunner:
    dirs: list[Path]
    timeout: float = DEFAULT_TIMEOUT
    enabled: bool = True
    pass_env: tuple[str, ...] = ()
    # Where a hook's `progress: ...` lines on stderr go as they come (a long image build says
    # what it is doing); None keeps them in the stderr tail only.
    on_progress: Callable[[str], None] | None = None

    def fire(self, event: str, payload: Mapping[str, Any]) -> list[HookResult]:
        """Run every hook of `event` with `payload`; collect what they print."""
        if not self.enabled:
            return []
        return [run_hook(hook, event, payload, timeout=self.timeout, pass_env=self.pass_env,
                         on_progress=self.on_progress)
                for hook in find_hooks(event, self.dirs)]


def default_dirs(workdir: Path, extra: Iterable[Path] = ()) -> list[Path]:
    return [workdir / "hooks", *(Path(p) for p in extra)]


def _is_hook(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and not path.name.startswith(".")


def find_hooks(event: str, dirs: Iterable[Path]) -> list[Path]:
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    found: list[Path] = []
    for d in dirs:
        single = d / event
        if _is_hook(single):
            found.append(single)
        several = d / f"{event}.d"
        if several.is_dir():
            found.extend(p for p in sorted(several.iterdir(), key=lambda p: p.name) if _is_hook(p))
    return found


def _hook_env(pass_env: Iterable[str]) -> dict[str, str]:
    allowed = set(pass_env)
    env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV or k in allowed}
    # `python3` in a hook is the interpreter docpipe runs in (a venv's, say), so Python hooks,
    # the built-in ones included, can import docpipe even when the venv is not activated.
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", os.defpath)])
    env["DOCPIPE_PYTHON"] = sys.executable
    return env


# Hooks may come from anyone: what they print must not drive the terminal or forge log lines.
# C0 and C1 controls (but newline and tab), DEL, and the bidirectional overrides.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str) -> str:
    """`text` without control characters other than newline and tab."""
    return _CONTROL.sub("", text)


def _clean(value: Any) -> Any:
    """A hook's JSON output with every string sanitised (keys too)."""
    if isinstance(value, str):
        return sanitize(value)
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {sanitize(k): _clean(v) for k, v in value.items()}
    return value


def _tail(text: str, lines: int = _STDERR_TAIL_LINES) -> str:
    kept = [ln for ln in sanitize(text).strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)


@dataclass
class _Captured:
    stdout: bytes
    stderr: bytes
    returncode: int | None  # None: killed by docpipe (timeout or too much output)
    why: str = ""


PROGRESS = b"progress: "


def _progress_lines(on_progress: Callable[[str], None] | None) -> Callable[[bytes], None]:
    """Feed stderr chunks; every complete `progress: ...` line goes to `on_progress`, sanitized."""
    partial = bytearray()

    def feed(chunk: bytes) -> None:
        if on_progress is None:
            return
        partial.extend(chunk)
        *lines, rest = bytes(partial).split(b"\n")
        partial[:] = rest[-4096:]  # a line never ending must not grow without bound
        for line in lines:
            if line.startswith(PROGRESS):
                on_progress(sanitize(line[len(PROGRESS):].decode(errors="replace"))[:300])
    return feed


def _capture(proc: subprocess.Popen[bytes], document: bytes, timeout: float, limit: int,
             on_progress: Callable[[str], None] | None = None) -> _Captured:
    """Feed `document` to the hook and read what it prints until *it* exits (not until every
    descendant holding its pipes has), it times out, or its stdout passes `limit` bytes."""
    assert proc.stdin and proc.stdout and proc.stderr
    deadline = time.monotonic() + timeout
    out, err = bytearray(), bytearray()
    progress = _progress_lines(on_progress)
    sel = selectors.DefaultSelector()
    try:
        pidfd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        pidfd = None  # no pidfd (old kernel): notice the exit by polling
    try:
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        for stream, buf in ((proc.stdout, out), (proc.stderr, err)):
            os.set_blocking(stream.fileno(), False)
            sel.register(stream, selectors.EVENT_READ, buf)
        pending = memoryview(document)
        if pending:
            os.set_blocking(proc.stdin.fileno(), False)
            sel.register(proc.stdin, selectors.EVENT_WRITE, "stdin")
        else:
            proc.stdin.close()

        def read(stream: Any, buf: bytearray, chunks: int = 1 << 30) -> bool:
            """Read what is there now (at most `chunks` reads); False at end of file."""
            for _ in range(chunks):
                try:
                    chunk = os.read(stream.fileno(), 65536)
                except BlockingIOError:
                    return True
                if not chunk:
                    sel.unregister(stream)
                    return False
                buf += chunk
                if buf is err:
                    progress(chunk)
                if buf is err and len(err) > _STDERR_KEEP:
                    del err[:-_STDERR_KEEP]  # only the tail is ever shown
                if buf is out and len(out) > limit:
                    return True
            return True

        while True:
            if len(out) > limit:
                return _Captured(bytes(out), bytes(err), None, f"printed more than {_size(limit)} on stdout")
            if proc.poll() is not None:
                # Its own process is done: take what it printed by now, not what a child left running
                # may print later.
                for key in list(sel.get_map().values()):
                    if key.data is out or key.data is err:
                        # Bounded: a background job flooding the pipe must not keep docpipe here.
                        read(key.fileobj, key.data, chunks=(limit >> 16) + 2)
                if len(out) > limit:
                    continue
                return _Captured(bytes(out), bytes(err), proc.returncode)
            left = deadline - time.monotonic()
            if left <= 0:
                return _Captured(bytes(out), bytes(err), None, "timed out")
            for key, _ in sel.select(min(left, 0.05 if pidfd is None else left)):
                if key.data == "stdin":
                    try:
                        pending = pending[os.write(proc.stdin.fileno(), pending[:65536]):]
                    except BrokenPipeError:  # the hook does not read its stdin: its business
                        pending = pending[:0]
                    if not pending:
                        sel.unregister(proc.stdin)
                        proc.stdin.close()
                elif isinstance(key.data, bytearray):
                    read(key.fileobj, key.data)
    finally:
        sel.close()
        if pidfd is not None:
            os.close(pidfd)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


def _size(n: int) -> str:
    return f"{n // (1 << 20)} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


def run_hook(hook: Path, event: str, payload: Mapping[str, Any], *, timeout: float,
             pass_env: Iterable[str] = (), output_limit: int = OUTPUT_LIMIT,
             on_progress: Callable[[str], None] | None = None) -> HookResult:
    name = sanitize(hook.name if hook.parent.name != f"{event}.d" else f"{event}.d/{hook.name}")
    document = json.dumps({"event": event, **payload}, sort_keys=True).encode()
    # A process group of its own, so a timeout kills the hook and everything it started.
    proc = children.popen([str(hook)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=_hook_env(pass_env), new_group=True)
    try:
        got = _capture(proc, document, timeout, output_limit, on_progress)
    except BaseException:
        children.kill_group(proc)
        raise
    if got.returncode is None:
        children.kill_group(proc)
        what = f"timed out after {timeout:g}s" if got.why == "timed out" else got.why
        raise DocpipeError(
            f"hook {name} for event '{event}' {what}: {_tail(got.stderr.decode(errors='replace')) or 'no output'}"
        )
    stdout = got.stdout.decode(errors="replace")
    if got.returncode != 0:
        raise DocpipeError(
            f"hook {name} for event '{event}' failed (exit {got.returncode}): "
            f"{_tail(got.stderr.decode(errors='replace')) or 'no output'}"
        )
    output: Any = None
    if stdout.strip():
        try:
            output = json.loads(stdout)
        except json.JSONDecodeError:
            raise DocpipeError(f"hook {name} for event '{event}' printed something that is not JSON") from None
        if not isinstance(output, dict):
            raise DocpipeError(f"hook {name} for event '{event}' must print one JSON object")
    return HookResult(hook=name, event=event, output=_clean(output))
