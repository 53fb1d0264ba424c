"""README.md tells the truth: its commands parse as docpipe reads them, its config reference is the
schema's, its example hook works, and CI runs the test command it shows. (What each command does
is exercised by the stage's own tests: test_pull, test_replay, test_push, test_render,
test_publish, tests/lab/, test_run, test_demo, test_convert, test_emulator.)"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import typer

from pipeline.cli import app
from pipeline.config_docs import reference_markdown
from pipeline.hooks import HookRunner
from tests.support.pull import cli

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def docpipe_lines() -> list[str]:
    lines = []
    for block in shell_blocks():
        for line in block.splitlines():
            for part in re.split(r"&&|;", line.split("#", 1)[0]):
                part = part.strip()
                if part.startswith("docpipe "):
                    lines.append(part)
    return lines


def test_top_of_readme_has_the_two_commands() -> None:
    blocks = shell_blocks()
    assert blocks[0].strip() == "python3 -m venv .venv && . .venv/bin/activate && pip install -e . && docpipe demo"
    assert "python -m pytest" in blocks[1] and "tests/setup-machine.sh" in blocks[1]


@pytest.mark.parametrize("line", docpipe_lines())
def test_every_docpipe_command_in_the_readme_parses(line: str) -> None:
    args = shlex.split(line)[1:]
    cmd = typer.main.get_command(app)
    ctx = cmd.context_class(cmd, info_name="docpipe")
    # Walk down groups (e.g. `lab up`, `config check`), then let the command parse its options:
    # an unknown option, a missing argument or a bad value raises here as it would for a user.
    while hasattr(cmd, "commands"):
        name = args.pop(0)
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"docpipe has no command {name!r}"
        cmd, ctx = sub, sub.context_class(sub, info_name=name, parent=ctx)
    cmd.parse_args(ctx, args)


def test_readme_lists_every_command_docpipe_has() -> None:
    group = typer.main.get_command(app)
    shown = {shlex.split(line)[1] for line in docpipe_lines()}
    assert set(group.commands) - {"version"} <= shown


def test_config_reference_matches_the_schema() -> None:
    block = README.split("<!-- config-reference -->")[1].split("<!-- /config-reference -->")[0]
    assert block.strip() == reference_markdown().strip()


def test_ci_runs_the_readme_test_command() -> None:
    shown = README.split("<!-- test-command -->")[1].split("<!-- /test-command -->")[0]
    command = [ln for ln in shown.splitlines() if ln.strip() and not ln.startswith("```")]
    extracted = subprocess.run(
        ["bash", "-c", "sed -n '/<!-- test-command -->/,/<!-- \\/test-command -->/p' README.md "
                       "| grep -v -e '<!--' -e '^```' | sed '/^[[:space:]]*$/d'"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert extracted == command[0].strip()
    assert "README" in (ROOT / ".ci" / "run").read_text()


def test_example_hook_from_the_readme_works(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    shutil.copy(ROOT / "hooks" / "examples" / "rendered-announce", hooks / "rendered")
    out = HookRunner(dirs=[hooks]).fire("rendered", {"commit": "abc123", "workdir": str(tmp_path)})
    assert [r.output for r in out] == [{"announced": "abc123"}]
    assert (ROOT / "hooks" / "examples" / "rendered-announce").read_text().split("\n", 1)[1].strip() in README


def test_init_then_config_check_as_the_readme_says(tmp_path: Path) -> None:
    r = cli(["init", str(tmp_path / "docpipe.toml")])
    assert r.returncode == 0, r.stderr
    r = cli(["config", "check", "--config", str(tmp_path / "docpipe.toml")])
    assert r.returncode == 2 and "still the placeholder" in r.stderr  # init's folder id is no folder
    config = tmp_path / "docpipe.toml"
    config.write_text(config.read_text().replace("REPLACE-WITH-FOLDER-ID", "1AbCdEfGhIjKlMnOp"))
    r = cli(["config", "check", "--config", str(config)])
    assert r.returncode == 0, r.stderr
    assert "ok, 1 folder(s)" in r.stdout
    r = cli(["init", str(tmp_path / "docpipe.toml")])
    assert r.returncode == 2 and "already exists" in r.stderr
