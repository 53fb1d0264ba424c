"""docpipe pull against the Drive emulator, through the real google-api-python-client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline import USER_AGENT
from pipeline.drive import RetryPolicy
from pipeline.drive.walk import PageSizes
from pipeline.errors import BadInput, DocpipeError
from pipeline.pull import pull
from tests.support.pull import (
    TOKEN,
    Proxy,
    add_doc,
    blob,
    cli,
    exports_of,
    new_dataset,
    paths_of,
    read_doc,
    read_folder,
    revision_html,
    running,
    snapshot,
    token_env,
)

FAST = RetryPolicy(base=0.01, cap=0.1)


def _pull(emu, wd: Path, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("retry", FAST)
    return pull(emu.root_folder_id, workdir=wd, endpoint=kw.pop("endpoint", emu.url), quiet=True, **kw)


@pytest.fixture
def folder():  # type: ignore[no-untyped-def]
    """A folder with a subfolder, a shortcut, a cycle, a trashed doc, a PDF and an image."""
    ds = new_dataset()
    sub = ds.add_folder("Workshops")
    deep = ds.add_folder("Archive", parent=sub)
    ids = {
        "readme": add_doc(ds, "mcp-0-readme", 3, comments=4, image=True),
        "lab": add_doc(ds, "mcp-376 virtual desktops", 5, parent=sub, comments=2),
        "old": add_doc(ds, "old notes", 2, parent=deep),
        "outside": add_doc(ds, "elsewhere", 2, parent=None),
        "trashed": add_doc(ds, "draft", 1),
    }
    other = ds.add_folder("Not shared folder")
    ds.get(other).parents = []  # a folder of someone else's Drive, outside the pulled tree
    ds.move(ids["outside"], other, "2024-05-01T00:00:00Z")
    ds.trash(ids["trashed"], "2024-05-01T00:00:00Z")
    ids["pdf"] = ds.add_file("slides.pdf", "application/pdf", b"%PDF-1.4")
    ids["sheet"] = ds.add_file("budget", "application/vnd.google-apps.spreadsheet")
    ids["short"] = ds.add_shortcut("link to elsewhere", ids["outside"], parent=sub)
    ids["short_dup"] = ds.add_shortcut("link to readme", ids["readme"], parent=deep)
    ids["cycle"] = ds.add_shortcut("back to the top", ds.root_id, parent=deep)
    ids["sub"], ids["deep"] = sub, deep
    return ds, ids


def test_pull_stores_every_revision_comment_and_image(folder, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = folder
    with running(ds, latency=0.002) as emu:
        summary = _pull(emu, tmp_path)
    got = summary.to_json()
    assert set(got) == {"folder", "docs", "revisions", "comments", "replies", "new_revisions", "skipped", "requests", "partial_history", "how", "reconciled"}
    assert got["folder"] == ds.root_id
    assert (got["docs"], got["revisions"], got["new_revisions"]) == (4, 12, 12)
    assert got["comments"] == 6 and got["replies"] == 5
    assert got["requests"] == emu.request_count
    assert got["skipped"] == sorted([
        {"id": ids["pdf"], "name": "slides.pdf", "reason": "not a Google Doc (application/pdf)"},
        {"id": ids["sheet"], "name": "budget", "reason": "not a Google Doc (application/vnd.google-apps.spreadsheet)"},
    ], key=lambda s: s["id"])

    f = read_folder(tmp_path)
    assert f["docs"] == sorted([ids["readme"], ids["lab"], ids["old"], ids["outside"]])
    assert f["name"] == "Working Group" and f["webViewLink"].endswith(ds.root_id)

    lab = read_doc(tmp_path, ids["lab"])
    assert lab["folder_path"] == ["Workshops"] and lab["folder_ids"] == [ids["sub"]]
    assert read_doc(tmp_path, ids["old"])["folder_path"] == ["Workshops", "Archive"]
    assert read_doc(tmp_path, ids["outside"])["folder_path"] == ["Workshops"]  # where its shortcut is
    assert read_doc(tmp_path, ids["readme"])["folder_path"] == []  # found directly before its shortcut
    assert [r["id"] for r in lab["revisions"]] == ["1", "2", "3", "4", "5"]
    assert lab["titles"] == [{"name": "mcp-376 virtual desktops", "time": lab["revisions"][0]["modifiedTime"]}]
    assert lab["removed"] is None and lab["version"] == str(ds.get(ids["lab"]).version)
    first = lab["revisions"][0]
    assert first["lastModifyingUser"] == {"displayName": "Ada Lovelace", "emailAddress": "ada@example.org",
                                         "permissionId": ds.users["ada"].permissionId}
    assert blob(tmp_path, first["html"]).decode() == revision_html("mcp-376 virtual desktops", 0)

    readme = read_doc(tmp_path, ids["readme"])
    (img,) = readme["revisions"][0]["images"]
    assert img["mimeType"] == "image/png" and blob(tmp_path, img["blob"]) == b"\x89PNG\r\n\x1a\nmcp-0-readme"
    assert img["src"] in blob(tmp_path, readme["revisions"][0]["html"]).decode()
    comments = readme["comments"]
    assert [c["content"] for c in comments] == [f"comment {n} on mcp-0-readme" for n in range(4)]
    assert comments[0]["resolved"] is True and comments[0]["replies"][-1]["action"] == "resolve"
    assert comments[0]["author"] == {"displayName": "Bob Builder", "photoLink": comments[0]["author"]["photoLink"]}
    # The trashed doc never shows up; images were fetched once per distinct URL.
    assert not (tmp_path / "store" / "docs" / f"{ids['trashed']}.json").exists()
    assert sum("/docsz/" in p for p in paths_of(emu)) == 1
    # Every request (API calls, exports, images) names this docpipe, as Google's logs would show it.
    assert emu.user_agents and all(ua.split()[0] == USER_AGENT for ua in emu.user_agents), emu.user_agents


def test_noop_repull_reads_only_the_changes_feed(folder, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = folder
    with running(ds) as emu:
        _pull(emu, tmp_path)
        before = snapshot(tmp_path)
        emu.reset_counters()
        summary = _pull(emu, tmp_path)
        calls = [(path, q.get("pageToken", "")) for _, path, q in emu.requests]
        token = str(len(ds.changes) + 1)  # the emulator's token for "after the last change"
    assert calls == [("/drive/v3/changes", token)]
    assert summary.requests == 1 and summary.new_revisions == 0 and summary.how == "changes"
    assert snapshot(tmp_path) == before


def test_noop_full_repull_lists_each_folder_once_and_nothing_else(folder, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = folder
    with running(ds) as emu:
        _pull(emu, tmp_path)
        before = snapshot(tmp_path)
        emu.reset_counters()
        summary = _pull(emu, tmp_path, full=True)
        calls = sorted((path, q.get("q", "")) for _, path, q in emu.requests)
    folders = [ds.root_id, ids["sub"], ids["deep"]]
    assert calls == sorted(
        [(f"/drive/v3/files/{ds.root_id}", "")]                                   # the root folder itself
        + [("/drive/v3/changes/startPageToken", "")]                              # where the next feed starts
        + [("/drive/v3/files", f"'{fid}' in parents and trashed = false") for fid in folders]
        + [(f"/drive/v3/files/{ids['outside']}", "")]                             # the shortcut's target
    )
    assert summary.requests == 6 and summary.new_revisions == 0 and summary.how == "walk"
    assert snapshot(tmp_path) == before


def test_noop_pull_costs_the_same_at_any_folder_count(token_env, tmp_path: Path) -> None:
    costs = []
    for n in (2, 40):
        ds = new_dataset()
        parent = None
        for i in range(n):
            parent = ds.add_folder(f"level {i}", parent=parent if i % 4 else None)
            add_doc(ds, f"doc {i}", 1, parent=parent)
        with running(ds) as emu:
            _pull(emu, tmp_path / str(n))
            emu.reset_counters()
            summary = _pull(emu, tmp_path / str(n))
            costs.append((emu.request_count, summary.docs))
    assert costs == [(1, 2), (1, 40)]


def test_incremental_pull_fetches_only_what_changed(folder, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = folder
    with running(ds) as emu:
        _pull(emu, tmp_path)
        lab = ids["lab"]
        ds.add_revision(lab, revision_html("lab", 99), "cy", "2024-09-01T10:00:00Z")
        cid = ds.add_comment(lab, "bob", "is port 6080 right?", "2024-09-01T11:00:00Z", quoted="6080")
        ds.add_reply(lab, cid, "ada", "yes", "2024-09-01T12:00:00Z", action="resolve")
        ds.rename(lab, "mcp-376 lab desktops", "2024-09-02T00:00:00Z")
        emu.reset_counters()
        summary = _pull(emu, tmp_path)
        exports = exports_of(emu)
        per_doc = [p for p in paths_of(emu) if "/revisions" in p or "/comments" in p]
    assert exports == [f"{lab}@6"]
    assert sorted(per_doc) == [f"/drive/v3/files/{lab}/comments", f"/drive/v3/files/{lab}/revisions"]
    assert summary.new_revisions == 1 and summary.revisions == 13
    doc = read_doc(tmp_path, lab)
    assert [r["id"] for r in doc["revisions"]][-2:] == ["5", "6"]
    assert doc["comments"][-1]["content"] == "is port 6080 right?" and doc["comments"][-1]["resolved"] is True
    assert [t["name"] for t in doc["titles"]] == ["mcp-376 virtual desktops", "mcp-376 lab desktops"]
    assert doc["titles"][-1]["time"] == "2024-09-02T00:00:00.000Z" and doc["name"] == "mcp-376 lab desktops"


def test_removed_and_trashed_docs_keep_their_history(folder, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = folder
    with running(ds) as emu:
        _pull(emu, tmp_path)
        ds.trash(ids["old"], "2024-10-01T00:00:00Z")
        ds.delete(ids["lab"])
        summary = _pull(emu, tmp_path)
    old, lab = read_doc(tmp_path, ids["old"]), read_doc(tmp_path, ids["lab"])
    assert old["removed"]["reason"] == "trashed" and len(old["revisions"]) == 2
    assert old["removed"]["time"] == "2024-10-01T00:00:00.000Z"  # Drive's trashedTime, not the pull's clock
    assert lab["removed"]["reason"] == "deleted" and len(lab["revisions"]) == 5
    assert ids["old"] not in read_folder(tmp_path)["docs"] and ids["lab"] not in read_folder(tmp_path)["docs"]
    assert summary.docs == 4  # totals are for the whole store, history included
    assert (summary.revisions, summary.comments, summary.replies) == (12, 6, 5)


@pytest.mark.parametrize("extra", [0, 1], ids=["exactly-one-page", "one-over"])
def test_paging_edges(token_env, tmp_path: Path, extra: int) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    docs = [add_doc(ds, f"doc {n}", 4 + (extra if n == 0 else 0), comments=(100 + extra if n == 0 else 0)) for n in range(4 + extra)]
    with running(ds) as emu:
        summary = _pull(emu, tmp_path, page_sizes=PageSizes(files=4, revisions=4))
        lists = [p for p in paths_of(emu)]
    assert summary.docs == 4 + extra and summary.revisions == 4 * (4 + extra) + extra
    assert read_folder(tmp_path)["docs"] == sorted(docs)
    assert len(read_doc(tmp_path, docs[0])["comments"]) == 100 + extra
    assert lists.count("/drive/v3/files") == 1 + extra
    assert lists.count(f"/drive/v3/files/{docs[0]}/revisions") == 1 + extra
    assert lists.count(f"/drive/v3/files/{docs[0]}/comments") == 1 + extra


def test_450_revisions_and_130_comment_threads(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    big = add_doc(ds, "long history", 450, comments=130)
    with running(ds) as emu:
        summary = _pull(emu, tmp_path, jobs=8, max_qps=2000, page_sizes=PageSizes(revisions=200))
        assert paths_of(emu).count(f"/drive/v3/files/{big}/revisions") == 3
        assert paths_of(emu).count(f"/drive/v3/files/{big}/comments") == 2
    doc = read_doc(tmp_path, big)
    assert [r["id"] for r in doc["revisions"]] == [str(n) for n in range(1, 451)]
    assert len({r["html"] for r in doc["revisions"]}) == 450
    assert blob(tmp_path, doc["revisions"][449]["html"]).decode() == revision_html("long history", 449)
    keys = [(c["createdTime"], c["id"]) for c in doc["comments"]]
    assert len(keys) == 130 and keys == sorted(keys)
    assert sum(len(c["replies"]) for c in doc["comments"]) == summary.replies == 44 + 26


def test_faults_at_20_percent_still_give_the_identical_store(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    sub = ds.add_folder("Sub")
    for n in range(6):
        add_doc(ds, f"doc {n}", 10, comments=3, image=(n == 0), parent=sub if n % 2 else None)
    with running(ds, latency=0.002, seed=7) as emu:
        _pull(emu, tmp_path / "clean")
        emu.fault_rate, emu.retry_after = 0.2, 1  # Retry-After: 1 on every 429, honoured
        emu.reset_counters()
        summary = _pull(emu, tmp_path / "faulty", retry=RetryPolicy(tries=10, base=0.01, cap=0.2))
        injected = [k for _, k in emu.faults_injected]
    assert len(injected) >= 10 and set(injected) == {"429", "403", "500", "503", "drop"}, injected
    assert snapshot(tmp_path / "faulty") == snapshot(tmp_path / "clean")
    assert summary.new_revisions == 60 and summary.revisions == 60


def _blob_count(wd: Path) -> int:
    root = wd / "store" / "blobs"
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")) if root.exists() else 0


def test_kill_9_mid_pull_then_resume_matches_an_uninterrupted_run(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    for n in range(4):
        add_doc(ds, f"doc {n}", 40, comments=3, image=(n == 0))
    env = {"DOCPIPE_ACCESS_TOKEN": TOKEN}
    with running(ds, latency=0.01) as emu:
        args = ["pull", "--folder", ds.root_id, "--drive-endpoint", emu.url, "--jobs", "4", "--max-qps", "200", "--json"]
        proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *args, "--workdir", str(tmp_path / "killed")],
                                env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                cwd=tmp_path)
        try:
            deadline = time.monotonic() + 60
            while _blob_count(tmp_path / "killed") < 30 and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.01)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
        assert proc.returncode == -signal.SIGKILL, "pull finished before it could be killed"
        exported_before = exports_of(emu)
        stored_before = _blob_count(tmp_path / "killed")
        assert 30 <= stored_before < 160
        emu.reset_counters()
        resumed = cli([*args, "--workdir", str(tmp_path / "killed")], env=env)
        assert resumed.returncode == 0, resumed.stderr
        exported_after = exports_of(emu)
        clean = cli([*args, "--workdir", str(tmp_path / "clean")], env=env)
        assert clean.returncode == 0, clean.stderr
    assert snapshot(tmp_path / "killed") == snapshot(tmp_path / "clean")
    # Nothing already stored was downloaded again: only requests in flight at the kill repeat.
    assert len(set(exported_before) & set(exported_after)) <= 4
    assert len(exported_before) + len(exported_after) <= 160 + 4
    assert json.loads(resumed.stdout)["revisions"] == 160


def test_unknown_folder_is_exit_2_with_one_line(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with running(new_dataset()) as emu:
        r = cli(["pull", "--folder", "1NoSuchFolderxxxxxxxxxxxxxxxxxxxx", "--drive-endpoint", emu.url,
                 "--workdir", str(tmp_path)], env={"DOCPIPE_ACCESS_TOKEN": TOKEN})
    assert r.returncode == 2
    assert r.stderr == "docpipe: error: folder 1NoSuchFolderxxxxxxxxxxxxxxxxxxxx not found, or not shared with these credentials\n"


def test_a_doc_is_not_a_folder(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    doc = add_doc(ds, "a doc", 1)
    with running(ds) as emu:
        with pytest.raises(BadInput, match=f"{doc} is not a folder"):
            pull(doc, workdir=tmp_path, endpoint=emu.url)


def test_bad_token_is_exit_2_and_never_printed(tmp_path: Path) -> None:
    with running(new_dataset()) as emu:
        r = cli(["pull", "--drive-endpoint", emu.url, "--workdir", str(tmp_path), "--json"],
                env={"DOCPIPE_ACCESS_TOKEN": "ya29.not-the-right-one", "DOCPIPE_FOLDER": emu.root_folder_id})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == "docpipe: error: Drive rejected the credentials (DOCPIPE_ACCESS_TOKEN)\n"


def test_settings_come_from_docpipe_toml(tmp_path: Path) -> None:
    ds = new_dataset()
    add_doc(ds, "configured", 2)
    with running(ds) as emu:
        (tmp_path / "docpipe.toml").write_text(
            f'[drive]\nfolder = "{ds.root_id}"\nendpoint = "{emu.url}"\njobs = 2\nmax_qps = 20\n')
        r = cli(["pull", "--json"], env={"DOCPIPE_ACCESS_TOKEN": TOKEN}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["revisions"] == 2
    assert (tmp_path / ".docpipe" / "store" / "folder.json").is_file()


def test_a_folder_flag_picks_that_folders_settings(tmp_path: Path) -> None:
    # With several [[folders]], `pull --folder ID` uses ID's own [drive] settings, as `run --folder ID` does.
    ds = new_dataset()
    add_doc(ds, "second folder's doc", 2)
    with running(ds) as emu:
        (tmp_path / "docpipe.toml").write_text(
            '[[folders]]\nid = "1FirstFolderxxxxxxxxxxxxxxxxxxxx"\n[folders.drive]\nendpoint = "http://127.0.0.1:9/"\n'
            f'[[folders]]\nid = "{ds.root_id}"\n[folders.drive]\nendpoint = "{emu.url}"\n')
        r = cli(["pull", "--folder", ds.root_id, "--workdir", str(tmp_path / "wd"), "--json"],
                env={"DOCPIPE_ACCESS_TOKEN": TOKEN}, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["revisions"] == 2 and read_folder(tmp_path / "wd")["id"] == ds.root_id


def test_per_doc_problems_are_skipped_and_the_rest_syncs(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    ok = add_doc(ds, "fine", 2)
    denied = add_doc(ds, "private history", 2)
    vanishing = add_doc(ds, "about to go", 2)
    garbled = add_doc(ds, "garbled comments", 2, comments=1)
    no_links = add_doc(ds, "no export links", 2)
    ds.deny_revisions(denied)

    def rule(method: str, path: str):  # type: ignore[no-untyped-def]
        if f"/files/{vanishing}/revisions" in path and vanishing in ds.files:
            ds.delete(vanishing)  # deleted between the folder listing and its revisions
        if f"/files/{garbled}/comments" in path:
            return 200, b'{"comments": [{"id": "x", "createdTime": '
        if f"/files/{no_links}/revisions" in path:
            return 200, b'{"revisions": [{"id": "1", "modifiedTime": "2024-01-01T00:00:00.000Z"}]}'
        return None

    with running(ds) as emu, Proxy(emu.url, rule) as proxy:
        r = cli(["pull", "--folder", ds.root_id, "--drive-endpoint", proxy.url, "--workdir", str(tmp_path), "--json"],
                env={"DOCPIPE_ACCESS_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["docs"], out["revisions"], out["new_revisions"]) == (1, 2, 2)
    reasons = {s["id"]: s["reason"] for s in out["skipped"]}
    assert reasons == {
        denied: "no permission to read its revisions (HTTP 403 insufficientFilePermissions)",
        vanishing: "deleted during the pull (HTTP 404)",
        garbled: f"comments of doc {garbled}: malformed response from Drive",
        no_links: f"revisions of doc {no_links}: malformed response from Drive (a revision lacks id, modifiedTime or an HTML export link)",
    }
    assert read_folder(tmp_path)["docs"] == [ok]
    assert len(read_doc(tmp_path, ok)["revisions"]) == 2
    lines = r.stderr.splitlines()
    assert len(lines) == 4 and all(line.startswith("docpipe: skipped doc ") for line in lines)
    assert f"docpipe: skipped doc {denied} (private history): no permission to read its revisions (HTTP 403 insufficientFilePermissions)" in lines


def test_giving_up_names_doc_and_revision_and_keeps_the_store_consistent(
        token_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    ok = add_doc(ds, "fine", 2)
    flaky = add_doc(ds, "flaky", 2)
    with running(ds) as emu:
        # Every export of revision 2 of one doc answers 503, through the emulator's fault hook.
        record = emu._record

        def faulty(method, path, q, faultable=True):  # type: ignore[no-untyped-def]
            fault = record(method, path, q, faultable)
            if path.endswith("/Export") and q.get("id") == flaky and q.get("revision") == "2":
                return "503"
            return fault

        monkeypatch.setattr(emu, "_record", faulty)
        with pytest.raises(DocpipeError) as err:
            _pull(emu, tmp_path, retry=RetryPolicy(tries=3, base=0.001, cap=0.001))
    assert err.value.message == f"doc {flaky} revision 2 export: gave up after 3 tries, last: HTTP 503 backendError"
    assert read_folder(tmp_path)["docs"] == [ok]  # the flaky doc has no JSON yet, so nothing dangles
    assert not (tmp_path / "store" / "docs" / f"{flaky}.json").exists()


def test_only_file_ids_pulls_one_doc_without_walking(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    one = add_doc(ds, "the workshop", 3)
    other = add_doc(ds, "another", 3)
    with running(ds) as emu:
        summary = pull(ds.root_id, workdir=tmp_path, endpoint=emu.url, only_file_ids=[one], quiet=True)
        assert "/drive/v3/files" not in paths_of(emu)
        with pytest.raises(BadInput, match="not found"):
            pull(ds.root_id, workdir=tmp_path, endpoint=emu.url, only_file_ids=["1Missingxxxxxxxxxxxxxxxxxxxxxx"], quiet=True)
    assert summary.docs == 1 and summary.revisions == 3
    assert read_folder(tmp_path)["docs"] == [one]
    with running(ds) as emu:
        second = pull(ds.root_id, workdir=tmp_path, endpoint=emu.url, only_file_ids=[other], quiet=True)
    assert (second.docs, second.revisions, second.new_revisions) == (2, 6, 3)  # totals cover the docs not named
    assert read_folder(tmp_path)["docs"] == sorted([one, other])


def test_a_shared_drive_folder_is_listed_in_its_drive(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    doc = add_doc(ds, "team doc", 1)

    def rule(method: str, path: str):  # type: ignore[no-untyped-def]
        if path.startswith(f"/drive/v3/files/{ds.root_id}?"):  # the root says it lives in a shared drive
            return 200, json.dumps({"id": ds.root_id, "name": "Team", "mimeType": "application/vnd.google-apps.folder",
                                    "driveId": "0ASharedDriveId"}).encode()
        return None

    with running(ds) as emu, Proxy(emu.url, rule) as proxy:
        _pull(emu, tmp_path, endpoint=proxy.url)
        listing = [q for _, p, q in emu.requests if p == "/drive/v3/files"]
    assert listing and all(q["corpora"] == "drive" and q["driveId"] == "0ASharedDriveId"
                           and q["supportsAllDrives"] == q["includeItemsFromAllDrives"] == "true" for q in listing)
    assert read_folder(tmp_path)["docs"] == [doc] and read_folder(tmp_path)["name"] == "Team"


def test_a_new_comment_alone_costs_no_export(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = new_dataset()
    doc = add_doc(ds, "discussed", 3, comments=1)
    with running(ds) as emu:
        _pull(emu, tmp_path)
        ds.add_comment(doc, "cy", "typo in step 2", "2024-11-01T00:00:00Z")
        emu.reset_counters()
        summary = _pull(emu, tmp_path)
        assert exports_of(emu) == []
    assert summary.new_revisions == 0 and summary.comments == 2
    assert read_doc(tmp_path, doc)["comments"][-1]["content"] == "typo in step 2"


def test_text_summary_and_missing_folder(tmp_path: Path) -> None:
    ds = new_dataset()
    add_doc(ds, "one", 2)
    ds.add_file("notes.txt", "text/plain", b"hi")
    with running(ds) as emu:
        r = cli(["pull", "--folder", ds.root_id, "--drive-endpoint", emu.url, "--workdir", str(tmp_path)],
                env={"DOCPIPE_ACCESS_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    first, skipped = r.stdout.splitlines()
    assert first.startswith(f"pulled folder {ds.root_id}: 1 docs, 2 revisions (2 new)")
    assert skipped.endswith("(notes.txt): not a Google Doc (text/plain)")
    r = cli(["pull", "--workdir", str(tmp_path)], cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr == "docpipe: error: no Drive folder: pass --folder, set DOCPIPE_FOLDER, or set [drive] folder in docpipe.toml\n"


def test_images_on_other_hosts_are_never_fetched(token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A doc (anyone may edit one) points an image at another address; pull must not go there.
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(b"\x89PNG")

        def log_message(self, *args: object) -> None:
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        ds = new_dataset()
        fid = ds.add_doc("hostile")
        src = f"http://127.0.0.1:{other.server_address[1]}/internal/admin.png"
        ds.add_revision(fid, revision_html("hostile", 0).replace("</body>", f'<p><img src="{src}"></p></body>'),
                        "ada", "2024-01-01T00:00:00Z")
        with running(ds) as emu:
            _pull(emu, tmp_path)
        assert hits == []
        assert read_doc(tmp_path, fid)["revisions"][0]["images"] == []
    finally:
        other.shutdown()
        other.server_close()


def test_google_image_hosts() -> None:
    from pipeline.drive.images import google_image_host

    assert google_image_host("https://lh7-rt.googleusercontent.com/docsz/AD_4nX")
    assert google_image_host("https://docs.google.com/drawings/d/x/image")
    assert not google_image_host("http://lh7-rt.googleusercontent.com/docsz/AD")  # not https
    assert not google_image_host("https://googleusercontent.com.evil.example/x.png")
    assert not google_image_host("https://169.254.169.254/latest/meta-data")


# ------------------------------------------------------------------ the changes feed


@pytest.fixture
def tree():  # type: ignore[no-untyped-def]
    """Two folders deep, one doc each, and a folder outside the pulled tree."""
    ds = new_dataset()
    sub = ds.add_folder("Workshops")
    deep = ds.add_folder("Archive", parent=sub)
    other = ds.add_folder("Elsewhere")
    ds.get(other).parents = []  # someone else's Drive
    ids = {"sub": sub, "deep": deep, "other": other,
           "top": add_doc(ds, "top", 2, comments=1), "lab": add_doc(ds, "lab", 2, parent=sub, comments=2),
           "old": add_doc(ds, "old", 2, parent=deep), "stray": add_doc(ds, "stray", 2, parent=other)}
    return ds, ids


def _api_calls(emu) -> list[str]:  # type: ignore[no-untyped-def]
    return [path for _, path, _ in emu.requests if not path.startswith("/feeds/")]


def test_doc_moved_out_becomes_a_deletion_commit(tree, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = tree
    with running(ds) as emu:
        _pull(emu, tmp_path)
        assert cli(["replay", "--workdir", str(tmp_path)]).returncode == 0
        ds.move(ids["lab"], ids["other"], "2024-09-01T00:00:00Z")
        emu.reset_counters()
        summary = _pull(emu, tmp_path)
        calls = _api_calls(emu)
    assert summary.how == "changes" and calls == ["/drive/v3/changes"]
    assert read_doc(tmp_path, ids["lab"])["removed"] == {"time": "2024-09-01T00:00:00.000Z", "reason": "removed"}
    assert ids["lab"] not in read_folder(tmp_path)["docs"]
    out = cli(["replay", "--workdir", str(tmp_path)])
    assert out.returncode == 0, out.stderr
    log = subprocess.run(["git", "-C", str(tmp_path / "archive"), "log", "-1", "--name-status", "--format=%s"],
                         capture_output=True, text=True, check=True).stdout
    assert log.startswith("Remove ") and "\nD\t" in log


def test_doc_moved_in_is_pulled_with_its_history(tree, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = tree
    with running(ds) as emu:
        _pull(emu, tmp_path)
        assert not (tmp_path / "store" / "docs" / f"{ids['stray']}.json").exists()
        ds.move(ids["stray"], ids["deep"], "2024-09-01T00:00:00Z")
        emu.reset_counters()
        summary = _pull(emu, tmp_path)
        calls = sorted(_api_calls(emu))
    doc = read_doc(tmp_path, ids["stray"])
    assert doc["folder_path"] == ["Workshops", "Archive"] and len(doc["revisions"]) == 2 and doc["removed"] is None
    assert ids["stray"] in read_folder(tmp_path)["docs"] and summary.docs == 4
    assert calls == sorted(["/drive/v3/changes", f"/drive/v3/files/{ids['stray']}/revisions",
                            f"/drive/v3/files/{ids['stray']}/comments"])


def test_folder_renamed_updates_paths_without_listing(tree, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = tree
    with running(ds) as emu:
        _pull(emu, tmp_path)
        ds.rename(ids["sub"], "Labs", "2024-09-01T00:00:00Z")
        emu.reset_counters()
        _pull(emu, tmp_path)
        calls = _api_calls(emu)
    assert calls == ["/drive/v3/changes"]
    assert read_doc(tmp_path, ids["lab"])["folder_path"] == ["Labs"]
    assert read_doc(tmp_path, ids["old"])["folder_path"] == ["Labs", "Archive"]
    assert read_doc(tmp_path, ids["top"])["folder_path"] == []


def test_new_folder_with_a_doc_is_listed_alone(tree, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = tree
    with running(ds) as emu:
        _pull(emu, tmp_path)
        new = ds.add_folder("Spring", parent=ids["deep"], time="2024-09-01T00:00:00Z")
        fresh = add_doc(ds, "fresh", 1, parent=new)
        emu.reset_counters()
        _pull(emu, tmp_path)
        listings = [q.get("q", "") for _, path, q in emu.requests if path == "/drive/v3/files"]
    assert listings == [f"'{new}' in parents and trashed = false"]
    assert read_doc(tmp_path, fresh)["folder_path"] == ["Workshops", "Archive", "Spring"]


def test_comment_without_edit_is_merged_incrementally(tree, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = tree
    lab = ids["lab"]
    with running(ds) as emu:
        _pull(emu, tmp_path)
        before = read_doc(tmp_path, lab)["comments"]
        first = before[0]["id"]
        ds.add_reply(lab, first, "cy", "", "2024-09-01T00:00:00Z", action="resolve")
        cid = ds.add_comment(lab, "bob", "a new question", "2024-09-02T00:00:00Z")
        emu.reset_counters()
        summary = _pull(emu, tmp_path)
        since = [q.get("startModifiedTime") for _, path, q in emu.requests if path.endswith("/comments")]
    after = read_doc(tmp_path, lab)["comments"]
    assert since == [max(c["modifiedTime"] for c in before)]  # only threads modified since the last pull
    assert [c["id"] for c in after] == [c["id"] for c in before] + [cid]
    assert after[0]["resolved"] is True and after[0]["replies"][-1]["action"] == "resolve"
    assert after[1] == before[1]  # an untouched thread is kept as stored
    assert summary.new_revisions == 0


def test_expired_token_falls_back_to_a_walk(tree, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = tree
    with running(ds) as emu:
        _pull(emu, tmp_path)
        ds.add_revision(ids["old"], revision_html("old", 9), "ada", "2024-09-01T00:00:00Z")
        ds.expire_page_tokens()
        emu.reset_counters()
        summary = _pull(emu, tmp_path)
        listed = [path for _, path, q in emu.requests if path == "/drive/v3/files"]
        emu.reset_counters()
        again = _pull(emu, tmp_path)
    assert summary.how == "walk" and len(listed) == 3  # root, Workshops, Archive
    assert len(read_doc(tmp_path, ids["old"])["revisions"]) == 3
    assert again.how == "changes" and again.requests == 1  # the walk stored a fresh token


def test_reconcile_walk_reports_what_the_feed_missed(tree, token_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds, ids = tree
    with running(ds) as emu:
        _pull(emu, tmp_path, reconcile_every=2)
        ds.drop_next_change = True
        ds.add_revision(ids["old"], revision_html("old", 9), "ada", "2024-09-01T00:00:00Z")
        missed = _pull(emu, tmp_path, reconcile_every=2)
        assert missed.how == "changes" and len(read_doc(tmp_path, ids["old"])["revisions"]) == 2
        ds.drop_next_change = True
        ds.add_revision(ids["top"], revision_html("top", 9), "ada", "2024-09-02T00:00:00Z")
        ds.add_revision(ids["lab"], revision_html("lab", 9), "bob", "2024-09-02T00:00:00Z")  # seen by the feed
        summary = _pull(emu, tmp_path, reconcile_every=2)
    assert summary.how == "walk" and summary.reconciled == sorted([ids["old"], ids["top"]])
    assert "reconciled (missed by the changes feed)" in summary.text()
    assert len(read_doc(tmp_path, ids["old"])["revisions"]) == 3
    assert len(read_doc(tmp_path, ids["lab"])["revisions"]) == 3


def test_history_that_starts_after_creation_is_said(token_env, tmp_path: Path) -> None:
    ds = new_dataset()
    whole = add_doc(ds, "whole", 2)
    late = ds.add_doc("late", time="2023-01-01T00:00:00Z")  # Drive listed nothing of its first year
    ds.add_revision(late, revision_html("late", 1), "ada", "2024-03-01T00:00:00Z")
    with running(ds) as emu:
        summary = _pull(emu, tmp_path)
    assert summary.partial_history == [late] and "partial_history" in summary.text()
    assert read_doc(tmp_path, late)["partial_history"] is True
    assert read_doc(tmp_path, whole)["partial_history"] is False
    # The archive says it too, in the doc's first commit and only there.
    from pipeline.archive import open_main
    from pipeline.replay import replay

    replay(tmp_path, quiet=True)
    repo, head = open_main(tmp_path)
    firsts = {c.message_trailers.get("Drive-File-Id"): c.message
              for c in repo.walk(head.id) if c.message_trailers.get("Drive-Event") == "revision"}
    assert "Partial history: Drive lists no revision from this doc's creation (created 2023-01-01" in firsts[late]
    assert "Partial history" not in firsts[whole]
