"""Build docpipe's shipped sample-data/ (the community's docs) from the text below and shared/seed.

Run `python -m pipeline.emulator.samples [SEED_FILE] [OUT_DIR]` and commit the output; the
emulator then serves the committed files, which can also be edited by hand.
"""

from __future__ import annotations

import re
import shutil
import struct
import sys
import zlib
from pathlib import Path

from pipeline.emulator.dataformat import save_dataset
from pipeline.emulator.gdoc_html import render
from pipeline.emulator.model import Dataset

ROOT_ID = "1CSWGdocsRootF0lderXy7Qa2mPn5Lk8Jh"
IDS = {
    "workshops": "1WorkshopsF0lderAb3Cd4Ef5Gh6Ij7Kl",
    "mcp-0": "1mcp0ReadmeDocQw8Er7Ty6Ui5Op4As3Df",
    "mcp-369": "1mcp369ProposalsZx9Cv8Bn7Mm6Ll5Kk",
    "mcp-374": "1mcp374OrganizationJj4Hh3Gg2Ff1Dd",
    "mcp-376": "1mcp376VirtualDesktopsQq1Ww2Ee3Rr",
    "mcp-377": "1mcp377WebUiNotesTt4Yy5Uu6Ii7Oo8P",
    "ws-go": "1wsGoPromiseGridPp9Aa8Ss7Dd6Ff5Gg",
    "pdf": "1desktopArchitecturePdfHh4Jj3Kk2L",
    "sheet": "1attendanceSheetZz2Xx3Cc4Vv5Bb6Nn",
    "shortcut": "1shortcutToMcp376Mm7Nn8Bb9Vv0Cc1X",
    "trashed": "1oldDraftTrashedLl2Kk3Jj4Hh5Gg6Ff",
}


def doc_url(key: str) -> str:
    return f"https://docs.google.com/document/d/{IDS[key]}/edit"


LINKS = {
    "Linux Foundation": "https://www.linuxfoundation.org/",
    "Open Source Collective": "https://www.oscollective.org/",
    "mcp-374": doc_url("mcp-374"),
    "mcp-369": doc_url("mcp-369"),
    "MCP index": doc_url("mcp-0"),
    "mcp-0-readme": doc_url("mcp-0"),
    "mosix": "https://en.wikipedia.org/wiki/MOSIX",
    "SSI": "https://en.wikipedia.org/wiki/Single_system_image",
    "edge": "https://en.wikipedia.org/wiki/Edge_computing",
    "godecide": "https://github.com/stevegt/godecide",
    "Apache Guacamole": "https://guacamole.apache.org/",
    "webtops": "https://docs.linuxserver.io/images/docker-webtop/",
    "pipes and filters": "https://en.wikipedia.org/wiki/Pipeline_(software)",
}


def png(width: int, height: int, boxes: list[tuple[int, int, int, int, tuple[int, int, int]]]) -> bytes:
    """A small RGB PNG: white canvas with filled boxes (x, y, w, h, colour)."""
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            colour = (255, 255, 255)
            for bx, by, bw, bh, c in boxes:
                if bx <= x < bx + bw and by <= y < by + bh:
                    colour = c
            row += bytes(colour)
        rows.append(bytes(row))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


def pdf(text: str) -> bytes:
    """A one-page PDF showing `text` (valid xref offsets, so viewers open it)."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def _seed_source(seed_text: str) -> list[str]:
    """The seed text as our markup lines: headers first, section titles as headings, real links."""
    lines = seed_text.strip("\n").split("\n")
    out = []
    for line in lines:
        if re.fullmatch(r"\s*-\s*", line):
            continue  # an empty bullet in the seed
        if re.fullmatch(r"[A-Za-z].* \(\d+ mins\)", line.strip()):
            line = "## " + line.strip()
        line = re.sub(r"\[([^\]]+)\]\(#\)", lambda m: f"[{m.group(1)}]({LINKS.get(m.group(1), '#')})", line)
        line = re.sub(r"^(\s*- .*?)(?<![(<])(https?://\S+)$", r"\1<\2>", line)
        if re.match(r"^https?://\S+$", line.strip()):
            line = f"<{line.strip()}>"
        line = re.sub(r"^- (https?://\S+)$", r"- <\1>", line)
        out.append(line)
    return out


def _mcp376(ds: Dataset, seed_text: str) -> None:
    fid = IDS["mcp-376"]
    src = _seed_source(seed_text)
    # Cut points: the doc grows section by section over a meeting day, as people type.
    marks = ["Text checkins", "- Donaldo", "- JJ", "virtual desktops (40", "- Organizational", "- Migration path", "- Medium and long-term", "After talk", "Plan next workshop"]
    cuts = []
    for mark in marks:
        for i, line in enumerate(src):
            if mark in line and i not in cuts:
                cuts.append(i)
                break
    authors = ["steve", "steve", "donaldo", "jj", "steve", "angela", "steve", "donaldo", "jj", "steve"]
    times = ["2024-06-27T16:02:11Z", "2024-06-27T16:05:40Z", "2024-06-27T16:09:03Z", "2024-06-27T16:12:57Z", "2024-06-27T16:21:30Z",
             "2024-06-27T16:33:12Z", "2024-06-27T16:41:48Z", "2024-06-27T16:52:05Z", "2024-06-27T17:01:29Z", "2024-06-28T09:14:00Z"]
    ds.add_doc("mcp-376-cswg-workshop-virtual-desktops", ROOT_ID, times[0], id=fid, owner="steve")
    for n, end in enumerate(cuts[1:] + [len(src)]):
        lines = list(src[:end])
        if n < 4:  # an early typo, fixed later: a revision that edits, not only appends
            lines = [ln.replace("Not where I want it yet.", "Not where I want it yet, but close") for ln in lines]
        if n >= 7:  # a comment anchor appears once the comment exists
            lines = [ln + "[^Link to the gitdriver repo, please?]" if "gitdriver worked" in ln else ln for ln in lines]
        ds.add_revision(fid, render("\n".join(lines), seed=fid), authors[n], times[n])
    # one more edit the next morning: status changes
    final = [ln.replace("Status: Draft -- anyone can edit.", "Status: Final -- meeting notes, edit with care.") for ln in src]
    final = [ln + "[^Link to the gitdriver repo, please?]" if "gitdriver worked" in ln else ln for ln in final]
    ds.add_revision(fid, render("\n".join(final), seed=fid), "steve", times[-1])

    c1 = ds.add_comment(fid, "donaldo", "Do we know the annual fee for joining the Linux Foundation as a project?", "2024-06-27T16:10:00Z",
                        quoted="Linux Foundation is a 501(c)(6) itself", id="AAABL5sKx1A")
    ds.add_reply(fid, c1, "steve", "It depends on the membership tier; I'll bring numbers next week.", "2024-06-27T16:14:00Z", id="AAABL5sKx1E")
    ds.add_reply(fid, c1, "donaldo", "Found it on their site, adding to mcp-374.", "2024-06-28T10:02:00Z", action="resolve", id="AAABL5sKx1I")
    c2 = ds.add_comment(fid, "jj", "Link to the gitdriver repo, please?", "2024-06-27T16:55:00Z", quoted="the way gitdriver worked", id="AAABL5sKx2A")
    ds.add_reply(fid, c2, "steve", "https://github.com/larsks/gitdriver is the one I meant.", "2024-06-27T17:03:00Z", id="AAABL5sKx2E")
    c3 = ds.add_comment(fid, "angela", "Should the desktops run in the browser (noVNC), or do students need a client?", "2024-06-27T16:35:00Z",
                        quoted="desktops", id="AAABL5sKx3A")
    ds.add_reply(fid, c3, "steve", "Browser only: noVNC, see ws-go-promisegrid.", "2024-06-27T16:40:00Z", action="resolve", id="AAABL5sKx3E")
    ds.add_reply(fid, c3, "angela", "Reopening: what about audio for the video parts?", "2024-06-28T08:30:00Z", action="reopen", id="AAABL5sKx3I")
    c4 = ds.add_comment(fid, "jj", "test comment, please ignore", "2024-06-27T16:13:30Z", quoted="GoogleDocs to Markdown project", id="AAABL5sKx4A")
    ds.delete_comment(fid, c4, "2024-06-27T16:13:50Z")


README_MCP0 = """Name: mcp-0-readme

Title: MCP index and readme

Status: Active

# MCP: the community's design docs

MCP docs are how this working group proposes, discusses and records decisions. Anyone can edit; the first three lines of every MCP doc are **machine-readable headers** (`Name:`, `Title:`, `Status:`), so please keep their format.

## How to start a new MCP doc

1. Copy an existing doc in this folder.
1. Take the next free number and set `Name:` to `mcp-NNN-short-slug`.
1. Set `Status:` to `Draft -- anyone can edit.`
1. Add a line to the index below.

## Index

- [mcp-369](LINK369) workshop proposals
- [mcp-374](LINK374) CSWG organization and funding
- [mcp-376-cswg-workshop-virtual-desktops](LINK376) virtual desktops
- [mcp-377](LINK377) notes on the web UI
- Workshops live in the *Workshops* folder, e.g. [ws-go-promisegrid](LINKWS)
"""


def _mcp0(ds: Dataset) -> None:
    fid = IDS["mcp-0"]
    text = (README_MCP0.replace("LINK369", doc_url("mcp-369")).replace("LINK374", doc_url("mcp-374"))
            .replace("LINK376", doc_url("mcp-376")).replace("LINK377", doc_url("mcp-377")).replace("LINKWS", doc_url("ws-go")))
    lines = text.strip("\n").split("\n")
    idx = lines.index("## Index")
    ds.add_doc("mcp-0-readme", ROOT_ID, "2024-05-02T14:00:00Z", id=fid, owner="steve")
    ds.add_revision(fid, render("\n".join(lines[: idx + 3]), seed=fid), "steve", "2024-05-02T14:00:00Z")
    ds.add_revision(fid, render("\n".join(lines[: idx + 4]), seed=fid), "steve", "2024-06-20T09:30:00Z")
    ds.add_revision(fid, render("\n".join(lines), seed=fid), "angela", "2024-06-27T18:00:00Z")


MCP369 = """Name: mcp-369

Title: workshop proposals

Status: Active -- anyone can edit.

# Workshop proposals

To propose a workshop: create a doc in the *Workshops* folder named `ws-<topic>`, give it a **Lab desktop** section (what the students' browser desktop needs) and numbered steps, then add a line below.

## Proposed

- ws-go-promisegrid -- write and run a first PromiseGrid node in Go (Steve, JJ)
- ws-mattermost-bots -- a Mattermost bot that answers from the MCP docs (Donaldo)
- ws-gitea-ci -- continuous integration on the T7a Gitea (Angela)

## Scheduled

1. 2024-07-11: ws-go-promisegrid
"""


def _mcp369(ds: Dataset) -> None:
    fid = IDS["mcp-369"]
    lines = MCP369.strip("\n").split("\n")
    ds.add_doc("mcp-369", ROOT_ID, "2024-05-10T15:00:00Z", id=fid, owner="steve")
    ds.add_revision(fid, render("\n".join(lines[:12]), seed=fid), "steve", "2024-05-10T15:00:00Z")
    ds.add_revision(fid, render("\n".join(lines[:15]), seed=fid), "donaldo", "2024-06-13T17:20:00Z")
    ds.add_revision(fid, render("\n".join(lines), seed=fid), "angela", "2024-06-27T17:30:00Z")
    c = ds.add_comment(fid, "angela", "Can we run two workshops in July, or is that too much while Steve travels?", "2024-06-27T17:35:00Z",
                       quoted="Scheduled", id="AAABM1qPz1A")
    ds.add_reply(fid, c, "donaldo", "One in July, one in August; I can host the August one.", "2024-06-27T18:10:00Z", id="AAABM1qPz1E")
    ds.add_reply(fid, c, "steve", "Agreed.", "2024-06-28T09:00:00Z", action="resolve", id="AAABM1qPz1I")


MCP374 = """Name: mcp-374

Title: CSWG organization and funding

Status: Draft -- anyone can edit.

# Options

- Join an existing 501(c)(6): [Linux Foundation](https://www.linuxfoundation.org/)
- A fiscal host: [Open Source Collective](https://www.oscollective.org/)
- Remain under CDINT for now
- File 501 paperwork ourselves

## Infrastructure

- Gitea on T7a hosts all repos; every project gets one
- Mattermost for async discussion
- Lab desktops built from workshop docs (see mcp-376)

## Open source

- Code under an OSI license, docs under CC BY 4.0
- *Open governance*: decisions recorded in MCP docs
"""


def _mcp374(ds: Dataset) -> None:
    fid = IDS["mcp-374"]
    lines = MCP374.strip("\n").split("\n")
    ds.add_doc("mcp-374 draft", ROOT_ID, "2024-06-13T16:00:00Z", id=fid, owner="steve")
    ds.add_revision(fid, render("\n".join(lines[:13]), seed=fid), "steve", "2024-06-13T16:00:00Z")
    ds.rename(fid, "mcp-374", "2024-06-20T10:00:00Z")
    ds.add_revision(fid, render("\n".join(lines), seed=fid), "steve", "2024-06-26T21:45:00Z")


MCP377 = """Name: mcp-377

Title: notes on the web UI

Status: Draft -- anyone can edit.

# Untrusted content

Docs are editable by anyone, so pages built from them must show markup as text. For example this line must appear literally, not run: <script>alert(1)</script>

Also literal: <img src=x onerror=alert(2)> and a link that is not a link: javascript:alert(3)

## Checklist

- Escape HTML in titles and headers
- Never put doc text into a shell command or a Dockerfile line
"""


def _mcp377(ds: Dataset) -> None:
    fid = IDS["mcp-377"]
    ds.add_doc("mcp-377", ROOT_ID, "2024-06-25T12:00:00Z", id=fid, owner="angela")
    ds.add_revision(fid, render(MCP377.strip("\n"), seed=fid), "angela", "2024-06-25T12:00:00Z")


WS_GO = """Name: ws-go-promisegrid

Title: Go and PromiseGrid: a first grid node

Status: Proposed

# Go and PromiseGrid: a first grid node

In this workshop you write a tiny PromiseGrid node in Go, run it on your lab desktop, and talk to it from a browser. About 90 minutes.

![Lab desktop architecture](architecture.png)

## Lab desktop

base: debian-novnc
packages: golang-go git curl
pip: httpie
ports: 8080
env: GOFLAGS=-mod=mod
files: hello/main.go
```
package main

import (
    "fmt"
    "net/http"
)

func main() {
    http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
        fmt.Fprintln(w, "hello from the grid")
    })
    http.ListenAndServe(":8080", nil)
}
```
memory: 2g
cpus: 1
checks:
- Check the Go toolchain: `go version`
- Create the starter module (20s): `test -f ~/hello/go.mod && grep -q example.org/hello ~/hello/go.mod`
- Change the greeting: `! grep -q "hello from the grid" ~/hello/main.go`

## Steps

Each step below ends with its check: what "done" means for it.

### Check the Go toolchain

1. Open a terminal on your lab desktop and check the Go toolchain:
```
go version
```

### Create the starter module

1. Go to the starter node that is already in your home folder and make it a Go module:
```
cd ~/hello
go mod init example.org/hello
```
1. Build and run it:
```
go run .
```
1. In the desktop's browser, open `http://localhost:8080/` and you should see *hello from the grid*.

### Change the greeting

1. Change the greeting in `~/hello/main.go`, stop the server with **Ctrl+C** and run it again.

## What next

Read [mcp-376](LINK376) for where the virtual desktops are heading.
"""


def _ws_go(ds: Dataset) -> None:
    fid = IDS["ws-go"]
    text = WS_GO.strip("\n").replace("LINK376", doc_url("mcp-376"))
    lines = text.split("\n")
    steps = lines.index("## Steps")
    ds.add_doc("ws-go-promisegrid", IDS["workshops"], "2024-06-28T11:00:00Z", id=fid, owner="jj")
    ds.add_image(fid, "architecture.png", "image/png", png(64, 32, [(4, 4, 24, 24, (66, 133, 244)), (36, 4, 24, 24, (52, 168, 83)), (28, 14, 8, 4, (0, 0, 0))]))
    images = {"architecture.png": (320, 160)}
    ds.add_revision(fid, render("\n".join(lines[:steps]), seed=fid, images=images), "jj", "2024-06-28T11:00:00Z")
    ds.add_revision(fid, render("\n".join(lines[: lines.index("### Create the starter module")]), seed=fid, images=images),
                    "steve", "2024-07-01T15:20:00Z")
    ds.add_revision(fid, render(text, seed=fid, images=images), "jj", "2024-07-02T19:45:00Z")
    c = ds.add_comment(fid, "donaldo", "Is 2g of memory enough for gopls in the editor too?", "2024-07-02T20:00:00Z", quoted="memory: 2g", id="AAABN7wRt1A")
    ds.add_reply(fid, c, "jj", "Yes, measured about 700 MB with the editor open.", "2024-07-03T08:15:00Z", action="resolve", id="AAABN7wRt1E")


def build(seed_text: str) -> Dataset:
    ds = Dataset(ROOT_ID, "CSWG docs", "2024-05-01T12:00:00Z")
    ds.add_user("steve", "Steve Traugott", "steve@example.org", "04512345678901234567")
    ds.add_user("donaldo", "Donaldo Ruiz", "donaldo@example.org", "07723456789012345678")
    ds.add_user("jj", "JJ", None, "11934567890123456789")  # a user whose email Google does not show
    ds.add_user("angela", "Angela Okafor", "angela@example.org", "13345678901234567890")
    ds.add_folder("Workshops", ROOT_ID, "2024-05-01T12:05:00Z", id=IDS["workshops"], owner="steve")
    _mcp0(ds)
    _mcp369(ds)
    _mcp374(ds)
    _mcp376(ds, seed_text)
    _mcp377(ds)
    _ws_go(ds)
    ds.add_file("desktop-architecture.pdf", "application/pdf", pdf("Lab desktop architecture: browser -> noVNC -> container"),
                IDS["workshops"], "2024-06-29T10:00:00Z", id=IDS["pdf"], owner="steve")
    ds.add_file("workshop attendance", "application/vnd.google-apps.spreadsheet", b"", ROOT_ID, "2024-06-27T15:55:00Z", id=IDS["sheet"], owner="angela")
    ds.add_shortcut("mcp-376 (shortcut)", IDS["mcp-376"], IDS["workshops"], "2024-06-28T11:05:00Z", id=IDS["shortcut"], owner="jj")
    old = ds.add_doc("old draft of mcp-376", ROOT_ID, "2024-06-20T08:00:00Z", id=IDS["trashed"], owner="steve")
    ds.add_revision(old, render("Name: mcp-376-old\n\nTitle: old draft\n\nStatus: Abandoned", seed=old), "steve", "2024-06-20T08:00:00Z")
    ds.trash(old, "2024-06-27T15:50:00Z")
    return ds


def main(argv: list[str]) -> None:
    seed = Path(argv[0]) if argv else Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "seed" / "mcp-376-cswg-workshop-virtual-desktops.txt"
    out = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[2] / "sample-data"
    ds = build(seed.read_text(encoding="utf-8"))
    readme = (out / "README.md").read_bytes() if (out / "README.md").exists() else None
    if (out / "items").exists():
        shutil.rmtree(out / "items")
    save_dataset(ds, out)
    if readme is not None:
        (out / "README.md").write_bytes(readme)
    print(f"wrote {out}: {len(ds.files) - 1} items, {sum(len(f.revisions) for f in ds.files.values())} revisions")


if __name__ == "__main__":
    main(sys.argv[1:])
