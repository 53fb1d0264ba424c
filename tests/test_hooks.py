from __future__ import annotations

import json
import stat
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
