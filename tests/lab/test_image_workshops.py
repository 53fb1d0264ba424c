"""One answer to "which docs are workshops": the archive's manifest, then the Lab desktop heading."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pygit2

from pipeline.lab.image.workshops import find_workshops
from tests.support.docker_env import make_archive

WS = "---\ntitle: Go\nname: ws-go\ndrive_id: 1WsDoc\n---\n\n# Lab desktop\n\nbase: debian-xfce\n"
STRAY = "---\ntitle: Stray\nname: stray\n---\n\n# Lab desktop\n\nbase: debian-xfce\n"


def test_only_docs_the_manifest_names_are_workshops(tmp_path: Path) -> None:
    make_archive(tmp_path, {"w/ws-go.md": WS, "notes/plain.md": "---\ntitle: Plain\n---\n\nno lab\n"})
    repo = pygit2.Repository(str(tmp_path / "archive"))
    tip = repo.references["refs/heads/main"].peel(pygit2.Commit)
    # A Markdown file replay did not write (no manifest entry) is not a workshop.
    builder = repo.TreeBuilder(tip.tree)
    builder.insert("stray.md", repo.create_blob(STRAY.encode()), pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature("x", "x@example.org", 1_700_000_100, 0)
    repo.create_commit("refs/heads/main", sig, sig, "stray", builder.write(), [tip.id])
    tip = repo.references["refs/heads/main"].peel(pygit2.Commit)
    found = find_workshops(repo, tip)
    assert [(w.name, w.path, w.doc_id, w.error) for w in found] == [("ws-go", "w/ws-go.md", "1WsDoc", None)]
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "provision", "--workdir", str(tmp_path),
                          "--dry-run", "--json"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "DOCKER_HOST": "unix:///nonexistent.sock"})
    assert out.returncode == 0, out.stderr
    assert [w["workshop"] for w in json.loads(out.stdout)["workshops"]] == ["ws-go"]
