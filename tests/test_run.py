"""`docpipe run` end to end: the emulator as Google, the Gitea test server as Gitea."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pygit2
import pytest

from tests.support.gitea import assert_clean, clone_main, start_double
from tests.support.pull import TOKEN, add_doc, cli, new_dataset, revision_html, running


def lab_doc_html(name: str, base: str = "debian-novnc", extra: str = "") -> str:
    return (
        "<html><head><style type=\"text/css\">.c1{font-weight:700}</style></head><body>"
        f"<p><span>Name: {name}</span></p><p><span>Title: Workshop {name}</span></p><p><span>Status: Draft</span></p>"
        "<h2 id=\"h.steps\"><span>Steps</span></h2><p><span>Open a terminal.</span></p>"
        "<h2 id=\"h.lab\"><span>Lab desktop</span></h2>"
        f"<p><span>base: {base}</span></p><p><span>packages: git</span></p><p><span>ports: 8080</span></p>{extra}"
        "</body></html>"
    )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A Drive folder with docs and a workshop, a Gitea, and a config pointing at both."""
    ds = new_dataset()
    alpha = add_doc(ds, "mcp-1-alpha", 3, comments=2)
    sub = ds.add_folder("Workshops")
    add_doc(ds, "notes", 2, parent=sub)
    ws = ds.add_doc("ws-one", parent=sub)
    ds.add_revision(ws, lab_doc_html("ws-one"), "ada", "2024-03-01T10:00:00Z")
    server, gitea_token = start_double(tmp_path)
    hooks = tmp_path / "hooks"
    with running(ds) as emu:
        config = tmp_path / "docpipe.toml"
        config.write_text(
            f'workdir = "{tmp_path / "wd"}"\n'
            f'[drive]\nfolder = "{emu.root_folder_id}"\nendpoint = "{emu.url}"\njobs = 4\nmax_qps = 200\n'
            f'[gitea]\nurl = "{server.url}"\nowner = "alice"\nrepo = "wg-docs"\n'
            f'[hooks]\nbuiltin = false\ndirs = ["{hooks}"]\n'
        )
        env = {"DOCPIPE_ACCESS_TOKEN": TOKEN, "GITEA_TOKEN": gitea_token}
        try:
            yield {"ds": ds, "emu": emu, "server": server, "config": config, "env": env, "wd": tmp_path / "wd",
                   "hooks": hooks, "ws": ws, "alpha": alpha, "gitea_token": gitea_token, "tmp": tmp_path}
            assert_clean(server)
        finally:
            server.stop()


def write_hook(path: Path, body: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def docpipe_run(world: dict[str, Any], *extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    r = cli(["run", "--config", str(world["config"]), "--json", *extra], env=world["env"], timeout=300)
    summary = json.loads(r.stdout) if r.stdout.strip() else {}
    return r, summary


def stages(summary: dict[str, Any]) -> dict[str, str]:
    return {s["stage"]: s["status"] for s in summary["folders"][0]["stages"]}


def main_sha(wd: Path) -> str:
    return str(pygit2.Repository(str(wd / "archive")).references["refs/heads/main"].target)


def commit_count(wd: Path) -> int:
    repo = pygit2.Repository(str(wd / "archive"))
    return sum(1 for _ in repo.walk(repo.references["refs/heads/main"].target))


def test_run_end_to_end_then_incremental_then_noop(world: dict[str, Any]) -> None:
    wd, hooks = world["wd"], world["hooks"]
    # A user hook on `workshop` records what it was told (the built-in builder is off here).
    log = world["tmp"] / "workshop-events.jsonl"
    write_hook(hooks / "workshop", f"cat >> {log}; echo >> {log}; echo '{{\"built\": false}}'\n")
    write_hook(hooks / "replayed.d" / "10-count", 'echo \'{"seen": "replayed"}\'\n')

    r, summary = docpipe_run(world)
    assert r.returncode == 0, r.stderr
    assert stages(summary) == {"pull": "changed", "replay": "changed", "push": "changed", "render": "changed",
                               "publish": "changed", "provision": "changed"}
    first = main_sha(wd)
    # Gitea now holds the same history; the site is built; the workshop hook got its lab spec.
    clone_sha = clone_main(f"{world['server'].url}/alice/wg-docs.git", world["gitea_token"], world["tmp"] / "clone1")
    assert clone_sha == first
    assert (wd / "public" / "index.html").is_file()
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert [e["doc"]["workshop"] for e in events] == ["ws-one"]
    assert events[0]["doc"]["lab"]["base"] == "debian-novnc" and events[0]["commit"] == first
    folder = summary["folders"][0]
    assert {"hook": "replayed.d/10-count", "event": "replayed", "output": {"seen": "replayed"}} in folder["hooks"]
    assert folder["workshops"][0]["outputs"] == [{"built": False}]
    commits_before = commit_count(wd)

    # New work in Drive: two revisions and a comment. Only that is fetched and appended.
    ds, emu = world["ds"], world["emu"]
    doc_id = world["alpha"]
    ds.add_revision(doc_id, revision_html("mcp-1-alpha", 100), "bob", "2024-05-01T09:00:00Z")
    ds.add_revision(doc_id, revision_html("mcp-1-alpha", 101), "cy", "2024-05-01T09:30:00Z")
    ds.add_comment(doc_id, "ada", "looks good", "2024-05-01T10:00:00Z", quoted="revision 101")
    r, summary = docpipe_run(world)
    assert r.returncode == 0, r.stderr
    pull = summary["folders"][0]["stages"][0]
    assert pull["summary"]["new_revisions"] == 2
    assert commit_count(wd) == commits_before + 3
    repo = pygit2.Repository(str(wd / "archive"))
    assert repo.descendant_of(repo.references["refs/heads/main"].target, pygit2.Oid(hex=first))
    assert stages(summary)["push"] == "changed"
    assert clone_main(f"{world['server'].url}/alice/wg-docs.git", world["gitea_token"], world["tmp"] / "clone2") == main_sha(wd)
    # The workshop's spec did not change, so it was not provisioned again.
    assert len([ln for ln in log.read_text().splitlines() if ln.strip()]) == 1

    # Nothing new: no commits, no render, no build, no hook.
    emu.reset_counters()
    second = main_sha(wd)
    site_mtime = (wd / "public" / "index.html").stat().st_mtime_ns
    r, summary = docpipe_run(world)
    assert r.returncode == 0, r.stderr
    assert stages(summary) == {"pull": "unchanged", "replay": "unchanged", "push": "unchanged",
                               "render": "unchanged", "publish": "unchanged", "provision": "unchanged"}
    assert main_sha(wd) == second
    assert (wd / "public" / "index.html").stat().st_mtime_ns == site_mtime
    assert summary["folders"][0]["hooks"] == []
    assert not any("revisions" in path or "comments" in path or "Export" in path for _, path, _ in emu.requests)


def test_failing_workshop_fails_the_run_but_the_rest_ran(world: dict[str, Any]) -> None:
    write_hook(world["hooks"] / "workshop", "echo 'registry full' >&2; exit 4\n")
    r, summary = docpipe_run(world)
    assert r.returncode == 1
    folder = summary["folders"][0]
    assert folder["ok"] is False
    assert folder["workshops"][0]["ok"] is False and "registry full" in folder["workshops"][0]["error"]
    assert stages(summary)["publish"] == "changed" and (world["wd"] / "public" / "index.html").is_file()
    # A failed workshop is tried again on the next run.
    write_hook(world["hooks"] / "workshop", "echo '{}'\n")
    r, summary = docpipe_run(world)
    assert r.returncode == 0, r.stderr
    assert summary["folders"][0]["workshops"][0]["status"] == "changed"


def test_second_run_on_a_locked_workdir_exits_with_a_clear_message(world: dict[str, Any]) -> None:
    wd = world["wd"]
    wd.mkdir(parents=True, exist_ok=True)
    with open(wd / ".lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write("4242")
        fh.flush()
        r, _ = docpipe_run(world)
    assert r.returncode == 4  # README "Exit status": another docpipe holds the workdir
    assert "another docpipe run is using" in r.stderr and "--wait" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_bad_config_and_unknown_stage_exit_2(world: dict[str, Any]) -> None:
    r = cli(["run", "--config", str(world["config"]), "--only", "pull,deploy"], env=world["env"])
    assert r.returncode == 2 and "unknown stage(s) deploy" in r.stderr
    bad = world["tmp"] / "bad.toml"
    bad.write_text("[drive]\nfolderr = 'x'\n")
    r = cli(["run", "--config", str(bad)], env=world["env"])
    assert r.returncode == 2 and "did you mean 'folder'" in r.stderr
    empty = world["tmp"] / "empty.toml"
    empty.write_text("[gitea]\nowner = 'alice'\n")
    r = cli(["run", "--config", str(empty)], env=world["env"])
    assert r.returncode == 2 and "no Drive folder configured" in r.stderr


def test_killed_run_resumes_to_the_same_history(world: dict[str, Any], tmp_path: Path) -> None:
    # Reference: an uninterrupted run into another workdir.
    ref_cfg = tmp_path / "ref.toml"
    ref_cfg.write_text(world["config"].read_text().replace(str(world["wd"]), str(tmp_path / "ref")))
    r = cli(["run", "--config", str(ref_cfg), "--only", "pull,replay", "--json"], env=world["env"], timeout=300)
    assert r.returncode == 0, r.stderr
    # The real run is killed while it pulls (latency keeps it busy), then run again.
    world["emu"].latency = 0.05
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCPIPE_")}
    env.update(world["env"])
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--config", str(world["config"]),
                             "--only", "pull,replay"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blobs = world["wd"] / "store" / "blobs"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (blobs.exists() and any(blobs.rglob("*"))):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    world["emu"].latency = 0.0
    r = cli(["run", "--config", str(world["config"]), "--only", "pull,replay", "--json"], env=world["env"], timeout=300)
    assert r.returncode == 0, r.stderr
    assert main_sha(world["wd"]) == main_sha(tmp_path / "ref")


def test_shell_setup_steps_reach_the_workshop_hook_only_when_the_operator_allows_them(world: dict[str, Any]) -> None:
    ds, ws = world["ds"], world["ws"]
    ds.add_revision(ws, lab_doc_html("ws-one", extra="<p><span>setup: make install</span></p>"), "bob",
                    "2024-03-02T10:00:00Z")
    write_hook(world["hooks"] / "workshop", 'python3 -c "import json,sys; print(json.dumps({\'setup\': json.load(sys.stdin)[\'doc\'][\'lab\'][\'setup\']}))"\n')
    r, summary = docpipe_run(world)
    assert r.returncode == 2  # an invalid spec is bad input, in `docpipe run` as in `docpipe provision`
    (ws_result,) = summary["folders"][0]["workshops"]
    assert "shell setup steps are disabled by the operator" in ws_result["error"]
    world["config"].write_text(world["config"].read_text() + "[lab]\nallow_shell_steps = true\n")
    r, summary = docpipe_run(world)
    assert r.returncode == 0, r.stderr
    (ws_result,) = summary["folders"][0]["workshops"]
    assert ws_result["outputs"] == [{"setup": ["make install"]}]


def test_a_single_stage_fires_its_event_and_a_failed_stage_keeps_its_exit_status(world: dict[str, Any]) -> None:
    log = world["tmp"] / "events.jsonl"
    write_hook(world["hooks"] / "pulled", f"cat >> {log}; echo >> {log}; echo '{{}}'\n")
    write_hook(world["hooks"] / "rendered", f"cat >> {log}; echo >> {log}; echo '{{}}'\n")
    for stage in ("pull", "replay", "render"):
        r = cli([stage, "--config", str(world["config"])], env=world["env"])
        assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert [e["event"] for e in events] == ["pulled", "rendered"]  # `docpipe render` alone fires `rendered`
    assert events[1]["workdir"] == str(world["wd"].resolve()) and len(events[1]["commit"]) == 40
    assert not (world["wd"] / ".pull.lock").exists() and not (world["wd"] / ".lock").exists()
    # A BadInput inside run stays 2: a corrupt doc in the store.
    (world["wd"] / "store" / "docs" / f"{world['alpha']}.json").write_text("{torn")
    r = cli(["run", "--config", str(world["config"]), "--only", "replay"], env=world["env"])
    assert r.returncode == 2, r.stderr
    assert "replay" in r.stdout and "is not valid JSON" in r.stdout


def test_a_failed_pull_leaves_no_lock_file(tmp_path: Path) -> None:
    r = cli(["pull", "--folder", "1AbCdEfGhIjK", "--drive-endpoint", "http://127.0.0.1:9/", "--workdir", str(tmp_path),
             "--credentials", str(tmp_path / "missing.json")])
    assert r.returncode != 0 and r.stderr.startswith("docpipe: error: ")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_workshop_hook_runs_once_per_workshop_with_the_same_payload_under_provision_and_run(
        world: dict[str, Any]) -> None:
    """`docpipe provision` is the stage `docpipe run` runs: the same call, the same events."""
    ds = world["ds"]
    two = ds.add_doc("ws-two", parent=ds.add_folder("More"))
    ds.add_revision(two, lab_doc_html("ws-two", extra="<p><span>ports: 9090</span></p>"), "bob", "2024-03-01T11:00:00Z")
    log = world["tmp"] / "workshop-events.jsonl"
    write_hook(world["hooks"] / "workshop", f"cat >> {log}; echo >> {log}; echo '{{}}'\n")
    r = cli(["run", "--config", str(world["config"]), "--only", "pull,replay,render"], env=world["env"])
    assert r.returncode == 0, r.stderr
    assert not log.exists()  # provision was not asked for

    def events() -> list[dict[str, Any]]:
        found = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        log.unlink()
        return found

    r = cli(["provision", "--config", str(world["config"]), "--json"], env=world["env"])
    assert r.returncode == 0, r.stderr
    alone = events()
    assert [e["doc"]["workshop"] for e in alone] == ["ws-one", "ws-two"]
    assert [w["status"] for w in json.loads(r.stdout)["workshops"]] == ["changed", "changed"]
    r, summary = docpipe_run(world, "--only", "provision")
    assert r.returncode == 0, r.stderr
    assert events() == alone
    one = alone[0]
    assert one["event"] == "workshop" and one["commit"] == main_sha(world["wd"])
    assert one["doc"]["id"] == world["ws"] and one["doc"]["title"] == "Workshop ws-one"
    assert one["doc"]["lab"]["base"] == "debian-novnc" and one["doc"]["lab"]["ports"] == [8080]
    # The built-in builder runs first, in-process; off here ([hooks] builtin = false), it plans.
    assert one["settings"]["dry_run"] is True and one["image"]["built"] is False
    assert one["image"]["tags"][0] == f"docpipe/ws-one:{one['doc']['lab']['image_tag']}"
    assert "FROM docpipe/debian-novnc:" in one["image"]["dockerfile"]
    # Nothing changed: `docpipe run` skips both; `docpipe provision`, asked, fires again.
    r, summary = docpipe_run(world, "--only", "provision")
    assert r.returncode == 0 and not log.exists()
    assert [w["status"] for w in summary["folders"][0]["workshops"]] == ["unchanged", "unchanged"]
    r = cli(["provision", "--config", str(world["config"])], env=world["env"])
    assert r.returncode == 0 and events() == alone


def test_a_bad_lab_spec_exits_2_under_provision_and_run_and_the_other_workshops_still_fire(
        world: dict[str, Any]) -> None:
    ds = world["ds"]
    bad = ds.add_doc("ws-bad", parent=ds.add_folder("More"))
    ds.add_revision(bad, lab_doc_html("ws-bad", base="evil/image"), "bob", "2024-03-01T11:00:00Z")
    log = world["tmp"] / "workshop-events.jsonl"
    write_hook(world["hooks"] / "workshop", f"cat >> {log}; echo >> {log}; echo '{{}}'\n")
    r, summary = docpipe_run(world)
    assert r.returncode == 2, r.stderr
    results = {w["name"]: w for w in summary["folders"][0]["workshops"]}
    assert results["ws-one"]["ok"] and not results["ws-bad"]["ok"] and "evil/image" in results["ws-bad"]["error"]
    assert [json.loads(line)["doc"]["workshop"] for line in log.read_text().splitlines() if line.strip()] == ["ws-one"]
    r = cli(["provision", "--config", str(world["config"])], env=world["env"])
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("docpipe: error: 1 of 2 workshops failed (ws-bad: ")
