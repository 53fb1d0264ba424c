from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from pipeline.errors import DocpipeError
from pipeline.hooks import HookRunner, find_hooks


def write_hook(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_hooks_found_in_directory_order_then_d_folder_by_name(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    write_hook(a / "rendered", "true\n")
    write_hook(b / "rendered.d" / "20-second", "true\n")
    write_hook(b / "rendered.d" / "10-first", "true\n")
    (b / "rendered.d" / "30-not-executable").write_text("#!/bin/sh\n")
    write_hook(b / "pulled", "true\n")
    found = find_hooks("rendered", [a, b, tmp_path / "missing"])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/rendered", "b/rendered.d/10-first", "b/rendered.d/20-second",
    ]


def test_hook_gets_event_json_on_stdin_and_its_json_is_collected(tmp_path: Path) -> None:
    # The hook echoes back what it was given, as a real hook would use it.
    write_hook(tmp_path / "workshop", 'python3 -c "import json,sys; d=json.load(sys.stdin); '
               'print(json.dumps({\'saw\': d[\'event\'], \'doc\': d[\'doc\'][\'name\']}))"\n')
    results = HookRunner(dirs=[tmp_path]).fire("workshop", {"workdir": "/w", "doc": {"name": "ws-go"}})
    assert [r.output for r in results] == [{"saw": "workshop", "doc": "ws-go"}]
    assert results[0].to_json() == {"hook": "workshop", "event": "workshop",
                                           "output": {"saw": "workshop", "doc": "ws-go"}}


def test_failing_hook_names_itself_and_shows_stderr_tail(tmp_path: Path) -> None:
    write_hook(tmp_path / "pulled.d" / "10-check", "echo noise >&2\necho 'quota exceeded' >&2\nexit 3\n")
    with pytest.raises(DocpipeError) as err:
        HookRunner(dirs=[tmp_path]).fire("pulled", {})
    msg = err.value.message
    assert "pulled.d/10-check" in msg and "exit 3" in msg and "quota exceeded" in msg
    assert "\n" not in msg


def test_hook_timeout_kills_it(tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    write_hook(tmp_path / "pushed", f"sleep 5; touch {marker}\n")
    with pytest.raises(DocpipeError, match="timed out after 0.5s"):
        HookRunner(dirs=[tmp_path], timeout=0.5).fire("pushed", {})
    assert not marker.exists()


def test_non_json_output_is_an_error(tmp_path: Path) -> None:
    write_hook(tmp_path / "replayed", "echo hello\n")
    with pytest.raises(DocpipeError, match="not JSON"):
        HookRunner(dirs=[tmp_path]).fire("replayed", {})


def test_disabled_runner_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write_hook(tmp_path / "pulled", f"touch {marker}\n")
    assert HookRunner(dirs=[tmp_path], enabled=False).fire("pulled", {}) == []
    assert not marker.exists()


def test_secrets_are_not_passed_to_hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITEA_TOKEN", "s3cret-gitea")
    monkeypatch.setenv("DOCPIPE_ACCESS_TOKEN", "s3cret-drive")
    monkeypatch.setenv("SOME_SETTING", "visible")
    write_hook(tmp_path / "pushed", 'python3 -c "import json,os; print(json.dumps(dict(os.environ)))"\n')
    env = HookRunner(dirs=[tmp_path]).fire("pushed", {})[0].output
    assert env["SOME_SETTING"] == "visible"
    assert "GITEA_TOKEN" not in env and "DOCPIPE_ACCESS_TOKEN" not in env
    assert "s3cret" not in json.dumps(env)


def test_hook_is_done_when_its_own_process_exits(tmp_path: Path) -> None:
    # The background job keeps the hook's stdout and stderr open for 1000 s; docpipe must not wait.
    pidfile = tmp_path / "bg.pid"
    write_hook(tmp_path / "rendered", f"sleep 1000 &\necho $! > {pidfile}\necho '{{\"ok\": 1}}'\n")
    start = time.monotonic()
    results = HookRunner(dirs=[tmp_path], timeout=30).fire("rendered", {})
    assert time.monotonic() - start < 5
    assert [r.output for r in results] == [{"ok": 1}]
    os.kill(int(pidfile.read_text()), signal.SIGKILL)  # the hook's background job is its own business


def test_timeout_kills_the_hooks_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    write_hook(tmp_path / "pulled.d" / "10-slow", f"sleep 1000 &\necho $! > {pidfile}\necho working >&2\nwait\n")
    with pytest.raises(DocpipeError) as err:
        HookRunner(dirs=[tmp_path], timeout=1).fire("pulled", {})
    assert "pulled.d/10-slow" in err.value.message and "timed out after 1s" in err.value.message
    assert "working" in err.value.message
    bg = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(bg) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(bg), "the hook's background job outlived its timeout"


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_control_characters_from_a_hook_never_reach_the_user(tmp_path: Path) -> None:
    write_hook(tmp_path / "pushed.d" / "10-rude",
               r"printf '\033[2Jscreen cleared\r\007 over\tthere\n\033]0;title\007bad\n' >&2; exit 1" "\n")
    with pytest.raises(DocpipeError) as err:
        HookRunner(dirs=[tmp_path]).fire("pushed", {})
    msg = err.value.message
    assert "[2Jscreen cleared over there | ]0;titlebad" in msg
    assert not any(ord(c) < 32 and c != "\t" for c in msg) and "\x7f" not in msg


def test_control_characters_in_a_hooks_json_are_removed(tmp_path: Path) -> None:
    write_hook(tmp_path / "pushed", r"""printf '{"note": "a\\u001b[31mred\\r\\u0007", "ok\\u009b": ["x\\ny\\tz"]}'""" "\n")
    [result] = HookRunner(dirs=[tmp_path]).fire("pushed", {})
    assert result.output == {"note": "a[31mred", "ok": ["x\ny\tz"]}


def test_output_over_the_limit_fails_the_hook(tmp_path: Path) -> None:
    # 2 MiB of JSON, from a hook that would go on printing forever were it not stopped.
    write_hook(tmp_path / "replayed", "python3 -c \"import sys; sys.stdout.write('{\\\"x\\\": \\\"' + 'a' * (2 << 20))\"\nsleep 1000\n")
    start = time.monotonic()
    with pytest.raises(DocpipeError, match=r"hook replayed for event 'replayed' printed more than 1 MiB on stdout"):
        HookRunner(dirs=[tmp_path], timeout=60).fire("replayed", {})
    assert time.monotonic() - start < 10


def test_a_hook_that_ignores_a_large_event_still_runs(tmp_path: Path) -> None:
    # The event is bigger than a pipe's buffer and the hook never reads it: no deadlock.
    write_hook(tmp_path / "rendered", "echo '{}'\n")
    [result] = HookRunner(dirs=[tmp_path], timeout=30).fire("rendered", {"big": "x" * (1 << 20)})
    assert result.output == {}


def test_a_background_job_flooding_stderr_does_not_hold_docpipe(tmp_path: Path) -> None:
    pidfile = tmp_path / "bg.pid"
    write_hook(tmp_path / "rendered", f"yes flood >&2 &\necho $! > {pidfile}\necho '{{}}'\n")
    start = time.monotonic()
    try:
        [result] = HookRunner(dirs=[tmp_path], timeout=30).fire("rendered", {})
        assert result.output == {} and time.monotonic() - start < 5
    finally:
        with contextlib.suppress(ProcessLookupError):  # `yes` may have died of the closed pipe
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_progress_lines_are_shown_as_they_come_and_sanitized(tmp_path: Path) -> None:
    """A long hook (an image build) says what it does: its `progress: ` lines reach the user while
    it runs, control characters removed; its other stderr stays in the failure tail only."""
    write_hook(tmp_path / "workshop", "echo 'progress: step 1/2' >&2\necho 'chatter' >&2\n"
               "sleep 1\nprintf 'progress: \\033[2Jstep 2/2\\n' >&2\necho '{}'\n")
    seen: list[tuple[float, str]] = []
    start = time.monotonic()
    HookRunner(dirs=[tmp_path], on_progress=lambda line: seen.append((time.monotonic() - start, line))).fire(
        "workshop", {})
    assert [line for _, line in seen] == ["step 1/2", "[2Jstep 2/2"]
    # Shown as they come: the first line arrived a second before the hook's last, not with it at exit.
    assert seen[1][0] - seen[0][0] > 0.5
