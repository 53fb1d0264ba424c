"""Stores for the replay tests, written exactly per ARCHITECTURE.md Contract 1, and git helpers.

`StoreWriter` writes blobs and docs the way `docpipe pull` does (sorted, indented JSON, blobs
named by sha256). `hard_store()` builds the "hard folder" of issue 3: nested folders, duplicate
and hostile titles, 450 revisions, 130 comment threads, a revision without lastModifyingUser,
a rename and a removal, all generated from fixed seeds so every run writes the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

BASE = datetime(2024, 3, 1, 9, 0, 0, tzinfo=UTC)
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")


def rfc3339(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def dumps(obj: Any) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass
class StoreWriter:
    root: Path  # WORKDIR/store

    def blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.root / "blobs" / digest[:2] / digest
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return digest

    def doc(self, doc: dict) -> None:
        (self.root / "docs").mkdir(parents=True, exist_ok=True)
        (self.root / "docs" / f"{doc['id']}.json").write_bytes(dumps(doc))

    def folder(self, folder_id: str, name: str, docs: list[dict], skipped: list | None = None) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        folder = {"id": folder_id, "name": name,
                  "webViewLink": f"https://drive.google.com/drive/folders/{folder_id}",
                  "docs": sorted(d["id"] for d in docs if not d.get("removed")), "skipped": skipped or []}
        (self.root / "folder.json").write_bytes(dumps(folder))


def html_page(title: str, body: str, images: list[str] = ()) -> str:
    """A small Google-export-like page."""
    imgs = "".join(f'<p class="c1"><span><img src="{src}" alt="figure" title=""></span></p>' for src in images)
    return ('<html><head><meta content="text/html; charset=UTF-8" http-equiv="content-type">'
            '<style type="text/css">.c1{margin:0}</style></head><body class="c2">'
            f'<h1 class="c1"><span>{title}</span></h1><p class="c1"><span>{body}</span></p>{imgs}</body></html>')


def user(name: str | None, email: str | None = None) -> dict | None:
    if name is None:
        return None
    out: dict[str, Any] = {"displayName": name, "permissionId": hashlib.sha1(name.encode()).hexdigest()[:10]}
    if email:
        out["emailAddress"] = email
    return out


@dataclass
class DocSpec:
    id: str
    title: str
    folder: list[str]
    revisions: list[dict] = field(default_factory=list)
    comments: list[dict] = field(default_factory=list)
    titles: list[dict] = field(default_factory=list)
    removed: dict | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "name": self.titles[-1]["name"] if self.titles else self.title,
                "titles": self.titles or [{"name": self.title, "time": self.revisions[0]["modifiedTime"]}],
                "folder_path": self.folder, "folder_ids": [f"fold-{i}" for i in range(len(self.folder))],
                "version": str(len(self.revisions) + len(self.comments)),
                "modifiedTime": self.revisions[-1]["modifiedTime"],
                "webViewLink": f"https://docs.google.com/document/d/{self.id}/edit",
                "removed": self.removed, "revisions": self.revisions, "comments": self.comments}


USERS = [user("Ada Lovelace", "ada@example.org"), user("Grace Hopper"), user("Zoë Ünïcode", "zoe@example.org"),
         user("Linus <T>"), user("Margaret Hamilton", "mh@example.org")]

# Hostile, duplicate and odd titles; the folders nest and repeat hostile names too.
HARD_DOCS = [
    ("doc-01", "Design Overview", []),
    ("doc-02", "../../etc/passwd", []),
    ("doc-03", "a/b:c*?", ["Design"]),
    ("doc-04", "", ["Design"]),
    ("doc-05", "日本語のドキュメント", ["Design", "Sub: Ünïcode"]),
    ("doc-06", "Same Title", ["Design", "Sub: Ünïcode"]),
    ("doc-07", "Same Title", ["Design", "Sub: Ünïcode"]),
    ("doc-08", ".git", ["../.."]),
    ("doc-09", "CON", ["Workshops"]),
    ("doc-10", "Workshop: Lab desktops", ["Workshops"]),
    ("doc-11", "Café notes", ["Workshops", "2024"]),
    ("doc-12", "Old name", ["Workshops", "2024"]),        # renamed
    ("doc-13", "Doomed", []),                             # removed
    ("doc-14", "Same Title", []),
    ("doc-15", "   ", ["Design"]),
]
RENAMED, REMOVED, NO_USER = "doc-12", "doc-13", ("doc-03", "rev-doc-03-007")


def hard_store(store_dir: Path, *, revisions: int = 450, threads: int = 130, seed: int = 7) -> dict[str, DocSpec]:
    """Write the hard folder into `store_dir`; returns the specs (what the store holds)."""
    rng = random.Random(seed)
    w = StoreWriter(store_dir)
    specs = {fid: DocSpec(fid, title, folder) for fid, title, folder in HARD_DOCS}
    image = w.blob(PNG)
    ids = sorted(specs)
    # Revisions: round-robin so docs interleave in time; every 9th instant is shared by two docs
    # to exercise the (time, fileId) tie-break.
    t = BASE
    for n in range(revisions):
        spec = specs[ids[n % len(ids)]]
        if n % 9:
            t += timedelta(minutes=rng.randint(1, 30), seconds=rng.randint(0, 59))
        k = len(spec.revisions) + 1
        src = f"https://lh3.googleusercontent.com/{spec.id}-img" if spec.id in ("doc-10", "doc-06") else None
        body = f"Revision {k} of {spec.id}. " + " ".join(rng.choice(["alpha", "beta", "gamma", "delta"]) for _ in range(12))
        html = html_page(spec.title or "untitled", body, [src] if src and k % 2 == 0 else [])
        rev_id = f"rev-{spec.id}-{k:03d}"
        who = None if (spec.id, rev_id) == NO_USER else USERS[n % len(USERS)]
        spec.revisions.append({"id": rev_id, "modifiedTime": rfc3339(t), "lastModifyingUser": who,
                               "html": w.blob(html.encode()),
                               "images": [{"src": src, "blob": image, "mimeType": "image/png"}] if src and k % 2 == 0 else []})
    end = t
    renamed = specs[RENAMED]
    mid = renamed.revisions[len(renamed.revisions) // 2]["modifiedTime"]
    rename_time = datetime.fromisoformat(mid.replace("Z", "+00:00")) + timedelta(seconds=1)
    renamed.titles = [{"name": "Old name", "time": renamed.revisions[0]["modifiedTime"]},
                      {"name": "Brand New Name", "time": rfc3339(rename_time)}]
    # Threads with replies, resolutions, reopenings and deletions, spread over the docs' lifetimes.
    for c in range(threads):
        spec = specs[ids[(c * 7) % len(ids)]]
        start = datetime.fromisoformat(spec.revisions[0]["modifiedTime"].replace("Z", "+00:00"))
        created = start + timedelta(minutes=rng.randint(1, 600))
        author = USERS[c % len(USERS)]["displayName"]
        comment = {"id": f"AAAA{c:04d}", "createdTime": rfc3339(created), "modifiedTime": rfc3339(created),
                   "author": {"displayName": author, "photoLink": "//lh3.googleusercontent.com/a/x"},
                   "content": f"Thread {c}: please check\n## Thread FAKE · open" if c % 13 == 0 else f"Thread {c}: please check",
                   "htmlContent": f"Thread {c}", "quotedFileContent": {"mimeType": "text/html", "value": f"quoted {c}\nsecond line"},
                   "anchor": "kix.x", "resolved": False, "deleted": False, "replies": []}
        at = created
        for r in range(c % 4):
            at += timedelta(minutes=rng.randint(1, 90))
            action = {1: "resolve", 2: "reopen"}.get(r) if c % 3 == 0 else None
            reply = {"id": f"r{c:04d}-{r}", "createdTime": rfc3339(at), "modifiedTime": rfc3339(at),
                     "author": {"displayName": USERS[(c + r + 1) % len(USERS)]["displayName"]},
                     "content": "" if action else f"reply {r} to {c}", "htmlContent": "", "deleted": False}
            if action:
                reply["action"] = action
            if c % 11 == 5 and r == 0:
                reply["deleted"] = True
                reply["modifiedTime"] = rfc3339(at + timedelta(minutes=5))
            comment["replies"].append(reply)
        actions = [r.get("action") for r in comment["replies"] if r.get("action")]
        comment["resolved"] = bool(actions) and actions[-1] == "resolve"
        if c % 17 == 3:
            comment["deleted"] = True
            comment["content"] = ""
            comment["modifiedTime"] = rfc3339(at + timedelta(minutes=7))
        spec.comments.append(comment)
    for spec in specs.values():
        spec.comments.sort(key=lambda cm: (cm["createdTime"], cm["id"]))
    specs[REMOVED].removed = {"time": rfc3339(end + timedelta(hours=1)), "reason": "trashed"}
    for spec in specs.values():
        w.doc(spec.to_json())
    w.folder("root-hard", "Hard Folder", [s.to_json() for s in specs.values()])
    return specs


def growing_store(store_dir: Path, *, docs: int = 12, revisions: int = 25, threads: int = 6, seed: int = 3) -> None:
    """Docs that grow as real ones do: each revision adds a paragraph and now and then rewords
    one further up; threads gather replies over time. Every version of a doc shares most of its
    text with the one before (what `git gc` and replay's deltas make small)."""
    rng = random.Random(seed)
    words = ("lab", "desktop", "workshop", "student", "image", "browser", "seat", "grid", "node", "kernel",
             "history", "review", "draft", "notes", "promise", "cluster", "build", "deploy", "session")
    w = StoreWriter(store_dir)
    specs = [DocSpec(f"grow-{d:03d}", f"Growing doc {d}", [f"Team {d % 3}"]) for d in range(docs)]
    text = {spec.id: [] for spec in specs}
    t = BASE
    for k in range(revisions):
        for spec in specs:
            t += timedelta(minutes=rng.randint(1, 20))
            paragraphs = text[spec.id]
            paragraphs.append(" ".join(rng.choice(words) for _ in range(rng.randint(30, 80))))
            if len(paragraphs) > 3 and rng.random() < 0.3:
                paragraphs[rng.randrange(len(paragraphs) - 1)] += " (reworded)"
            body = "</span></p><p class=\"c1\"><span>".join(paragraphs)
            spec.revisions.append({"id": f"rev-{k:04d}", "modifiedTime": rfc3339(t), "lastModifyingUser": USERS[k % 5],
                                   "html": w.blob(html_page(spec.title, body).encode()), "images": []})
    for spec in specs:
        start = datetime.fromisoformat(spec.revisions[0]["modifiedTime"].replace("Z", "+00:00"))
        for c in range(threads):
            at = start + timedelta(hours=c * 7)
            replies = []
            for r in range(4):
                at += timedelta(hours=rng.randint(1, 30))
                replies.append({"id": f"reply-{r}", "createdTime": rfc3339(at), "modifiedTime": rfc3339(at),
                                "author": {"displayName": USERS[(c + r) % 5]["displayName"]},
                                "content": " ".join(rng.choice(words) for _ in range(20)), "deleted": False})
            spec.comments.append({"id": f"thread-{c:03d}", "createdTime": rfc3339(start + timedelta(hours=c * 7)),
                                  "modifiedTime": rfc3339(at), "author": {"displayName": "Grace Hopper"},
                                  "content": " ".join(rng.choice(words) for _ in range(25)), "htmlContent": "",
                                  "anchor": "kix.x", "resolved": False, "deleted": False, "replies": replies})
        w.doc(spec.to_json())
    w.folder("root-grow", "Growing", [s.to_json() for s in specs])


def comment_event_count(specs: dict[str, DocSpec]) -> int:
    """Comment events the store holds, counted the way a user reads the Drive UI."""
    n = 0
    for spec in specs.values():
        for c in spec.comments:
            n += 1 + int(bool(c.get("deleted")))
            for r in c["replies"]:
                n += 1 + int(bool(r.get("deleted")))
    return n


# ---------------------------------------------------------------- checking the archive

def git(archive: Path, *args: str) -> str:
    """The git CLI, only to check what replay wrote."""
    out = subprocess.run(["git", "--git-dir", str(archive), *args], capture_output=True, text=True, check=True)
    return out.stdout


def history(archive: Path) -> list[dict]:
    """main's commits oldest first, with author, committer, time and trailers."""
    import pygit2

    repo = pygit2.Repository(str(archive))
    tip = repo.references["refs/heads/main"].target
    out = []
    for commit in repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE):
        out.append({"id": str(commit.id), "author": (commit.author.name, commit.author.email),
                    "time": commit.author.time, "committer": (commit.committer.name, commit.committer.email),
                    "committer_time": commit.committer.time, "parents": len(commit.parents),
                    "trailers": commit.message_trailers, "message": commit.message})
    return out


def manifest_of(archive: Path) -> dict[str, Any]:
    """The manifest of main as readers get it (pipeline.archive.read_manifest): folder and docs."""
    import pygit2

    from pipeline.archive import read_manifest

    repo = pygit2.Repository(str(archive))
    manifest = read_manifest(repo, repo.references["refs/heads/main"].peel(pygit2.Commit))
    assert manifest is not None
    return {"folder": manifest.folder, "docs": manifest.docs}


def tree_files(archive: Path, rev: str = "refs/heads/main") -> dict[str, bytes]:
    import pygit2

    repo = pygit2.Repository(str(archive))
    tree = repo.revparse_single(rev).peel(pygit2.Tree)
    files: dict[str, bytes] = {}

    def walk(t, prefix: str) -> None:
        for entry in t:
            if entry.type_str == "tree":
                walk(repo[entry.id], prefix + entry.name + "/")
            else:
                files[prefix + entry.name] = repo[entry.id].data

    walk(tree, "")
    return files


def to_legacy_layout(archive: Path) -> str:
    """Rewrite main as replays before the manifest's split wrote it: the whole manifest in one
    .docpipe/manifest.json in every commit, everything else (files, authors, times, messages) as
    it is. On the hard folder, the sample data and a generated 1,000-doc tree this gives the very
    SHAs the old replay gave, so it stands for an archive written before the split. Returns the
    new main."""
    import pygit2

    from pipeline.archive import LEGACY_MANIFEST, MANIFEST, MANIFEST_DOCS, Manifest, read_doc_entry, read_folder

    repo = pygit2.Repository(str(archive))
    tip = repo.references["refs/heads/main"].target
    parent: pygit2.Oid | None = None
    manifest: Manifest | None = None
    shards: dict[str, pygit2.Oid] = {}  # the shard trees read so far, to read only what changed
    for commit in repo.walk(tip, pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.REVERSE):
        tree = commit.tree
        if MANIFEST in tree:
            manifest = manifest or Manifest()
            manifest.folder = read_folder(repo[tree[MANIFEST].id].data)
            now = {s.name: s.id for s in repo[tree[MANIFEST_DOCS].id]} if MANIFEST_DOCS in tree else {}
            for name in set(shards) | set(now):
                if shards.get(name) == now.get(name):
                    continue
                for file_id in [f for f, e in manifest.docs.items() if e["shard"] == name]:
                    del manifest.docs[file_id]
                for item in repo[now[name]] if name in now else []:
                    where = f"{MANIFEST_DOCS}/{name}/{item.name}"
                    file_id, entry = read_doc_entry(item.name, repo[item.id].data, where)
                    manifest.docs[file_id] = {**entry, "shard": name}
            shards = now
        root = repo.TreeBuilder(tree)
        root.remove(".docpipe")
        if manifest is not None:
            legacy = Manifest(manifest.folder, {f: {k: v for k, v in e.items() if k != "shard"}
                                                for f, e in manifest.docs.items()})
            meta = repo.TreeBuilder()
            meta.insert(LEGACY_MANIFEST.split("/")[1], repo.create_blob(legacy.to_bytes()), pygit2.enums.FileMode.BLOB)
            root.insert(".docpipe", meta.write(), pygit2.enums.FileMode.TREE)
        parent = repo.create_commit(None, commit.author, commit.committer, commit.raw_message.decode("utf-8"),
                                    root.write(), [parent] if parent else [])
    assert parent is not None
    repo.references.create("refs/heads/main", parent, force=True)
    return str(parent)
