"""Fixtures for the Gitea side: the test server (or a real Gitea), and archives made with pygit2."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
import pytest

from tests.gitea_server import GiteaServer

FOLDER_LINK = "https://drive.google.com/drive/folders/1AbCdEfGhIjK"


@dataclass
class Target:
    """A Gitea to push to: the test double (server set) or a real one (server None)."""

    url: str
    token: str
    owner: str
    server: GiteaServer | None
    made: list[tuple[str, str]] = field(default_factory=list)  # repos to delete on a real Gitea

    def repo_name(self, base: str) -> str:
        name = f"{base}-{uuid.uuid4().hex[:8]}"
        self.made.append((self.owner, name))
        return name

    def api(self, path: str) -> dict:
        import requests

        resp = requests.get(f"{self.url}/api/v1{path}", headers={"Authorization": f"token {self.token}"}, timeout=30)
        resp.raise_for_status()
        return resp.json()


def start_double(tmp_path: Path) -> tuple[GiteaServer, str]:
    server = GiteaServer(tmp_path / "gitea").start()
    return server, server.add_user("alice", full_name="Alice Example")


def assert_clean(server: GiteaServer | None) -> None:
    """The client sent only spec-valid requests and the server answered only in the spec's shapes."""
    if server is None:
        return
    assert server.invalid == [], server.invalid
    assert server.unimplemented == [], server.unimplemented
    assert server.response_errors == [], server.response_errors


def _double(tmp_path: Path) -> Iterator[Target]:
    server, token = start_double(tmp_path)
    try:
        yield Target(server.url, token, "alice", server)
        assert_clean(server)
    finally:
        server.stop()


@pytest.fixture
def gitea_double(tmp_path: Path) -> Iterator[Target]:
    yield from _double(tmp_path)


@pytest.fixture(params=["double", "real"])
def gitea_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """The test double, and a real Gitea when DOCPIPE_TEST_GITEA_URL/_TOKEN are set."""
    if request.param == "double":
        yield from _double(tmp_path)
        return
    url, token = os.environ.get("DOCPIPE_TEST_GITEA_URL"), os.environ.get("DOCPIPE_TEST_GITEA_TOKEN")
    if not (url and token):
        pytest.skip("set DOCPIPE_TEST_GITEA_URL and DOCPIPE_TEST_GITEA_TOKEN to run against a real Gitea")
    from pipeline.gitea import GiteaClient

    client = GiteaClient(url, token)
    target = Target(client.base_url, token, client.current_user()["login"], None)
    try:
        yield target
    finally:
        for owner, name in target.made:
            client.delete_repo(owner, name)


# ---------------------------------------------------------------- archives
_SIG_TIME = 1_700_000_000


def _sig(n: int) -> pygit2.Signature:
    return pygit2.Signature("Ada Author", "ada@example.org", _SIG_TIME + n * 60, 0)


def make_archive(workdir: Path, *, folder: str = "CSWG Design Docs", link: str = FOLDER_LINK,
                 commits: int = 2, bare: bool = False, manifest: bool = True) -> list[str]:
    """WORKDIR/archive with `commits` commits on main (Contract 2 layout, small); returns their SHAs."""
    path = workdir / "archive"
    pygit2.init_repository(str(path), bare=bare, initial_head="main")
    manifest_text = None
    if manifest:
        doc = {"folder": {"id": "1AbCdEfGhIjK", "name": folder, "webViewLink": link},
               "docs": {"f1": {"path": "design.md", "comments": None, "title": "Design", "webViewLink": ""}}}
        manifest_text = json.dumps(doc, sort_keys=True, indent=1) + "\n"
    return [add_commit(workdir, f"revision {i + 1}", manifest_text=manifest_text) for i in range(commits)]


def add_commit(workdir: Path, text: str, *, manifest_text: str | None = None) -> str:
    """One more commit on the archive's main changing design.md; returns its SHA."""
    repo = pygit2.Repository(str(workdir / "archive"))
    ref = repo.references.get("refs/heads/main")
    parent = repo[ref.target] if ref else None
    builder = repo.TreeBuilder(parent.tree) if parent else repo.TreeBuilder()
    builder.insert("design.md", repo.create_blob(f"---\ntitle: Design\n---\n\n{text}\n"), pygit2.enums.FileMode.BLOB)
    if manifest_text is not None:
        meta = repo.TreeBuilder()
        meta.insert("manifest.json", repo.create_blob(manifest_text), pygit2.enums.FileMode.BLOB)
        builder.insert(".docpipe", meta.write(), pygit2.enums.FileMode.TREE)
    n = len(list(repo.walk(parent.id))) if parent else 0
    sig = _sig(n)
    oid = repo.create_commit("refs/heads/main", sig, sig, f"{text}\n\nDrive-File-Id: f1\nDrive-Revision-Id: {n + 1}\n",
                             builder.write(), [parent.id] if parent else [])
    return str(oid)


def git_auth_args(token: str) -> list[str]:
    """`git -c` arguments sending the token as basic auth for one command (nothing written to config)."""
    cred = base64.b64encode(f"docpipe:{token}".encode()).decode()
    return ["-c", f"http.extraHeader=Authorization: Basic {cred}"]


def clone_main(url: str, token: str, dest: Path) -> str:
    """`git clone` the repository and return its main SHA (what a user would check)."""
    subprocess.run(["git", *git_auth_args(token), "clone", "-q", "--branch", "main", url, str(dest)],
                   check=True, capture_output=True, timeout=120)
    return subprocess.run(["git", "-C", str(dest), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()
