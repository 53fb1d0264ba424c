"""Sample archives per ARCHITECTURE.md Contract 2, built with pygit2 (no working tree).

`build_archive(path, events)` commits each event's files on top of the previous tree, with the
Drive user as author, `docpipe <docpipe@localhost>` as committer at the author's time, and the
contract's trailers. `sample_archive(workdir)` writes the rich sample the render tests use.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
import pytest

BASE_TIME = 1_718_000_000  # 2024-06-10 06:13:20 UTC


@dataclass
class Event:
    time: int
    author: str
    file_id: str
    files: dict[str, str | bytes]
    revision: str | None = None  # Drive-Revision-Id
    comment: str | None = None  # Drive-Comment-Id
    summary: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def _insert(repo: pygit2.Repository, tree: pygit2.Tree | None, parts: list[str], blob: pygit2.Oid) -> pygit2.Oid:
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    head, rest = parts[0], parts[1:]
    if not rest:
        builder.insert(head, blob, pygit2.enums.FileMode.BLOB)
    else:
        sub = tree[head] if tree is not None and head in tree else None
        builder.insert(head, _insert(repo, sub, rest, blob), pygit2.enums.FileMode.TREE)
    return builder.write()


def build_archive(path: Path, events: list[Event]) -> pygit2.Repository:
    repo = pygit2.init_repository(str(path), bare=True, initial_head="main")  # as replay writes it
    parent: pygit2.Commit | None = None
    for ev in events:
        tree = parent.tree if parent is not None else None
        oid = tree.id if tree is not None else repo.TreeBuilder().write()
        for name, content in sorted(ev.files.items()):
            data = content.encode() if isinstance(content, str) else content
            oid = _insert(repo, repo[oid], name.split("/"), repo.create_blob(data))
        author = pygit2.Signature(ev.author, f"{ev.author.split()[0].lower()}@example.org", ev.time, 0)
        committer = pygit2.Signature("docpipe", "docpipe@localhost", ev.time, 0)
        trailers = {"Drive-File-Id": ev.file_id}
        if ev.revision:
            trailers["Drive-Revision-Id"] = ev.revision
        if ev.comment:
            trailers["Drive-Comment-Id"] = ev.comment
        trailers.update(ev.extra)
        message = (ev.summary or "Revision") + "\n\n" + "".join(f"{k}: {v}\n" for k, v in trailers.items())
        new = repo.create_commit("refs/heads/main", author, committer, message, oid,
                                 [parent.id] if parent is not None else [])
        parent = repo[new]
    return repo


def doc_md(title: str, body: str, *, drive_id: str, name: str | None = None, status: str | None = None) -> str:
    import yaml

    meta = {"title": title}
    if name:
        meta["name"] = name
    if status:
        meta["status"] = status
    meta["drive_id"] = drive_id
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n\n" + body.strip() + "\n"


def link(file_id: str, fragment: str = "") -> str:
    return f"https://docs.google.com/document/d/{file_id}/edit" + (f"#{fragment}" if fragment else "")


# ------------------------------------------------------------------ the sample

WS_ID = "1WsGoPromiseGridAAAAAAAAAAAAAA"
MCP_ID = "1Mcp376VirtualDesktopsBBBBBBBB"
XSS_ID = "1HostileNotesCCCCCCCCCCCCCCCCC"
BAD_ID = "1BadLabDDDDDDDDDDDDDDDDDDDDDDD"
OUTSIDE_ID = "1NotInThisFolderEEEEEEEEEEEEEE"
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201a5d6b5e90000000049454e44ae426082"
)
IMAGE = "workshops/ws-go-promisegrid.assets/0f0f00ffc3c3037f.png"

WS_V1 = """# Go on PromiseGrid

Set up a Go toolchain.

## Lab desktop

base: debian-xfce

packages: golang-go, git
"""

WS_V2 = f"""# Go on PromiseGrid

Build a tiny PromiseGrid node in Go.[<sup>\\[a\\]</sup>](ws-go-promisegrid.comments.md) Background: [virtual desktops]({link(MCP_ID, "heading=h.abc123")}).

## Lab desktop

base: debian-xfce

packages: golang-go, git

ports: 8080

## Step 1: clone the repo

```bash
git clone https://example.org/promisegrid.git
cd promisegrid
```

## Step 2: run the node

```go
package main

func main() {{ println("hello grid") }}
```

![architecture](ws-go-promisegrid.assets/0f0f00ffc3c3037f.png)

See also [a doc elsewhere]({link(OUTSIDE_ID)}).
"""

MCP_BODY = f"""Name: kept as front matter.

## Assumptions

- the long-term arc in computing is toward virtualization
  - virtual machines
  - containers and desktops
- organisation

## Workshop

The workshop is [ws-go-promisegrid]({link(WS_ID)}).

<a id="h.abc123"></a>Anchored paragraph with <sup>superscript</sup> text.
"""

XSS_BODY = """Text that looks like HTML must stay text: &lt;script&gt;alert(1)&lt;/script&gt;

A raw tag the converter should never emit still stays inert: <script>alert(2)</script>

<img src="../workshops/ws-go-promisegrid.assets/0f0f00ffc3c3037f.png" onerror="alert(3)">

[click me](javascript:alert(4)) and [fine](https://example.org/)

<iframe src="javascript:alert(5)"></iframe>
"""

BAD_LAB = """# Broken lab

## Lab desktop

base: evil/image; rm -rf /

Some steps.
"""

COMMENTS_WS = """# Comments on Go on PromiseGrid

## “Set up a Go toolchain.” — Which Go version do we need? · open

> Set up a Go toolchain.

**Ana Lima** · 2024-06-11 09:00 UTC

Which Go version do we need?

- **Bo Chen** · 2024-06-11 10:00 UTC · reply: 1.22 or later

## “Build a tiny PromiseGrid node” — Typo here. · resolved

> Build a tiny PromiseGrid node

**Bo Chen** · 2024-06-11 11:00 UTC

Typo here.

- **Ana Lima** · 2024-06-11 12:00 UTC · resolved: fixed
"""

TITLES = {
    WS_ID: "Go on PromiseGrid",
    MCP_ID: "virtual desktops",
    XSS_ID: "Hostile <script>alert(6)</script> notes",
    BAD_ID: "Broken lab",
}
PATHS = {
    WS_ID: "workshops/ws-go-promisegrid.md",
    MCP_ID: "mcp-376-cswg-workshop-virtual-desktops.md",
    XSS_ID: "notes/hostile-notes.md",
    BAD_ID: "workshops/broken-lab.md",
}


def _manifest() -> str:
    docs = {fid: {"path": PATHS[fid], "comments": "workshops/ws-go-promisegrid.comments.md" if fid == WS_ID else None,
                  "title": TITLES[fid], "webViewLink": link(fid)} for fid in PATHS}
    data = {"folder": {"id": "folder1", "name": "CSWG docs", "webViewLink": "https://drive.google.com/drive/folders/folder1"},
            "docs": docs}
    return json.dumps(data, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def sample_events() -> list[Event]:
    t = BASE_TIME
    ws = lambda body: doc_md(TITLES[WS_ID], body, drive_id=WS_ID, name="ws-go-promisegrid", status="Ready")  # noqa: E731
    return [
        Event(t, "Ana Lima", MCP_ID, {PATHS[MCP_ID]: doc_md(TITLES[MCP_ID], MCP_BODY, drive_id=MCP_ID,
              name="mcp-376-cswg-workshop-virtual-desktops", status="Draft -- anyone can edit."),
              ".docpipe/manifest.json": _manifest()}, revision="r1"),
        Event(t + 3600, "Ana Lima", WS_ID, {PATHS[WS_ID]: ws(WS_V1)}, revision="r1"),
        Event(t + 7200, "Bo Chen", WS_ID, {PATHS[WS_ID]: ws(WS_V2), IMAGE: PNG}, revision="r2"),
        Event(t + 86400, "Ana Lima", WS_ID, {"workshops/ws-go-promisegrid.comments.md": COMMENTS_WS},
              comment="AAAAcomment1", summary="Comment"),
        Event(t + 90000, "Mallory *bold* [y](javascript:alert(7))", XSS_ID, {PATHS[XSS_ID]: doc_md(TITLES[XSS_ID], XSS_BODY, drive_id=XSS_ID)},
              revision="r1"),
        Event(t + 93600, "Ana Lima", BAD_ID, {PATHS[BAD_ID]: doc_md(TITLES[BAD_ID], BAD_LAB, drive_id=BAD_ID)},
              revision="r7"),
        Event(t + 97200, "Carla Diaz", WS_ID, {PATHS[WS_ID]: ws(WS_V2 + "\nThanks for joining.\n")}, revision="r3"),
    ]


def sample_archive(workdir: Path) -> pygit2.Repository:
    """WORKDIR/archive with two workshops (one valid lab, one invalid), an MCP doc linking to a
    workshop, a hostile doc, an image and a comments file."""
    workdir.mkdir(parents=True, exist_ok=True)
    return build_archive(workdir / "archive", sample_events())


@pytest.fixture(scope="module")
def sample_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workdir = tmp_path_factory.mktemp("render")
    sample_archive(workdir)
    return workdir
