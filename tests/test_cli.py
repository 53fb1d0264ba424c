"""The command line as a user meets it: help, exit statuses, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.pull import cli


def test_no_arguments_prints_help_and_exits_0_quietly() -> None:
    r = cli([])
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("Usage: ") and "Exit status:" in r.stdout and "replay" in r.stdout


@pytest.mark.parametrize("command", ["pull", "replay", "push", "render", "publish", "provision", "run"])
def test_every_workdir_command_takes_workdir_and_config_and_shows_defaults(command: str) -> None:
    r = cli([command, "--help"])
    assert r.returncode == 0, r.stderr
    assert "--workdir" in r.stdout and "--config" in r.stdout and "DOCPIPE_WORKDIR" in r.stdout
    assert "default: .docpipe" in r.stdout and "<bool>" not in r.stdout


def test_pull_help_names_the_canonical_environment_variables() -> None:
    out = cli(["pull", "--help"]).stdout
    assert "DOCPIPE_DRIVE_FOLDER, DOCPIPE_FOLDER" in out and "default: 8" in out


def test_an_unexpected_error_exits_3_with_one_line_naming_the_log(tmp_path: Path) -> None:
    # A bug stand-in: the stage table is patched in the child so the stage raises a plain error.
    code = ("import sys; from pipeline import stages\n"
            "def boom(f, o, h): raise ZeroDivisionError('division by zero')\n"
            "stages.STAGES['replay'] = stages.Stage('replay', 'replayed', boom)\n"
            "from pipeline.cli import main; sys.argv = ['docpipe', 'replay', '--workdir', sys.argv[1]]; main()\n")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "wd")], capture_output=True, text=True,
                       env={"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache")})
    log = tmp_path / "cache" / "docpipe" / "docpipe.log"
    assert r.returncode == 3
    assert r.stderr == f"docpipe: error: unexpected ZeroDivisionError: division by zero; the traceback is in {log}\n"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in boom" in text


@pytest.mark.parametrize("flag", ["--version", "-V", "version"])
def test_version_comes_from_the_package_metadata(flag: str) -> None:
    import tomllib
    from importlib.metadata import version

    declared = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]["version"]
    r = cli([flag])
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout == f"docpipe {declared}\n" and version("docpipe") == declared
