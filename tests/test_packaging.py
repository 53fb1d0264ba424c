"""docpipe installed as its users install it: a wheel (pip or pipx) or the publish workflow's
`pip install "docpipe @ git+<server>/cswg/docpipe@<tag>"`, each into a fresh virtual environment
with its own interpreter, run from outside the source tree.

Inside the test venv the editable install's import finder serves any module from the checkout,
so a package missing from the wheel only shows in an environment of its own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.support.pull import demo_port

ROOT = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
WORKFLOW = ROOT / ".gitea" / "workflows" / "publish.yml"


def _env() -> dict[str, str]:
    """The user's environment, without the test venv or any docpipe setting leaking in."""
    venv = os.environ.get("VIRTUAL_ENV", "")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if not (venv and p.startswith(venv)))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DOCPIPE_", "PYTHON", "VIRTUAL_ENV", "GITEA_", "GOOGLE_"))}
    return {**env, "PATH": path}


def _run(argv: list[str | Path], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([str(a) for a in argv], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{' '.join(map(str, argv))} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def _fresh_venv(where: Path) -> Path:
    # The interpreter the test venv was made from: a venv of its own, no editable finder in it.
    base = getattr(sys, "_base_executable", sys.executable)
    _run([base, "-m", "venv", where], cwd=where.parent)
    # A current pip, as CI runners have: the one bundled with an older Python (23.2) refuses
    # `git+file:///...` requirements (its URL check wants a host).
    _run([where / "bin" / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip"], cwd=where.parent)
    return where / "bin"


def _demo_twice(bin_dir: Path, tmp_path: Path) -> None:
    """What a new user does: --version, then the demo, twice in the same workdir."""
    away = tmp_path / "elsewhere"  # not the checkout: nothing importable from the cwd
    away.mkdir()
    assert _run([bin_dir / "docpipe", "--version"], away).stdout == f"docpipe {VERSION}\n"
    where = _run([bin_dir / "python", "-c", "import pipeline; print(pipeline.__file__)"], away).stdout.strip()
    assert Path(where).resolve().is_relative_to(bin_dir.parent.resolve()), where
    workdir = away / "demo"
    for attempt in (1, 2):
        with demo_port():
            out = _run([bin_dir / "docpipe", "demo", "--workdir", workdir, "--dry-run-lab", "--json"], away).stdout
        summary = json.loads(out)
        assert summary["run"]["ok"], (attempt, summary)
        assert summary["docpipe_version"] == VERSION
        assert summary["run"]["folders"][0]["workshops"][0]["ok"]
    assert (workdir / "public" / "index.html").is_file()
    assert os.access(Path(where).parent / "_data" / "hooks" / "examples" / "rendered-announce", os.X_OK)


def _tracked_files() -> list[str]:
    """The checkout's files as a clean clone of it would have them (tracked and new, not ignored)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return sorted(f for f in out.split("\0") if f and (ROOT / f).is_file())


def test_the_wheel_and_sdist_hold_every_module_and_the_wheel_runs_the_demo(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--outdir", dist, ROOT], cwd=tmp_path)
    (wheel,) = dist.glob(f"docpipe-{VERSION}-*.whl")
    (sdist,) = dist.glob(f"docpipe-{VERSION}.tar.gz")

    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    modules = [f for f in _tracked_files() if f.startswith("pipeline/") and f.endswith(".py")]
    assert modules and [m for m in modules if m not in in_wheel] == []
    shipped = {"templates": "pipeline/_data/templates", "hooks": "pipeline/_data/hooks",
               "sample-data": "pipeline/_data/sample_data"}
    for folder, packaged in shipped.items():
        files = [f for f in _tracked_files() if f.startswith(folder + "/")]
        assert files and [f for f in files if packaged + f[len(folder):] not in in_wheel] == []
    with tarfile.open(sdist) as tar:
        in_sdist = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "pyproject.toml", "hooks/examples/rendered-announce", "templates/mkdocs.yml.j2"} <= in_sdist

    bin_dir = _fresh_venv(tmp_path / "venv")
    _run([bin_dir / "python", "-m", "pip", "install", "--quiet", wheel], tmp_path)
    _demo_twice(bin_dir, tmp_path)


def _workflow_install_spec() -> tuple[str, str]:
    """(pip requirement template, tag) from the workflow's install step, as CI runs it."""
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["publish"]["steps"]
    (install,) = [s for s in steps if s.get("name") == "Install docpipe"]
    pinned = install["env"]["PINNED"]
    assert '"${DOCPIPE_PIP_SPEC:-$PINNED}"' in install["run"]
    m = re.fullmatch(r"docpipe @ git\+\$\{\{ github\.server_url \}\}/cswg/docpipe@(\S+)", pinned)
    assert m, pinned
    return pinned, m.group(1)


def test_the_publish_workflows_install_line_installs_a_docpipe_that_runs_the_demo(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is needed to serve a repository to pip")
    pinned, tag = _workflow_install_spec()
    # A repository standing in for cswg/docpipe on the Gitea server: this checkout, tagged as the workflow pins it.
    server = tmp_path / "server"
    repo = server / "cswg" / "docpipe"
    repo.mkdir(parents=True)
    for f in _tracked_files():
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, repo / f)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "-c", "init.defaultBranch=main"]
    _run([*git, "init", "-q"], repo)
    _run([*git, "add", "-A"], repo)
    _run([*git, "commit", "-q", "-m", "release"], repo)
    _run([*git, "tag", tag], repo)

    spec = pinned.replace("${{ github.server_url }}", server.as_uri())
    bin_dir = _fresh_venv(tmp_path / "venv")
    _run([bin_dir / "python", "-m", "pip", "install", "--quiet", spec], tmp_path)
    _demo_twice(bin_dir, tmp_path)
