"""The shipped Gitea Actions workflow: parsed as Gitea would, its steps run against the emulator
and the Gitea test server with the secrets it names."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pygit2
import yaml

from tests.support.gitea import assert_clean, clone_main, start_double
from tests.support.pull import add_doc, new_dataset, running, service_account_file

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".gitea" / "workflows" / "publish.yml"


def load_workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True; Gitea and GitHub read it as "on".
    data["on"] = data.pop(True, data.get("on"))
    return data


def test_workflow_runs_on_a_schedule_and_on_demand() -> None:
    wf = load_workflow()
    assert set(wf["on"]) == {"schedule", "workflow_dispatch"}
    assert wf["on"]["schedule"][0]["cron"].count(" ") == 4
    steps = wf["jobs"]["publish"]["steps"]
    assert all(("run" in s) != ("uses" in s) for s in steps)
    # Secrets reach only env blocks, never a command line where logs would show them.
    for step in steps:
        assert "secrets." not in step.get("run", "")


def expand(text: str, context: dict[str, dict[str, str]]) -> str:
    def sub(m: re.Match[str]) -> str:
        scope, name = m.group(1).split(".", 1)
        return context[scope].get(name, "")
    return re.sub(r"\$\{\{\s*([a-z]+\.[A-Za-z0-9_]+)\s*\}\}", sub, text)


def test_workflow_steps_publish_the_folder(tmp_path: Path) -> None:
    ds = new_dataset()
    add_doc(ds, "mcp-9-plan", 3, comments=1)
    server, gitea_token = start_double(tmp_path)
    repo_dir = tmp_path / "checkout"
    runner_temp = tmp_path / "runner-temp"
    repo_dir.mkdir()
    runner_temp.mkdir()
    try:
        with running(ds) as emu:
            key = service_account_file(tmp_path / "key.json", token_uri=f"{emu.url}token")
            (repo_dir / "docpipe.toml").write_text(
                f'[drive]\nfolder = "{emu.root_folder_id}"\nendpoint = "{emu.url}"\n'
                f'[gitea]\nurl = "{server.url}"\nowner = "alice"\nrepo = "workshops"\n'
            )
            context = {
                "secrets": {"GOOGLE_CREDENTIALS_JSON": key.read_text(), "DOCPIPE_GITEA_TOKEN": gitea_token},
                # Installs this checkout (already installed editable here, so it is quick).
                "vars": {"DOCPIPE_PIP_SPEC": f"-e{ROOT}"},
                "runner": {"temp": str(runner_temp)},
                "github": {"run_id": "1"},
            }
            base_env = {k: v for k, v in os.environ.items()
                        if not k.startswith(("DOCPIPE_", "GOOGLE_", "GITEA_"))}
            base_env.update(RUNNER_TEMP=str(runner_temp), CI="true")
            ran = []
            for step in load_workflow()["jobs"]["publish"]["steps"]:
                if "uses" in step:
                    continue  # checkout, cache and artifact upload are the runner's own actions
                env = {**base_env, **{k: expand(str(v), context) for k, v in step.get("env", {}).items()}}
                proc = subprocess.run(["bash", "-e", "-c", expand(step["run"], context)], cwd=repo_dir, env=env,
                                      capture_output=True, text=True, timeout=300)
                assert proc.returncode == 0, f"step {step['name']!r} failed: {proc.stderr}"
                assert gitea_token not in proc.stdout + proc.stderr
                ran.append(step["name"])
            assert ran == ["Install docpipe", "Write the Google credentials", "Run docpipe"]
        summary = json.loads((repo_dir / "docpipe-summary.json").read_text())
        assert summary["ok"] is True
        archive = pygit2.Repository(str(repo_dir / ".docpipe" / "archive"))
        head = str(archive.references["refs/heads/main"].target)
        assert clone_main(f"{server.url}/alice/workshops.git", gitea_token, tmp_path / "clone") == head
        assert (repo_dir / ".docpipe" / "public" / "index.html").is_file()
        assert not (runner_temp / "google-credentials.json").exists()
        assert_clean(server)
    finally:
        server.stop()
