"""A non-editable install (what `pip install git+https://...` in CI gives) carries the templates,
built-in hooks and sample data, and runs the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_install_runs_the_demo(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = wheels.glob("docpipe-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    assert os.access(target / "pipeline" / "_data" / "hooks" / "workshop", os.X_OK)
    # Only the installed copy is importable as `pipeline` (cwd and PYTHONPATH point away from the checkout).
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    env["PYTHONPATH"] = str(target)
    code = "import pipeline.cli, sys; sys.argv = ['docpipe'] + sys.argv[1:]; pipeline.cli.main()"
    r = subprocess.run([sys.executable, "-c", code, "demo", "--workdir", str(tmp_path / "demo"), "--dry-run-lab", "--json"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["run"]["ok"] and summary["run"]["folders"][0]["workshops"][0]["ok"]
    assert (tmp_path / "demo" / "public" / "index.html").is_file()
    where = subprocess.run([sys.executable, "-c", "import pipeline; print(pipeline.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True).stdout
    assert where.startswith(str(target))
