"""`docpipe demo`, the README's first command: sample data to site with no credentials or servers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pygit2

from tests.support.pull import cli, demo_port


def test_demo_runs_the_whole_job_and_a_rerun_changes_nothing(tmp_path: Path) -> None:
    wd = tmp_path / "demo"
    with demo_port():
        r = cli(["demo", "--workdir", str(wd), "--dry-run-lab", "--json"], timeout=300)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    stages = {s["stage"]: s["status"] for s in summary["run"]["folders"][0]["stages"]}
    assert stages == {"pull": "changed", "replay": "changed", "push": "changed", "render": "changed",
                      "publish": "changed", "provision": "changed"}
    # The history is real git with the sample docs' authors, pushed to the stand-in for Gitea.
    archive = pygit2.Repository(str(wd / "archive"))
    head = archive.references["refs/heads/main"].target
    authors = {c.author.name for c in archive.walk(head)}
    assert {"Steve Traugott", "JJ", "Donaldo Ruiz"} <= authors
    # Google gives no commenter's email; the one Steve's revisions carry names his comments too.
    emails = {(c.author.name, c.author.email) for c in archive.walk(head)}
    assert {e for n, e in emails if n == "Steve Traugott"} == {"steve@example.org"}
    assert {e for n, e in emails if n == "JJ"} == {"jj@users.noreply.docs.google.com"}
    clone = subprocess.run(["git", "clone", "-q", str(wd / "gitea-standin.git"), str(tmp_path / "clone")],
                           capture_output=True, text=True)
    assert clone.returncode == 0, clone.stderr
    assert (tmp_path / "clone" / "mcp-376-cswg-workshop-virtual-desktops.md").is_file()
    assert subprocess.run(["git", "-C", str(tmp_path / "clone"), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip() == str(head)
    # The site is built, and the workshop's lab desktop was planned from its doc.
    assert (wd / "public" / "index.html").is_file()
    workshops = summary["run"]["folders"][0]["workshops"]
    assert [w["name"] for w in workshops] == ["ws-go-promisegrid"] and workshops[0]["ok"]
    plan = workshops[0]  # planned by the provision stage itself; no user hook here
    assert plan["built"] is False and "FROM" in plan["dockerfile"] and plan["outputs"] == []
    # Steps keep their numbers across the code blocks between them.
    page = (wd / "public" / "workshops" / "ws-go-promisegrid.html").read_text()
    assert '<ol start="2">' in page and '<ol start="3">' in page
    # Each progress check is under its step, escaped, so a learner knows what "done" means there;
    # every step name matches a heading, so no list of the rest at the page's end.
    steps = page.index('<h3 id="change-the-greeting">'), page.index('<h2 id="what-next">')
    check = page.index("<code>! grep -q &#34;hello from the grid&#34; ~/hello/main.go</code>")
    assert steps[0] < check < steps[1] and page.count('<div class="admonition success">') == 3
    assert "How you know you" not in page
    assert 'COPY ["checks.json", "/etc/docpipe/checks.json"]' in plan["dockerfile"]
    # The tutorial's lab box names the very image provision makes.
    tag = plan["tags"][0].rsplit("/", 1)[1]
    assert f"`{tag}`" in (wd / "site" / "docs" / "workshops" / "ws-go-promisegrid.md").read_text()
    assert summary["docker_engine"] is False
    # The text summary tells a newcomer where to look.
    with demo_port():
        r_text = cli(["demo", "--workdir", str(wd), "--dry-run-lab"], timeout=300)
    assert r_text.returncode == 0, r_text.stderr
    assert f"git -C {wd / 'archive'} log" in r_text.stdout and "http.server" in r_text.stdout
    # The true reason the lab was only planned: the flag, not a missing engine.
    assert "planned only (--dry-run-lab was given)" in r_text.stdout and "no Docker Engine" not in r_text.stdout
    # Nothing new in the sample data: the second and third runs made no commit.
    assert pygit2.Repository(str(wd / "archive")).references["refs/heads/main"].target == head
    assert "replay    unchanged" in r_text.stdout and "push      unchanged" in r_text.stdout


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_two_fresh_demos_give_byte_identical_stores_histories_and_sites(tmp_path: Path) -> None:
    with demo_port():
        for name in ("a", "b"):
            r = cli(["demo", "--workdir", str(tmp_path / name), "--dry-run-lab", "--json"], timeout=300)
            assert r.returncode == 0, r.stderr
    a, b = tmp_path / "a", tmp_path / "b"
    assert tree_bytes(a / "store") == tree_bytes(b / "store")
    assert tree_bytes(a / "public") == tree_bytes(b / "public")
    heads = {str(pygit2.Repository(str(d / "archive")).references["refs/heads/main"].target) for d in (a, b)}
    assert len(heads) == 1
