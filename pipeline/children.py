"""The one way docpipe starts child processes, so that they die with docpipe.

A child started here gets a parent-death signal (Linux `PR_SET_PDEATHSIG`, SIGKILL): when
docpipe is killed, even with SIGKILL, the kernel kills the child too instead of re-parenting it
to init. With `new_group=True` it also leads a process group of its own, so `kill_group` can
take down everything it started (a hook's background jobs, say) at a timeout.

The signal fires when the *thread* that started the child ends, so start children from a thread
that outlives them (docpipe starts them from the main thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

Args = Sequence[str | os.PathLike[str]]


def _die_with(parent: int) -> Callable[[], None]:
    # Looked up in the parent: the child, between fork and exec, only makes the call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # The parent may have died before prctl took effect: then nobody would ever signal us.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def die_with_parent(parent: int | None = None) -> None:
    """Make the calling process die (SIGKILL) when its parent does: for processes docpipe forks
    without exec, e.g. `ProcessPoolExecutor(initializer=children.die_with_parent,
    initargs=(os.getpid(),))`; with `parent` given, a parent already gone is noticed too."""
    _die_with(os.getppid() if parent is None else parent)()


def popen(args: Args, *, new_group: bool = False, **kwargs: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen` whose child dies with docpipe; `new_group` makes it a process group leader."""
    if "preexec_fn" in kwargs or "start_new_session" in kwargs or "process_group" in kwargs:
        raise TypeError("children.popen sets preexec_fn and the process group itself")
    if new_group:
        kwargs["process_group"] = 0
    return subprocess.Popen(args, preexec_fn=_die_with(os.getpid()), **kwargs)


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group `proc` leads (started with `new_group=True`), then reap `proc`."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the whole group is gone already
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    proc.wait()


def _stop(proc: subprocess.Popen[Any], group: bool) -> None:
    if group:
        kill_group(proc)
    else:
        proc.kill()
        proc.wait()


def run(args: Args, *, input: str | bytes | None = None, timeout: float | None = None,
        check: bool = False, new_group: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run` whose child dies with docpipe; at `timeout` its whole group is killed."""
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with popen(args, new_group=new_group, **kwargs) as proc:
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            _stop(proc, new_group)
            exc.stdout, exc.stderr = proc.communicate()
            raise
        except BaseException:
            # Interrupted (Ctrl-C, an error): the child must not outlive this call.
            _stop(proc, new_group)
            raise
        retcode = proc.poll()
        assert retcode is not None
    if check and retcode:
        raise subprocess.CalledProcessError(retcode, proc.args, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(proc.args, retcode, stdout, stderr)
