"""Events and hooks: after each stage docpipe fires a named event; hooks are executables.

A hook is found by its event's name in each hook directory, in order: docpipe's built-ins
(`hooks/`), then `WORKDIR/hooks`, then the directories given by `--hooks`/config. In each
directory `EVENT` runs first, then `EVENT.d/*` in name order. A hook reads one JSON object on
stdin and may print one JSON object on stdout; a non-zero exit or a timeout fails the stage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from pipeline.errors import DocpipeError

EVENTS = ("pulled", "replayed", "pushed", "rendered", "workshop")
DEFAULT_TIMEOUT = 1800.0
# Secrets docpipe itself holds are not handed to hooks unless the operator says so:
# a hook is told what happened, not given the keys.
_SECRET_ENV = ("DOCPIPE_ACCESS_TOKEN", "GITEA_TOKEN", "DOCPIPE_GITEA_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS")
_STDERR_TAIL_LINES = 12


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

    def fire(self, event: str, payload: Mapping[str, Any]) -> list[HookResult]:
        """Run every hook of `event` with `payload`; collect what they print."""
        if not self.enabled:
            return []
        return [run_hook(hook, event, payload, timeout=self.timeout, pass_env=self.pass_env)
                for hook in find_hooks(event, self.dirs)]


def default_dirs(workdir: Path, extra: Iterable[Path] = (), *, builtin: bool = True) -> list[Path]:
    from pipeline.resources import shipped

    dirs: list[Path] = []
    if builtin:
        try:
            dirs.append(shipped("hooks"))
        except FileNotFoundError:
            pass
    dirs.append(workdir / "hooks")
    dirs.extend(Path(p) for p in extra)
    return dirs


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


def _tail(text: str, lines: int = _STDERR_TAIL_LINES) -> str:
    kept = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(kept)


def run_hook(hook: Path, event: str, payload: Mapping[str, Any], *, timeout: float,
             pass_env: Iterable[str] = ()) -> HookResult:
    name = hook.name if hook.parent.name != f"{event}.d" else f"{event}.d/{hook.name}"
    document = json.dumps({"event": event, **payload}, sort_keys=True)
    # Its own session, so a timeout kills the hook and everything it started.
    proc = subprocess.Popen(
        [str(hook)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_hook_env(pass_env), start_new_session=True, text=True,
    )
    try:
        stdout, stderr = proc.communicate(document, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        raise DocpipeError(
            f"hook {name} for event '{event}' timed out after {timeout:g}s: {_tail(stderr) or 'no output'}"
        ) from None
    if proc.returncode != 0:
        raise DocpipeError(
            f"hook {name} for event '{event}' failed (exit {proc.returncode}): {_tail(stderr) or 'no output'}"
        )
    output: Any = None
    if stdout.strip():
        try:
            output = json.loads(stdout)
        except json.JSONDecodeError:
            raise DocpipeError(f"hook {name} for event '{event}' printed something that is not JSON") from None
        if not isinstance(output, dict):
            raise DocpipeError(f"hook {name} for event '{event}' must print one JSON object")
    return HookResult(hook=name, event=event, output=output)
