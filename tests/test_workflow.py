"""The shipped Gitea Actions workflow: parsed as Gitea would, its steps run (with the runner's
`if:` rules) against the emulator and the Gitea test server with the secrets it names."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
import yaml
from packaging.requirements import Requirement

from tests.support.gitea import assert_clean, clone_main, git_auth_args, start_double
from tests.support.pull import add_doc, new_dataset, running, service_account_file

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".gitea" / "workflows" / "publish.yml"
UPLOAD = "actions/upload-artifact@v4"


def load_workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as True; Gitea and GitHub read it as "on".
    data["on"] = data.pop(True, data.get("on"))
    return data


def steps() -> list[dict[str, Any]]:
    return load_workflow()["jobs"]["publish"]["steps"]


def test_workflow_runs_on_a_schedule_and_on_demand() -> None:
    wf = load_workflow()
    assert set(wf["on"]) == {"schedule", "workflow_dispatch"}
    assert wf["on"]["schedule"][0]["cron"].count(" ") == 4
    assert all(("run" in s) != ("uses" in s) for s in steps())
    # Secrets reach only env blocks, never a command line where logs would show them.
    for step in steps():
        assert "secrets." not in step.get("run", "")


def test_artifact_upload_and_credential_removal_run_whatever_happened() -> None:
    by_name = {s["name"]: s for s in steps()}
    upload = [s for s in steps() if str(s.get("uses", "")).startswith("actions/upload-artifact@")]
    assert [s["uses"] for s in upload] == [UPLOAD]
    assert upload[0].get("if") == "always()"
    removal = by_name["Remove the Google credentials"]
    assert removal.get("if") == "always()" and "google-credentials.json" in removal["run"]
    names = list(by_name)
    assert names.index("Remove the Google credentials") > names.index("Run docpipe")


def test_docpipe_is_installed_from_a_pinned_release() -> None:
    install = next(s for s in steps() if s["name"] == "Install docpipe")
    req = Requirement(str(install["env"]["PINNED"]).replace("${{ github.server_url }}", "https://gitea.example.org"))
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert req.name == "docpipe" and req.url is not None
    assert req.url.startswith("git+https://gitea.example.org/") and req.url.endswith(f"/docpipe@v{version}")
    assert '"${DOCPIPE_PIP_SPEC:-$PINNED}"' in install["run"]


def expand(text: str, context: dict[str, dict[str, str]]) -> str:
    def sub(m: re.Match[str]) -> str:
        scope, name = m.group(1).split(".", 1)
        return context[scope].get(name, "")
    return re.sub(r"\$\{\{\s*([a-z]+\.[A-Za-z0-9_]+)\s*\}\}", sub, text)


@dataclass
class StepRun:
    name: str
    outcome: str  # "success", "failure", "skipped", or "action" (a `uses:` step the runner would start)
    output: str = ""


def run_job(repo_dir: Path, context: dict[str, dict[str, str]], runner_temp: Path) -> list[StepRun]:
    """The job's steps in order, as a runner runs them: `if:` defaults to success(), a failed step
    fails the job and later steps run only when their `if:` says always() or failure()."""
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCPIPE_", "GOOGLE_", "GITEA_"))}
    base_env.update(RUNNER_TEMP=str(runner_temp), CI="true")
    failed = False
    ran: list[StepRun] = []
    for step in steps():
        cond = str(step.get("if", "success()"))
        assert cond in ("success()", "always()", "failure()"), cond
        if not {"success()": not failed, "always()": True, "failure()": failed}[cond]:
            ran.append(StepRun(step["name"], "skipped"))
            continue
        if "uses" in step:
            ran.append(StepRun(step["name"], "action"))  # checkout, cache, artifact: the runner's own
            continue
        env = {**base_env, **{k: expand(str(v), context) for k, v in step.get("env", {}).items()}}
        proc = subprocess.run(["bash", "-e", "-c", expand(step["run"], context)], cwd=repo_dir, env=env,
                              capture_output=True, text=True, timeout=300, check=False)
        ok = proc.returncode == 0
        failed = failed or not ok
        ran.append(StepRun(step["name"], "success" if ok else "failure", proc.stdout + proc.stderr))
    return ran


def _setup(tmp_path: Path, emu: Any, server_url: str, gitea_token: str) -> tuple[Path, Path, dict[str, dict[str, str]]]:
    repo_dir, runner_temp = tmp_path / "checkout", tmp_path / "runner-temp"
    repo_dir.mkdir()
    runner_temp.mkdir()
    key = service_account_file(tmp_path / "key.json", token_uri=f"{emu.url}token")
    (repo_dir / "docpipe.toml").write_text(
        f'[drive]\nfolder = "{emu.root_folder_id}"\nendpoint = "{emu.url}"\n'
        f'[gitea]\nurl = "{server_url}"\nowner = "alice"\nrepo = "workshops"\n'
    )
    context = {
        "secrets": {"GOOGLE_CREDENTIALS_JSON": key.read_text(), "DOCPIPE_GITEA_TOKEN": gitea_token},
        # Installs this checkout (already installed editable here, so it is quick).
        "vars": {"DOCPIPE_PIP_SPEC": f"-e{ROOT}"},
        "runner": {"temp": str(runner_temp)},
        "github": {"run_id": "1", "server_url": server_url},
    }
    return repo_dir, runner_temp, context


def _assert_no_secret(ran: list[StepRun], context: dict[str, dict[str, str]]) -> None:
    private_key = json.loads(context["secrets"]["GOOGLE_CREDENTIALS_JSON"])["private_key"]
    for step in ran:
        assert context["secrets"]["DOCPIPE_GITEA_TOKEN"] not in step.output, step.name
        assert private_key.strip().splitlines()[1] not in step.output, step.name


def test_workflow_steps_publish_the_folder_and_its_site(tmp_path: Path) -> None:
    ds = new_dataset()
    add_doc(ds, "mcp-9-plan", 3, comments=1)
    server, gitea_token = start_double(tmp_path)
    try:
        with running(ds) as emu:
            repo_dir, runner_temp, context = _setup(tmp_path, emu, server.url, gitea_token)
            ran = run_job(repo_dir, context, runner_temp)
        assert [(s.name, s.outcome) for s in ran] == [
            ("Check out the config", "action"),
            ("Restore docpipe's workdir (keeps later runs incremental)", "action"),
            ("Install docpipe", "success"),
            ("Write the Google credentials", "success"),
            ("Run docpipe", "success"),
            ("Publish the site to the repository's site branch", "success"),
            ("Remove the Google credentials", "success"),
            ("Keep the site and the summary", "action"),
        ], [s.output[-2000:] for s in ran if s.outcome == "failure"]
        _assert_no_secret(ran, context)
        summary = json.loads((repo_dir / "docpipe-summary.json").read_text())
        assert summary["ok"] is True
        archive = pygit2.Repository(str(repo_dir / ".docpipe" / "archive"))
        head = str(archive.references["refs/heads/main"].target)
        url = f"{server.url}/alice/workshops.git"
        assert clone_main(url, gitea_token, tmp_path / "clone") == head
        assert (repo_dir / ".docpipe" / "public" / "index.html").is_file()
        assert not (runner_temp / "google-credentials.json").exists()

        # The Gitea repository has the site: a `site` branch holding this run's MkDocs project.
        site_tip = str(archive.references["refs/heads/site"].target)
        pushed = json.loads((repo_dir / "docpipe-push.json").read_text())
        assert pushed["site_after"] == site_tip
        site = tmp_path / "site-clone"
        subprocess.run(["git", *git_auth_args(gitea_token), "clone", "-q", "--branch", "site", url, str(site)],
                       check=True, capture_output=True, timeout=120)
        assert subprocess.run(["git", "-C", str(site), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip() == site_tip
        assert (site / "mkdocs.yml").is_file()
        pages = sorted(p.relative_to(site).as_posix() for p in (site / "docs").rglob("*.md"))
        assert any("mcp-9-plan" in p for p in pages), pages
        assert f"Docpipe-Archive-Commit: {head}" in subprocess.run(
            ["git", "-C", str(site), "log", "-1", "--format=%B"], check=True, capture_output=True, text=True).stdout
        assert_clean(server)
    finally:
        server.stop()


def test_failed_run_still_removes_the_credentials_and_uploads(tmp_path: Path) -> None:
    ds = new_dataset()
    add_doc(ds, "mcp-9-plan", 1)
    server, gitea_token = start_double(tmp_path)
    try:
        with running(ds) as emu:
            repo_dir, runner_temp, context = _setup(tmp_path, emu, server.url, gitea_token)
            context["secrets"]["DOCPIPE_GITEA_TOKEN"] = "0123456789abcdef0123456789abcdef01234567"  # Gitea refuses it
            ran = run_job(repo_dir, context, runner_temp)
        outcome = {s.name: s.outcome for s in ran}
        assert outcome["Run docpipe"] == "failure"
        assert outcome["Publish the site to the repository's site branch"] == "skipped"
        assert outcome["Remove the Google credentials"] == "success"
        assert outcome["Keep the site and the summary"] == "action"
        assert not (runner_temp / "google-credentials.json").exists()
        run_output = next(s.output for s in ran if s.name == "Run docpipe")
        assert "docpipe: error:" in run_output or json.loads((repo_dir / "docpipe-summary.json").read_text())["ok"] is False
        _assert_no_secret(ran, context)
    finally:
        server.stop()
