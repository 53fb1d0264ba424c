"""docpipe replay: the store as faithful, deterministic git history (issue 3)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pygit2
import pytest

from pipeline.convert import convert_html, front_matter
from pipeline.errors import BadInput
from pipeline.replay import replay
from pipeline.replay.paths import PathTable, image_name, slugify
from tests.support.replay import (
    NO_USER,
    REMOVED,
    RENAMED,
    StoreWriter,
    comment_event_count,
    git,
    growing_store,
    hard_store,
    history,
    html_page,
    manifest_of,
    rfc3339,
    to_legacy_layout,
    tree_files,
    user,
)

EMAILS = {"Ada Lovelace": "ada@example.org", "Zoë Ünïcode": "zoe@example.org", "Margaret Hamilton": "mh@example.org"}


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("hard")
    specs = hard_store(workdir / "store")
    result = replay(workdir, quiet=True)
    return workdir, specs, result, history(workdir / "archive")


def _utc(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())


def test_every_revision_is_one_commit_with_its_author_time_and_trailers(hard):
    workdir, specs, result, commits = hard
    by_rev = {}
    for c in commits:
        rev = c["trailers"].get("Drive-Revision-Id")
        if rev:
            assert (c["trailers"]["Drive-File-Id"], rev) not in by_rev, "revision replayed twice"
            by_rev[(c["trailers"]["Drive-File-Id"], rev)] = c
    expected = {(s.id, r["id"]): r for s in specs.values() for r in s.revisions}
    assert len(expected) == 450 and set(by_rev) == set(expected)
    for key, rev in expected.items():
        c = by_rev[key]
        assert c["time"] == c["committer_time"] == _utc(rev["modifiedTime"])
        assert c["committer"] == ("docpipe", "docpipe@localhost")
        who = rev["lastModifyingUser"]
        if key == NO_USER:
            assert who is None and c["author"][0] == "Unknown"
            assert c["author"][1].endswith("@users.noreply.docs.google.com")
        elif who.get("emailAddress"):
            assert c["author"] == (who["displayName"], who["emailAddress"])
        else:  # no email from Google: a stable placeholder, same for every commit of that user
            assert c["author"][1] == slugify(who["displayName"].replace("<", "").replace(">", "")) + "@users.noreply.docs.google.com"


def test_every_comment_event_is_one_commit(hard):
    workdir, specs, result, commits = hard
    comment_commits = [c for c in commits if "Drive-Comment-Id" in c["trailers"]]
    assert len({s.id for s in specs.values() if s.comments}) > 5
    assert sum(len(s.comments) for s in specs.values()) == 130
    assert len(comment_commits) == comment_event_count(specs)
    seen = set()
    for c in comment_commits:
        t = c["trailers"]
        key = (t["Drive-File-Id"], t["Drive-Comment-Id"], t.get("Drive-Reply-Id"), t["Drive-Event"])
        assert key not in seen
        seen.add(key)
    threads = {(s.id, cm["id"]): cm for s in specs.values() for cm in s.comments}
    new_threads = [c for c in comment_commits if c["trailers"]["Drive-Event"] == "comment"]
    assert len(new_threads) == 130
    for c in new_threads:
        cm = threads[(c["trailers"]["Drive-File-Id"], c["trailers"]["Drive-Comment-Id"])]
        assert c["time"] == _utc(cm["createdTime"])
        assert c["author"][0] == cm["author"]["displayName"].replace("<", "").replace(">", "")
    kinds = {c["trailers"]["Drive-Event"] for c in comment_commits}
    assert kinds == {"comment", "reply", "resolve", "reopen", "delete"}
    # No commit is left unexplained: revisions, comment events, the rename and the removal.
    assert len(commits) == 450 + comment_event_count(specs) + 2 == result.commits


def test_history_is_in_time_order_on_one_line(hard):
    _, _, _, commits = hard
    assert commits[0]["parents"] == 0 and all(c["parents"] == 1 for c in commits[1:])
    times = [c["time"] for c in commits]
    assert times == sorted(times)


def test_final_markdown_is_the_last_revisions_conversion(hard):
    workdir, specs, _, _ = hard
    files = tree_files(workdir / "archive")
    manifest = manifest_of(workdir / "archive")
    assert manifest["folder"] == {"id": "root-hard", "name": "Hard Folder",
                                  "webViewLink": "https://drive.google.com/drive/folders/root-hard"}
    live = {fid for fid in specs if fid != REMOVED}
    assert set(manifest["docs"]) == live
    store = workdir / "store"
    for fid in sorted(live):
        spec, entry = specs[fid], manifest["docs"][fid]
        last = spec.revisions[-1]
        html = (store / "blobs" / last["html"][:2] / last["html"]).read_text()
        slug = entry["path"].rsplit("/", 1)[-1][:-3]
        title = (spec.titles[-1]["name"] if spec.titles else spec.title)
        images = {i["src"]: f"{slug}.assets/{image_name(i['blob'], i['mimeType'])}" for i in last["images"]}
        expected = convert_html(html, title=title, images=images,
                                comments_href=f"{slug}.comments.md" if spec.comments else None,
                                extra_meta={"drive_id": fid})
        assert files[entry["path"]].decode() == expected
        assert front_matter(expected)["drive_id"] == fid
        assert entry["title"] == title and entry["webViewLink"].endswith(f"/{fid}/edit")
        for i in last["images"]:
            stem = entry["path"][:-3]
            assert files[f"{stem}.assets/{image_name(i['blob'], i['mimeType'])}"] == (store / "blobs" / i["blob"][:2] / i["blob"]).read_bytes()


def test_paths_are_safe_distinct_and_mirror_folders(hard):
    workdir, specs, _, _ = hard
    files = tree_files(workdir / "archive")
    for path in files:
        parts = path.split("/")
        assert all(p and p not in (".", "..") and "\\" not in p and ":" not in p for p in parts)
        assert path.startswith(".docpipe/") or not any(p.startswith(".") for p in parts), path
    manifest = manifest_of(workdir / "archive")["docs"]
    docs = [e["path"] for e in manifest.values()]
    assert len(set(docs)) == len(docs)
    assert manifest["doc-02"]["path"] == "etc-passwd.md"
    assert manifest["doc-03"]["path"] == "design/a-b-c.md"
    assert manifest["doc-05"]["path"] == "design/sub-unicode/日本語のドキュメント.md"
    # Same title in the same folder: fileId order decides who gets the suffix.
    assert manifest["doc-06"]["path"] == "design/sub-unicode/same-title.md"
    assert manifest["doc-07"]["path"] == "design/sub-unicode/same-title-2.md"
    assert manifest["doc-14"]["path"] == "same-title.md"
    assert {manifest["doc-04"]["path"], manifest["doc-15"]["path"]} == {"design/untitled.md", "design/untitled-2.md"}
    assert manifest["doc-09"]["path"] == "workshops/con-doc.md"
    assert manifest["doc-08"]["path"] == "folder/git.md"
    assert manifest["doc-01"]["comments"] == "design-overview.comments.md"


def test_removed_doc_gets_a_deletion_commit_and_keeps_its_history(hard):
    workdir, _, _, commits = hard
    removal = [c for c in commits if c["trailers"].get("Drive-Event") == "removed"]
    assert len(removal) == 1 and removal[0]["trailers"]["Drive-File-Id"] == REMOVED
    assert removal[0] is commits[-1]
    assert "doomed.md" not in tree_files(workdir / "archive")
    assert "doomed.md" in tree_files(workdir / "archive", "refs/heads/main~1")
    assert len(git(workdir / "archive", "log", "--format=%H", "main", "--", "doomed.md").split()) > 20


def test_rename_is_followed_by_git_log(hard):
    workdir, specs, _, commits = hard
    archive = workdir / "archive"
    path = "workshops/2024/brand-new-name.md"
    followed = git(archive, "log", "--follow", "--format=%H", "main", "--", path).split()
    plain = git(archive, "log", "--format=%H", "main", "--", path).split()
    revisions = [c["id"] for c in commits if c["trailers"].get("Drive-File-Id") == RENAMED
                 and "Drive-Revision-Id" in c["trailers"]]
    assert len(plain) < len(revisions) and set(revisions) <= set(followed)
    names = git(archive, "log", "--follow", "--name-status", "--format=", "main", "--", path)
    assert "workshops/2024/old-name.md\tworkshops/2024/brand-new-name.md" in names


def test_comments_file_lists_every_thread_and_cannot_be_forged(hard):
    workdir, specs, _, _ = hard
    files = tree_files(workdir / "archive")
    manifest = manifest_of(workdir / "archive")["docs"]
    for fid, spec in specs.items():
        if fid == REMOVED or not spec.comments:
            continue
        text = files[manifest[fid]["comments"]].decode()
        heads = [line for line in text.splitlines() if line.startswith("## ")]
        assert len(heads) == len(spec.comments)
        for cm, head in zip(spec.comments, heads, strict=True):
            state = "deleted" if cm["deleted"] else "resolved" if cm["resolved"] else "open"
            # Headed by what a reader recognises (quote, first words), never by the Drive id.
            assert head.startswith(f"## “{cm['quotedFileContent']['value'].replace(chr(10), ' ')}” — ")
            assert head.endswith(f" · {state}") and cm["id"] not in head
    text = files[manifest["doc-01"]["comments"]].decode()
    assert text.startswith("# Comments on Design Overview\n\n## “quoted ")
    assert "## “quoted 15 second line” — Thread 15: please check · " in text
    assert "> quoted 15\n> second line\n\n**Ada Lovelace** · 2024-03-01 10:00 UTC\n\nThread 15: please check\n" in text
    assert "\n- **Zoë Ünïcode** · 2024-03-01 10:28 UTC · resolved\n" in text
    assert "**Linus &lt;T&gt;**" in text  # markup in names stays text


def test_fsck_strict_is_clean(hard):
    workdir = hard[0]
    subprocess.run(["git", "--git-dir", str(workdir / "archive"), "fsck", "--strict", "--no-dangling"],
                   check=True, capture_output=True)


def test_fresh_replays_give_the_same_main_on_any_machine(hard, tmp_path):
    """A second replay in a new directory, through the CLI, with another hash seed and no cache."""
    workdir, _, result, _ = hard
    other = tmp_path / "elsewhere"
    shutil.copytree(workdir / "store", other / "store")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", "--workdir", str(other), "--json"],
                         capture_output=True, text=True, env=env, check=True)
    summary = json.loads(out.stdout)
    assert summary["head"] == result.head and summary["commits"] == result.commits
    assert summary["converted"] > 400 and summary["cached"] == 0
    # The pack is the same bytes too (its name is the SHA-1 of its content).
    packs = [sorted(p.name for p in (w / "archive" / "objects" / "pack").iterdir()) for w in (workdir, other)]
    assert packs[0] == packs[1] and len(packs[0]) == 2


def test_cache_spares_reconversion(tmp_path):
    hard_store(tmp_path / "one" / "store", revisions=45, threads=5)
    first = replay(tmp_path / "one", quiet=True)
    shutil.copytree(tmp_path / "one" / "store", tmp_path / "two" / "store")
    shutil.copytree(tmp_path / "one" / "cache", tmp_path / "two" / "cache")
    second = replay(tmp_path / "two", quiet=True)
    # 45 revisions, and the renamed doc's current revision again under its new title.
    assert first.converted == 46 and first.cached == 0
    assert second.head == first.head and second.converted == 0 and second.cached == 46


def _small_store(workdir: Path) -> dict:
    return hard_store(workdir / "store", revisions=60, threads=20)


def test_incremental_replay_only_appends_and_noop_makes_no_commit(tmp_path):
    specs = _small_store(tmp_path)
    first = replay(tmp_path, quiet=True)
    before = history(tmp_path / "archive")
    assert replay(tmp_path, quiet=True).commits == 0
    assert replay(tmp_path, quiet=True).head == first.head
    # A new pull: two new revisions (one dated before the tip), a reply, and a new doc.
    w = StoreWriter(tmp_path / "store")
    tip_time = datetime.fromtimestamp(before[-1]["time"], UTC)
    spec = specs["doc-01"]
    for n, when in enumerate([tip_time + timedelta(hours=2), tip_time - timedelta(days=1)]):
        html = html_page("Design Overview", f"late revision {n}")
        spec.revisions.append({"id": f"late-{n}", "modifiedTime": rfc3339(when), "lastModifyingUser": user("Ada Lovelace", "ada@example.org"),
                               "html": w.blob(html.encode()), "images": []})
    spec.comments[0]["replies"].append({"id": "late-reply", "createdTime": rfc3339(tip_time + timedelta(hours=3)),
                                        "modifiedTime": rfc3339(tip_time + timedelta(hours=3)),
                                        "author": {"displayName": "Grace Hopper"}, "content": "late reply", "deleted": False})
    w.doc(spec.to_json())
    from tests.support.replay import DocSpec
    new = DocSpec("doc-99", "Same Title", [], revisions=[{"id": "n1", "modifiedTime": rfc3339(tip_time + timedelta(hours=1)),
                                                       "lastModifyingUser": None, "html": w.blob(b"<p>new</p>"), "images": []}])
    w.doc(new.to_json())
    second = replay(tmp_path, quiet=True)
    after = history(tmp_path / "archive")
    assert second.commits == 4 == len(after) - len(before)
    assert [c["id"] for c in after[: len(before)]] == [c["id"] for c in before]
    repo = pygit2.Repository(str(tmp_path / "archive"))
    assert repo.descendant_of(pygit2.Oid(hex=second.head), pygit2.Oid(hex=first.head))
    added = [(c["trailers"].get("Drive-Revision-Id") or c["trailers"].get("Drive-Reply-Id")) for c in after[len(before):]]
    assert added == ["late-1", "n1", "late-0", "late-reply"]  # older-than-tip first, then in time order
    files = tree_files(tmp_path / "archive")
    manifest = manifest_of(tmp_path / "archive")["docs"]
    assert manifest["doc-99"]["path"] == "same-title-2.md"  # the doc that had the name keeps it
    assert "late revision 0" in files[manifest["doc-01"]["path"]].decode()
    third = replay(tmp_path, quiet=True)
    assert third.commits == 0 and third.head == second.head


def test_authors_map_fills_missing_emails(tmp_path):
    hard_store(tmp_path / "store", revisions=30, threads=5)
    authors = tmp_path / "authors.toml"
    authors.write_text('"Grace Hopper" = "Grace B. Hopper <grace@navy.example>"\n"Ada Lovelace" = "Ignored <x@y.z>"\n')
    replay(tmp_path, authors=authors, quiet=True)
    found = {c["author"] for c in history(tmp_path / "archive") if "Drive-Revision-Id" in c["trailers"]}
    assert ("Grace B. Hopper", "grace@navy.example") in found
    assert ("Ada Lovelace", "ada@example.org") in found  # Google's email wins over the map
    assert not any(name == "Grace Hopper" for name, _ in found)


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(BadInput, match="no store"):
        replay(tmp_path, quiet=True)
    hard_store(tmp_path / "store", revisions=15, threads=0)
    bad = tmp_path / "authors.toml"
    bad.write_text('"Grace Hopper" = "no email here"\n')
    with pytest.raises(BadInput, match="must be"):
        replay(tmp_path, authors=bad, quiet=True)
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", "--workdir", str(tmp_path / "nowhere")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "no store" in out.stderr
    (tmp_path / "store" / "docs" / "doc-01.json").write_text("{not json")
    with pytest.raises(BadInput, match="doc-01.json"):
        replay(tmp_path, quiet=True)


def test_hostile_ids_cannot_forge_trailers(tmp_path):
    hard_store(tmp_path / "store", revisions=15, threads=0)
    doc = json.loads((tmp_path / "store" / "docs" / "doc-01.json").read_text())
    doc["revisions"][0]["id"] = "1\nDrive-File-Id: evil"
    (tmp_path / "store" / "docs" / "doc-01.json").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="invalid id"):
        replay(tmp_path, quiet=True)


def test_events_merged_on_disk_come_out_as_sorting_them_in_memory_did(hard):
    """The spool's order is Contract 2's (time, fileId, kind, id), ties kept in the order added,
    as the stable in-memory sort it replaced: same order, same commits, same SHAs."""
    from pipeline.replay.events import doc_events
    from pipeline.replay.spool import Spool
    from pipeline.store import Store

    workdir = hard[0]
    events = [e for doc in Store.at(workdir).snapshot().docs() for e in doc_events(doc)]
    t = events[0].time
    # Ties and ids that compare differently as bytes than as ASCII would: a non-BMP id, a lone
    # surrogate (JSON allows one), the same instant in two docs, and an event whose sort key ties
    # with another's (the one added first stays first).
    odd = [type(e)(t, e.file_id, e.kind, i, revision={**(e.revision or {}), "id": i}) for e, i in
           zip(events[:4], ["\U0001f600", "\ufb01x", "\ud800", "Zz"], strict=True)]
    odd.append(dataclasses.replace(odd[0], revision={**(odd[0].revision or {}), "html": "0" * 64}))
    events[1:1] = odd[-1:]
    events += odd[:-1]
    spool = Spool()
    try:
        for n in range(0, len(events), 97):  # added in runs, as a doc at a time is
            spool.add_events(events[n: n + 97])
        merged = list(spool.sorted_events())
    finally:
        spool.close()
    assert merged == sorted(events, key=lambda e: e.sort_key)
    assert len(merged) > 700 and merged.index(odd[-1]) + 1 == merged.index(odd[0])


@pytest.mark.parametrize("title, slug", [
    ("../../etc/passwd", "etc-passwd"), ("a/b:c*?", "a-b-c"), ("", "untitled"), ("  ", "untitled"),
    (".git", "git"), ("CON", "con-doc"), ("Café Déjà vu", "cafe-deja-vu"), ("日本語のドキュメント", "日本語のドキュメント"),
    ("x\u200b\u200cy", "x-y"), ("mcp-376-cswg-workshop-virtual-desktops", "mcp-376-cswg-workshop-virtual-desktops"),
    ("a" * 300, "a" * 80),
])
def test_slugs(title, slug):
    assert slugify(title) == slug


def test_name_header_reads_the_front_matter_of_each_markdown():
    from pipeline.replay.conversion import name_header

    head = "---\ntitle: Design\nname: mcp-101-design\ndrive_id: d1\n---\n"
    assert name_header(head + "# Design\n\nfirst\n") == name_header(head + "second\n") == "mcp-101-design"
    assert name_header(head.replace("mcp-101-design", "'mcp-102: x'") + "body\n") == "mcp-102: x"
    assert name_header("---\ntitle: Design\ndrive_id: d1\n---\nname: not front matter\n") is None
    assert name_header("name: no front matter\n") is None


def test_path_table_is_first_come_and_keeps_holders():
    table = PathTable()
    assert table.claim("b", ("x",), "t") == "x/t"
    assert table.claim("a", ("x",), "t") == "x/t-2"
    assert table.claim("b", ("x",), "t") == "x/t"  # unchanged wish: same stem
    assert table.claim("b", ("x",), "u") == "x/u"  # renamed: the old stem is free again
    assert table.claim("c", ("x",), "t") == "x/t"
    assert table.claim("a", ("x",), "t") == "x/t-2"  # the suffixed doc does not move
    assert table.claim("d", ("X",), "T") == "X/T-3"  # case-insensitive file systems: no clash


def test_end_to_end_through_the_drive_emulator_and_pull(tmp_path, monkeypatch):
    support = pytest.importorskip("tests.support.pull")
    pull = pytest.importorskip("pipeline.pull")
    ds = support.new_dataset()
    first = support.add_doc(ds, "mcp-101 Design", 4, comments=3, image=True)
    support.add_doc(ds, "MCP-101: design", 3, comments=0, start_day=2)
    monkeypatch.setenv("DOCPIPE_ACCESS_TOKEN", support.TOKEN)
    with support.running(ds) as emu:
        pull.pull(support.ROOT_ID, workdir=tmp_path, endpoint=emu.url, quiet=True)
    result = replay(tmp_path, quiet=True)
    store_docs = [json.loads(p.read_text()) for p in sorted((tmp_path / "store" / "docs").glob("*.json"))]
    commits = history(tmp_path / "archive")
    revs = {(d["id"], r["id"]) for d in store_docs for r in d["revisions"]}
    assert {(c["trailers"]["Drive-File-Id"], c["trailers"]["Drive-Revision-Id"]) for c in commits
            if "Drive-Revision-Id" in c["trailers"]} == revs
    manifest = manifest_of(tmp_path / "archive")["docs"]
    assert sorted(e["path"] for e in manifest.values()) == ["mcp-101-design-2.md", "mcp-101-design.md"]
    assert manifest[first]["comments"] == "mcp-101-design.comments.md"
    assert replay(tmp_path, quiet=True).head == result.head


def test_objects_are_the_ones_libgit2_makes_of_the_same_content(hard, tmp_path):
    """Replay writes blobs, trees and commits itself (into its pack); libgit2 given the same
    files, modes, authors and messages makes objects with the very same ids."""
    workdir = hard[0]
    repo = pygit2.Repository(str(workdir / "archive"))
    other = pygit2.init_repository(str(tmp_path / "other"), bare=True)

    def rebuilt(tree: pygit2.Tree) -> pygit2.Oid:
        builder = other.TreeBuilder()
        for entry in tree:
            if entry.type_str == "tree":
                builder.insert(entry.name, rebuilt(repo[entry.id]), pygit2.enums.FileMode.TREE)
            else:
                builder.insert(entry.name, other.create_blob(repo[entry.id].data), entry.filemode)
        return builder.write()

    tip = repo.references["refs/heads/main"].peel(pygit2.Commit)
    checked = 0
    for commit in [tip, *tip.parents, repo.revparse_single("main~400").peel(pygit2.Commit)]:
        tree = rebuilt(commit.tree)
        assert tree == commit.tree_id
        # libgit2's bytes of this commit (it needs the parents: the archive has them), not written.
        text = repo.create_commit_string(pygit2.Signature(commit.author.name, commit.author.email, commit.author.time, 0),
                                         pygit2.Signature(commit.committer.name, commit.committer.email,
                                                          commit.committer.time, 0),
                                         commit.message, tree, commit.parent_ids).encode("utf-8")
        again = hashlib.sha1(b"commit %d\0" % len(text) + text).hexdigest()
        assert again == str(commit.id)
        checked += 1
    assert checked == 3


def test_one_pack_of_deltas_as_small_as_git_gc_makes_it(tmp_path):
    """Each version of a doc, a comments file or a folder is packed as a delta against the one
    before: the archive is no bigger than `git gc` and `git repack -adf` (deltas searched anew)
    make it, where whole objects made it several times bigger (issue #23)."""
    growing_store(tmp_path / "store")
    replay(tmp_path, quiet=True)
    archive = tmp_path / "archive"
    packs = list((archive / "objects" / "pack").glob("*.pack"))
    assert len(packs) == 1 and not list((archive / "objects").glob("[0-9a-f][0-9a-f]"))
    git(archive, "fsck", "--strict", "--no-dangling")
    chains = git(archive, "verify-pack", "-v", str(packs[0].with_suffix(".idx")))
    assert "chain length = 20" in chains and "chain length = 51" not in chains
    ours = packs[0].stat().st_size
    sizes = {}
    for how, args in (("gc", ["gc", "-q"]), ("repack -adf", ["repack", "-a", "-d", "-f", "-q"])):
        copy = tmp_path / how.replace(" ", "")
        shutil.copytree(archive, copy)
        git(copy, *args)
        sizes[how] = sum(p.stat().st_size for p in (copy / "objects" / "pack").glob("*.pack"))
    assert ours <= 1.5 * sizes["gc"] and ours <= 1.5 * sizes["repack -adf"], (ours, sizes)
    # Whole objects, compressed: what the archive would be without deltas.
    repo = pygit2.Repository(str(archive))
    whole = sum(len(zlib.compress(repo[pygit2.Oid(hex=line.split()[0])].read_raw()))
                for line in chains.splitlines() if line[:40].isalnum() and len(line.split()) >= 5)
    assert ours < whole / 2, (ours, whole)


def test_legacy_archive_is_migrated_in_one_commit_then_replays_as_before(tmp_path):
    """An archive replayed before the manifest's split keeps one .docpipe/manifest.json: the
    first replay moves it to one file per doc in a commit of its own, changing nothing else; a
    replay with nothing new then makes no commit, and new events append as before."""
    from pipeline.archive import LEGACY_MANIFEST, MANIFEST, open_main, read_manifest

    specs = _small_store(tmp_path)
    fresh = replay(tmp_path, quiet=True)
    fresh_files = tree_files(tmp_path / "archive")
    legacy_head = to_legacy_layout(tmp_path / "archive")
    repo, tip = open_main(tmp_path)
    before = read_manifest(repo, tip)
    assert LEGACY_MANIFEST in tip.tree and MANIFEST not in tip.tree and before is not None
    assert len(history(tmp_path / "archive")) == fresh.commits

    moved = replay(tmp_path, quiet=True)
    assert (moved.commits, moved.events, moved.migrated) == (1, 0, True)
    commits = history(tmp_path / "archive")
    assert commits[-2]["id"] == legacy_head and commits[-1]["author"] == ("docpipe", "docpipe@localhost")
    assert commits[-1]["time"] == commits[-2]["time"] and not commits[-1]["trailers"]
    changed = git(tmp_path / "archive", "diff", "--name-only", legacy_head, "main").split()
    assert changed and all(path.startswith(".docpipe/") for path in changed)
    assert tree_files(tmp_path / "archive") == fresh_files  # the same tree a fresh replay writes
    repo, tip = open_main(tmp_path)
    assert read_manifest(repo, tip) == before
    again = replay(tmp_path, quiet=True)
    assert (again.commits, again.head) == (0, moved.head)

    w = StoreWriter(tmp_path / "store")
    spec = specs["doc-01"]
    spec.revisions.append({"id": "after", "modifiedTime": rfc3339(datetime(2030, 1, 1, tzinfo=UTC)),
                           "lastModifyingUser": None, "html": w.blob(html_page("Design Overview", "after").encode()),
                           "images": []})
    w.doc(spec.to_json())
    later = replay(tmp_path, quiet=True)
    assert (later.commits, later.migrated) == (1, False)
    assert history(tmp_path / "archive")[-1]["trailers"]["Drive-Revision-Id"] == "after"
    git(tmp_path / "archive", "fsck", "--strict", "--no-dangling")


def test_migrating_the_same_legacy_archive_gives_the_same_sha(tmp_path):
    _small_store(tmp_path / "a")
    replay(tmp_path / "a", quiet=True)
    to_legacy_layout(tmp_path / "a" / "archive")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    env = {**os.environ, "PYTHONHASHSEED": "7"}
    heads = [json.loads(subprocess.run([sys.executable, "-m", "pipeline.cli", "replay", "--workdir", str(tmp_path / w),
                                        "--json"], capture_output=True, text=True, env=env, check=True).stdout)["head"]
             for w in ("a", "b")]
    assert heads[0] == heads[1]


def test_a_corrupt_manifest_is_refused_alike_by_replay_render_and_push(tmp_path):
    """Replay once replaced a corrupt manifest with an empty one, losing every doc's path."""
    hard_store(tmp_path / "store", revisions=15, threads=0)
    replay(tmp_path, quiet=True)
    repo = pygit2.Repository(str(tmp_path / "archive"))
    tip = repo.references["refs/heads/main"].peel(pygit2.Commit)
    builder = repo.TreeBuilder(tip.tree)
    meta = repo.TreeBuilder(tip.tree[".docpipe"])
    meta.insert("folder.json", repo.create_blob(b"{torn"), pygit2.enums.FileMode.BLOB)
    builder.insert(".docpipe", meta.write(), pygit2.enums.FileMode.TREE)
    sig = pygit2.Signature("someone", "someone@example.org", tip.commit_time + 1, 0)
    repo.create_commit("refs/heads/main", sig, sig, "hand edit\n", builder.write(), [tip.id])
    from tests.support.replay import DocSpec
    w = StoreWriter(tmp_path / "store")  # a new doc, so replay has to write the manifest
    w.doc(DocSpec("doc-99", "New", [], revisions=[{"id": "n1", "modifiedTime": "2030-01-01T00:00:00.000Z",
                                                   "lastModifyingUser": None, "html": w.blob(b"<p>new</p>"),
                                                   "images": []}]).to_json())
    push = ["--gitea", "http://127.0.0.1:9", "--owner", "alice"]  # the archive is read before any request
    env = {**os.environ, "GITEA_TOKEN": "not-used"}
    outs = [subprocess.run([sys.executable, "-m", "pipeline.cli", stage, "--workdir", str(tmp_path), *extra],
                           capture_output=True, text=True, env=env)
            for stage, extra in (("replay", []), ("render", []), ("push", push))]
    for out in outs:
        assert out.returncode == 2, out.stderr
        assert out.stderr == "docpipe: error: .docpipe/folder.json in the archive's main is not valid JSON\n"


def _group_members(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (a killed docpipe's workers are reparented, not regrouped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == pgid and fields[0] != "Z":  # state, ppid, pgrp
            found.append(int(entry.name))
    return found


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for t in Path(f"/proc/{pid}/task").iterdir()
                for c in (t / "children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_killed_replay_leaves_no_worker_alive_and_rerun_gives_the_same_head(tmp_path):
    import signal
    import time

    hard_store(tmp_path / "ref" / "store", revisions=1500, threads=20)
    reference = replay(tmp_path / "ref", quiet=True, workers=1)
    shutil.copytree(tmp_path / "ref" / "store", tmp_path / "wd" / "store")
    env = {**os.environ, "PYTHONHASHSEED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "replay", "--workdir", str(tmp_path / "wd")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(_children(proc.pid)) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(_children(proc.pid)) >= 2, "replay never started its conversion workers"
        time.sleep(0.3)  # mid-conversion
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        time.sleep(5)
        assert _group_members(proc.pid) == []
    finally:
        for pid in _group_members(proc.pid):  # never leave strays behind, even when failing
            os.kill(pid, signal.SIGKILL)
    rerun = replay(tmp_path / "wd", quiet=True)
    assert rerun.head == reference.head
