"""docpipe push: against the spec-checking Gitea test server, and a real Gitea when one is given."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pygit2
import pytest

from pipeline import USER_AGENT, __version__
from pipeline.errors import BadInput, DocpipeError
from pipeline.push import push
from tests.support.gitea import (
    FOLDER_LINK,
    Target,
    add_commit,
    clone_main,
    git_auth_args,
    gitea_double,
    gitea_target,
    make_archive,
)


def run_cli(tmp_path: Path, token: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCPIPE_", "GITEA_"))}
    if token is not None:
        env["GITEA_TOKEN"] = token
    return subprocess.run(["docpipe", "push", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def cli_push(tmp_path: Path, target: Target, workdir: Path, *extra: str, token: str | None = None,
             owner: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(tmp_path, token or target.token, "--gitea", target.url, "--owner", owner or target.owner,
                   "--workdir", str(workdir), "--json", *extra)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("docpipe: error: ") and "Traceback" not in proc.stderr
    return lines[0]


# ---------------------------------------------------------------- the main path


def test_create_push_and_clone_gives_the_same_main(tmp_path: Path, gitea_target: Target) -> None:
    wd = tmp_path / "wd"
    shas = make_archive(wd, folder="CSWG Design Docs")
    name = gitea_target.repo_name("cswg-design-docs")
    proc = cli_push(tmp_path, gitea_target, wd, "--repo", name)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["created"] is True and summary["after"] == shas[-1] and summary["before"] is None
    assert summary["private"] is True

    assert clone_main(f"{gitea_target.url}/{gitea_target.owner}/{name}.git", gitea_target.token,
                      tmp_path / "clone") == shas[-1]
    info = gitea_target.api(f"/repos/{gitea_target.owner}/{name}")
    assert info["private"] is True and info["empty"] is False
    assert "CSWG Design Docs" in info["description"]
    assert info["website"] == FOLDER_LINK
    assert gitea_target.api(f"/repos/{gitea_target.owner}/{name}/topics")["topics"] == ["docpipe", "google-docs"]


def test_default_repo_name_is_the_folder_slug_and_public_works(tmp_path: Path, gitea_double: Target) -> None:
    make_archive(tmp_path / "wd", folder="Ünïcode / Design: Docs!")
    proc = cli_push(tmp_path, gitea_double, tmp_path / "wd", "--public")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["repo"] == "unicode-design-docs" and summary["private"] is False
    # A public repository clones without credentials.
    subprocess.run(["git", "clone", "-q", f"{gitea_double.url}/alice/unicode-design-docs.git",
                    str(tmp_path / "anon")], check=True, capture_output=True, timeout=60)


def test_second_push_fast_forwards_and_third_is_a_no_op(tmp_path: Path, gitea_target: Target) -> None:
    wd = tmp_path / "wd"
    first = make_archive(wd)[-1]
    name = gitea_target.repo_name("ff")
    assert cli_push(tmp_path, gitea_target, wd, "--repo", name).returncode == 0
    new = [add_commit(wd, "revision 3"), add_commit(wd, "revision 4")][-1]
    proc = cli_push(tmp_path, gitea_target, wd, "--repo", name)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["created"], summary["before"], summary["after"], summary["forced"]) == (False, first, new, False)
    assert clone_main(f"{gitea_target.url}/{gitea_target.owner}/{name}.git", gitea_target.token,
                      tmp_path / "clone") == new
    again = json.loads(cli_push(tmp_path, gitea_target, wd, "--repo", name).stdout)
    assert again["up_to_date"] is True and again["after"] == new


def test_existing_repository_is_used_as_is(tmp_path: Path, gitea_target: Target) -> None:
    from pipeline.gitea import GiteaClient, Owner

    name = gitea_target.repo_name("existing")
    client = GiteaClient(gitea_target.url, gitea_target.token)
    client.create_repo(Owner(gitea_target.owner, "self"),
                       {"name": name, "private": False, "description": "kept by hand", "auto_init": False})
    wd = tmp_path / "wd"
    head = make_archive(wd)[-1]
    server = gitea_target.server
    seen = len(server.requests) if server else 0
    proc = cli_push(tmp_path, gitea_target, wd, "--repo", name, "--private")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["created"] is False
    info = gitea_target.api(f"/repos/{gitea_target.owner}/{name}")
    # Description, visibility and topics stay as the owner set them.
    assert info["description"] == "kept by hand" and info["private"] is False and info["website"] == ""
    assert gitea_target.api(f"/repos/{gitea_target.owner}/{name}/topics")["topics"] == []
    if server:
        api_writes = [r for r in server.requests[seen:] if r.kind == "api" and r.method != "GET"]
        assert api_writes == []
    assert clone_main(f"{gitea_target.url}/{gitea_target.owner}/{name}.git", gitea_target.token,
                      tmp_path / "clone") == head


def test_diverged_remote_is_refused_and_force_overwrites(tmp_path: Path, gitea_target: Target) -> None:
    name = gitea_target.repo_name("diverged")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    base = make_archive(ours, commits=1)[0]
    assert cli_push(tmp_path, gitea_target, ours, "--repo", name).returncode == 0
    # Someone else pushes a commit on top of the same base.
    make_archive(theirs, commits=1)
    their_tip = add_commit(theirs, "someone else's edit")
    assert cli_push(tmp_path, gitea_target, theirs, "--repo", name).returncode == 0
    our_tip = add_commit(ours, "our next revision")
    url = f"{gitea_target.url}/{gitea_target.owner}/{name}.git"

    proc = cli_push(tmp_path, gitea_target, ours, "--repo", name)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "refusing to push" in line and "--force" in line
    assert clone_main(url, gitea_target.token, tmp_path / "c1") == their_tip

    proc = cli_push(tmp_path, gitea_target, ours, "--repo", name, "--force")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["forced"] is True and summary["before"] == their_tip and base != our_tip
    assert clone_main(url, gitea_target.token, tmp_path / "c2") == our_tip


def test_bare_archive_pushes_too(tmp_path: Path, gitea_double: Target) -> None:
    head = make_archive(tmp_path / "wd", bare=True)[-1]
    summary = push(tmp_path / "wd", gitea_url=gitea_double.url, owner="alice", repo="bare", token=gitea_double.token)
    assert summary.after == head and gitea_double.server.main_sha("alice", "bare") == head


# ---------------------------------------------------------------- owners


def test_organisation_owner_gets_the_org_endpoint(tmp_path: Path, gitea_double: Target) -> None:
    server = gitea_double.server
    server.add_org("CSWG", members={"alice": "writer"})
    head = make_archive(tmp_path / "wd")[-1]
    proc = cli_push(tmp_path, gitea_double, tmp_path / "wd", owner="cswg")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["owner"] == "CSWG"
    assert any(r.method == "POST" and r.path.lower() == "/api/v1/orgs/cswg/repos" for r in server.requests)
    assert server.main_sha("CSWG", "cswg-design-docs") == head


def test_admin_creates_for_another_user_and_non_admin_cannot(tmp_path: Path, gitea_double: Target) -> None:
    server = gitea_double.server
    server.add_user("bob")
    admin = server.add_user("root", admin=True)
    make_archive(tmp_path / "wd")
    proc = cli_push(tmp_path, gitea_double, tmp_path / "wd", token=admin, owner="bob")
    assert proc.returncode == 0, proc.stderr
    assert any(r.path == "/api/v1/admin/users/bob/repos" for r in server.requests)
    # alice is no admin: refused before any POST.
    posts = len([r for r in server.requests if r.method == "POST"])
    proc = cli_push(tmp_path, gitea_double, tmp_path / "wd", "--repo", "other", owner="bob")
    assert proc.returncode == 2 and "403" in one_line_error(proc)
    assert len([r for r in server.requests if r.method == "POST"]) == posts


# ---------------------------------------------------------------- errors and secrets


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_one_line_exit_1(tmp_path: Path) -> None:
    make_archive(tmp_path / "wd")
    token = "0123456789abcdef0123456789abcdef01234567"
    proc = run_cli(tmp_path, token, "--gitea", f"http://127.0.0.1:{_closed_port()}", "--owner", "alice",
                   "--workdir", str(tmp_path / "wd"))
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "cannot reach Gitea" in line and token not in proc.stderr + proc.stdout


@pytest.mark.parametrize("case", ["401", "404", "422"])
def test_api_errors_are_one_line(tmp_path: Path, gitea_target: Target, case: str) -> None:
    make_archive(tmp_path / "wd")
    args, token, owner = [], gitea_target.token, None
    if case == "401":
        token = "f" * 40
    elif case == "404":
        owner = "no-such-owner-" + os.urandom(4).hex()
    else:
        args = ["--repo", "bad name!"]
    proc = cli_push(tmp_path, gitea_target, tmp_path / "wd", *args, token=token, owner=owner)
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert case in line
    assert {"401": "token", "404": "no user or organisation", "422": "rejected"}[case] in line
    assert token not in proc.stdout + proc.stderr


def test_403_no_permission_to_create_in_org(tmp_path: Path, gitea_double: Target) -> None:
    gitea_double.server.add_org("wg", members={"alice": "reader"})
    make_archive(tmp_path / "wd")
    proc = cli_push(tmp_path, gitea_double, tmp_path / "wd", owner="wg")
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "403" in line and "not allowed to create repository" in line


def test_403_read_only_collaborator_cannot_push(tmp_path: Path, gitea_double: Target) -> None:
    server = gitea_double.server
    server.add_user("carol")
    server.add_repo("carol", "docs", private=False, collaborators={"alice": "read"})
    make_archive(tmp_path / "wd")
    proc = cli_push(tmp_path, gitea_double, tmp_path / "wd", "--repo", "docs", owner="carol")
    assert proc.returncode == 2 and "403" in one_line_error(proc)
    assert server.main_sha("carol", "docs") is None


def test_git_level_403_is_one_line(tmp_path: Path, gitea_double: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    """The API says push is allowed but git over HTTP refuses: still a clear one-line error."""
    server = gitea_double.server
    server.add_user("dave")
    server.add_repo("dave", "docs", private=False, collaborators={"alice": "read"})
    from pipeline import gitea as gitea_mod

    real = gitea_mod.GiteaClient.get_repo

    def lying(self, owner, repo):  # type: ignore[no-untyped-def]
        info = real(self, owner, repo)
        info["permissions"]["push"] = True
        return info

    monkeypatch.setattr(gitea_mod.GiteaClient, "get_repo", lying)
    make_archive(tmp_path / "wd")
    with pytest.raises(BadInput, match="403"):
        push(tmp_path / "wd", gitea_url=gitea_double.url, owner="dave", repo="docs", token=gitea_double.token)


def test_token_never_lands_in_config_output_or_requests(tmp_path: Path, gitea_double: Target) -> None:
    wd = tmp_path / "wd"
    make_archive(wd)
    proc = cli_push(tmp_path, gitea_double, wd)
    assert proc.returncode == 0, proc.stderr
    token = gitea_double.token
    assert token not in proc.stdout + proc.stderr
    config = (wd / "archive" / ".git" / "config").read_text()
    assert token not in config and "remote" not in config
    for path in (wd / "archive").rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path
    for rec in gitea_double.server.requests:
        assert token not in rec.path + rec.query


def test_retries_5xx_on_idempotent_calls(tmp_path: Path, gitea_double: Target) -> None:
    gitea_double.server.fail_next.extend([502, 503])
    head = make_archive(tmp_path / "wd")[-1]
    summary = push(tmp_path / "wd", gitea_url=gitea_double.url, owner="alice", repo=None, token=gitea_double.token)
    assert summary.after == head and summary.created


def test_create_is_never_retried(tmp_path: Path, gitea_double: Target) -> None:
    server = gitea_double.server
    server.fail_next.extend([0, 0, 502])  # GET /user, GET /repos/..., then the POST fails
    make_archive(tmp_path / "wd")
    proc = cli_push(tmp_path, gitea_double, tmp_path / "wd")
    assert proc.returncode == 1 and "answered 502 to POST /user/repos" in one_line_error(proc)
    assert [r.method for r in server.requests if r.kind == "api"] == ["GET", "GET", "POST"]


def test_connection_errors_are_retried_with_backoff(gitea_double: Target) -> None:
    import requests

    from pipeline.gitea import GiteaClient

    client = GiteaClient(gitea_double.url, gitea_double.token, backoff=0.01)
    real, calls = client.session.request, []

    def flaky(method, url, **kw):  # type: ignore[no-untyped-def]
        calls.append(method)
        if len(calls) <= 2:
            raise requests.ConnectionError("connection reset")
        return real(method, url, **kw)

    client.session.request = flaky  # type: ignore[method-assign]
    assert client.current_user()["login"] == "alice" and calls == ["GET"] * 3


def test_git_5xx_is_retried_and_a_refusal_is_not(tmp_path: Path, gitea_double: Target) -> None:
    server = gitea_double.server
    wd, other = tmp_path / "wd", tmp_path / "other"
    head = make_archive(wd)[-1]
    # The ref discovery answers 502 once: the push still lands.
    server.fail_next_git.append(502)
    summary = push(wd, gitea_url=gitea_double.url, owner="alice", repo="connection-500", token=gitea_double.token)
    assert summary.after == head and server.main_sha("alice", "connection-500") == head
    assert [r.status for r in server.requests if r.kind == "git"][0] == 502
    # A diverged remote is refused at once, although the repository's name reads like a network fault.
    make_archive(other, commits=1)
    add_commit(other, "someone else's edit")
    seen = len(server.requests)
    with pytest.raises(DocpipeError, match="refusing to push"):
        push(other, gitea_url=gitea_double.url, owner="alice", repo="connection-500", token=gitea_double.token)
    discoveries = [r for r in server.requests[seen:] if r.kind == "git" and r.path.endswith("/info/refs")]
    assert [r.status for r in discoveries] == [401, 200]  # one connection: libgit2's auth challenge, then the refs
    assert server.main_sha("alice", "connection-500") == head


def test_persistent_5xx_is_one_line(tmp_path: Path, gitea_double: Target) -> None:
    gitea_double.server.fail_next.extend([500] * 10)
    make_archive(tmp_path / "wd")
    proc = cli_push(tmp_path, gitea_double, tmp_path / "wd")
    assert proc.returncode == 1 and "answered 500" in one_line_error(proc)
    gitea_double.server.fail_next.clear()


def test_missing_archive_and_missing_token_are_bad_input(tmp_path: Path, gitea_double: Target) -> None:
    proc = cli_push(tmp_path, gitea_double, tmp_path / "nothing")
    assert proc.returncode == 2 and "docpipe replay" in one_line_error(proc)
    make_archive(tmp_path / "wd")
    proc = run_cli(tmp_path, None, "--gitea", gitea_double.url, "--owner", "alice", "--workdir", str(tmp_path / "wd"))
    assert proc.returncode == 2 and "GITEA_TOKEN" in one_line_error(proc)
    proc = run_cli(tmp_path, gitea_double.token, "--owner", "alice", "--workdir", str(tmp_path / "wd"))
    assert proc.returncode == 2 and "no Gitea URL: pass --gitea" in one_line_error(proc)
    proc = run_cli(tmp_path, gitea_double.token, "--gitea", gitea_double.url, "--workdir", str(tmp_path / "wd"))
    assert proc.returncode == 2 and "no Gitea owner: pass --owner" in one_line_error(proc)
    assert gitea_double.server.requests == []  # nothing was sent for any of these
    with pytest.raises(BadInput, match="http"):
        push(tmp_path / "wd", gitea_url="ftp://x", owner="alice", repo=None, token="t")


def test_a_push_failure_is_not_bad_input() -> None:
    assert not isinstance(DocpipeError("x"), BadInput)


def test_archive_without_manifest_needs_repo(tmp_path: Path, gitea_double: Target) -> None:
    make_archive(tmp_path / "wd", manifest=False)
    with pytest.raises(BadInput, match="--repo"):
        push(tmp_path / "wd", gitea_url=gitea_double.url, owner="alice", repo=None, token=gitea_double.token)
    summary = push(tmp_path / "wd", gitea_url=gitea_double.url, owner="alice", repo="plain", token=gitea_double.token)
    assert summary.created and pygit2.Repository(str(gitea_double.server.git_dir("alice", "plain"))).head.target


def test_settings_come_from_docpipe_toml(tmp_path: Path, gitea_double: Target) -> None:
    head = make_archive(tmp_path / "wd")[-1]
    (tmp_path / "docpipe.toml").write_text(
        f'workdir = "wd"\n[gitea]\nurl = "{gitea_double.url}"\nowner = "alice"\nrepo = "from-config"\n'
        f'private = false\ntoken = "{gitea_double.token}"\n')
    proc = run_cli(tmp_path, None, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["repo"], summary["private"], summary["after"]) == ("from-config", False, head)
    assert gitea_double.token not in proc.stdout + proc.stderr


def test_contract_2_sample_archive_round_trips(tmp_path: Path, gitea_double: Target) -> None:
    """The shared Contract 2 sample (images, comments, hostile doc) pushes and clones byte for byte."""
    from tests.support.archive import sample_archive

    repo = sample_archive(tmp_path / "wd")
    head = str(repo.references["refs/heads/main"].target)
    summary = push(tmp_path / "wd", gitea_url=gitea_double.url, owner="alice", repo=None, token=gitea_double.token)
    assert (summary.repo, summary.after) == ("cswg-docs", head)
    clone = tmp_path / "clone"
    assert clone_main(f"{gitea_double.url}/alice/cswg-docs.git", gitea_double.token, clone) == head
    log = subprocess.run(["git", "-C", str(clone), "rev-list", "--count", "main"], capture_output=True, text=True)
    assert int(log.stdout) == len(list(repo.walk(repo.head.target)))
    fsck = subprocess.run(["git", "-C", str(gitea_double.server.git_dir("alice", "cswg-docs")), "fsck", "--strict"],
                          capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stderr
    assert json.loads((clone / ".docpipe" / "manifest.json").read_text())["folder"]["name"] == "CSWG docs"


# ---------------------------------------------------------------- the site branch


def _commit_site(workdir: Path, page: str) -> str:
    """What `publish --site-branch` does: commit a site directory to the archive's `site` branch."""
    from pipeline.publish import commit_site

    site = workdir / "site-src"
    (site / "docs").mkdir(parents=True, exist_ok=True)
    (site / "mkdocs.yml").write_text("site_name: t\n")
    (site / "docs" / "index.md").write_text(page)
    repo = pygit2.Repository(str(workdir / "archive"))
    return commit_site(repo, site, repo[repo.references["refs/heads/main"].target])


def remote_branch(target: Target, name: str, branch: str) -> str | None:
    out = subprocess.run(["git", *git_auth_args(target.token), "ls-remote", f"{target.url}/{target.owner}/{name}.git",
                          f"refs/heads/{branch}"], check=True, capture_output=True, text=True, timeout=60).stdout
    return out.split()[0] if out.strip() else None


def test_site_branch_is_pushed_with_main_and_fast_forwards(tmp_path: Path, gitea_target: Target) -> None:
    wd = tmp_path / "wd"
    make_archive(wd)
    name = gitea_target.repo_name("site")
    # No site branch yet: main alone, and the remote has no `site`.
    first = json.loads(cli_push(tmp_path, gitea_target, wd, "--repo", name).stdout)
    assert first["site_after"] is None and remote_branch(gitea_target, name, "site") is None
    site1 = _commit_site(wd, "# One\n")
    proc = cli_push(tmp_path, gitea_target, wd, "--repo", name)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["up_to_date"] is True and (summary["site_before"], summary["site_after"]) == (None, site1)
    assert remote_branch(gitea_target, name, "site") == site1
    add_commit(wd, "revision 3")
    site2 = _commit_site(wd, "# Two\n")
    summary = json.loads(cli_push(tmp_path, gitea_target, wd, "--repo", name).stdout)
    assert (summary["site_before"], summary["site_after"], summary["site_forced"]) == (site1, site2, False)
    assert remote_branch(gitea_target, name, "site") == site2
    clone = tmp_path / "clone"
    subprocess.run(["git", *git_auth_args(gitea_target.token),
                    "clone", "-q", "--branch", "site", f"{gitea_target.url}/{gitea_target.owner}/{name}.git", str(clone)],
                   check=True, capture_output=True, timeout=120)
    assert (clone / "docs" / "index.md").read_text() == "# Two\n" and (clone / "mkdocs.yml").is_file()


def test_diverged_site_branch_is_refused_before_anything_is_pushed(tmp_path: Path, gitea_target: Target) -> None:
    name = gitea_target.repo_name("site-diverged")
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    make_archive(ours, commits=1)
    _commit_site(ours, "# Ours\n")
    assert cli_push(tmp_path, gitea_target, ours, "--repo", name).returncode == 0
    make_archive(theirs, commits=1)  # same main (deterministic), a different site history
    their_site = _commit_site(theirs, "# Theirs\n")
    # theirs' site has no parent in common with ours: pushing it needs --force.
    assert cli_push(tmp_path, gitea_target, theirs, "--repo", name, "--force").returncode == 0
    main_before = remote_branch(gitea_target, name, "main")
    add_commit(ours, "our next revision")
    our_site = _commit_site(ours, "# Ours, again\n")

    proc = cli_push(tmp_path, gitea_target, ours, "--repo", name)
    assert proc.returncode == 1
    line = one_line_error(proc)
    assert "refusing to push: site on" in line and "--force" in line
    # Nothing moved: neither the site nor main (which alone would have fast-forwarded).
    assert remote_branch(gitea_target, name, "site") == their_site
    assert remote_branch(gitea_target, name, "main") == main_before

    proc = cli_push(tmp_path, gitea_target, ours, "--repo", name, "--force")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["site_forced"] is True and summary["site_before"] == their_site and summary["forced"] is False
    assert remote_branch(gitea_target, name, "site") == our_site
