"""docpipe publish: `mkdocs build --strict` of the rendered site, checked in headless Chromium
as a reader would see it, plus determinism and the `site` branch."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlsplit

import pygit2
import pytest
from bs4 import BeautifulSoup

from pipeline.errors import BadInput, DocpipeError
from pipeline.publish import filter_html, publish, safe_url
from pipeline.render import render
from tests.support.archive import (
    BAD_ID,
    MCP_ID,
    TITLES,
    WS_ID,
    XSS_ID,
    Event,
    build_archive,
    doc_md,
    link,
    sample_archive,
)
from tests.support.browser import ARTIFACTS, Chromium, http_status, serve
from tests.support.files import file_digests

pytestmark = pytest.mark.browser

PAGES = {"index": "index.html", "tutorial": "workshops/ws-go-promisegrid.html",
         "hostile": "notes/hostile-notes.html", "clean": "workshops/broken-lab.html",
         "mcp": "mcp-376-cswg-workshop-virtual-desktops.html"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    """One rendered and published sample, served on 127.0.0.1, its key pages loaded in Chromium
    (in parallel: each Chromium start costs a second or two) and screenshots kept."""
    workdir = tmp_path_factory.mktemp("publish")
    sample_archive(workdir)
    rendered = render(workdir)
    published = publish(workdir, site_branch=True)
    browser = Chromium()
    with serve(workdir / "public") as base:
        jobs = {name: (browser.dump_dom, f"{base}/{path}") for name, path in PAGES.items()}
        with ThreadPoolExecutor(max_workers=3) as pool:
            futures = {name: pool.submit(fn, url) for name, (fn, url) in jobs.items()}
            shots = [pool.submit(browser.screenshot, f"{base}/{PAGES[n]}", ARTIFACTS / f"render-{n}.png")
                     for n in ("index", "tutorial")]
            doms = {name: BeautifulSoup(f.result(), "html.parser") for name, f in futures.items()}
            shot_paths = [f.result() for f in shots]
        yield {"workdir": workdir, "rendered": rendered, "published": published, "base": base,
               "dom": doms, "shots": shot_paths}


def content(dom: BeautifulSoup) -> BeautifulSoup:
    return dom.select_one('div[role="main"]')


def test_index_lists_every_doc(site) -> None:
    main = content(site["dom"]["index"])
    rows = main.select("table tbody tr")
    cells = [[td.get_text(" ", strip=True) for td in row.select("td")] for row in rows]
    assert sorted(c[1] for c in cells) == sorted(TITLES.values())
    assert ["ws-go-promisegrid", "Go on PromiseGrid", "Ready", "2024-06-11", "3"] in cells
    hrefs = {a["href"] for a in main.select("table a")}
    assert hrefs == {"mcp-376-cswg-workshop-virtual-desktops.html", "notes/hostile-notes.html",
                     "workshops/broken-lab.html", "workshops/ws-go-promisegrid.html"}


def test_tutorial_shows_headings_code_and_lab_box(site) -> None:
    main = content(site["dom"]["tutorial"])
    assert main.h1.get_text(strip=True) == "Go on PromiseGrid"
    headings = [h.get_text(strip=True) for h in main.select("h2")]
    assert headings[:3] == ["Lab desktop", "Step 1: clone the repo", "Step 2: run the node"]
    codes = [c.get_text() for c in main.select("pre > code")]
    assert any("git clone https://example.org/promisegrid.git" in c for c in codes)
    assert any('println("hello grid")' in c for c in codes)
    box = main.select_one(".admonition")
    assert box.select_one(".admonition-title").get_text(strip=True) == "Lab desktop"
    assert "docpipe lab up ws-go-promisegrid" in box.get_text()
    assert re.search(r"ws-go-promisegrid:[0-9a-f]{12}", box.get_text())
    text = main.get_text(" ", strip=True)
    assert "Authors: Ana Lima, Bo Chen, Carla Diaz" in text and "Last updated: 2024-06-11" in text
    assert "Which Go version do we need?" in text and "Typo here" not in text  # open threads only
    assert main.select_one('img[alt="architecture"]') is not None
    # The converter's comment mark links to the comments file, published as a page of its own.
    assert main.select_one('a[href="ws-go-promisegrid.comments.html"] sup').get_text() == "[a]"
    assert main.find("a", string="All comments")["href"] == "ws-go-promisegrid.comments.html"


def test_two_space_nested_lists_nest(site) -> None:
    main = content(site["dom"]["mcp"])
    outer = main.select_one("ul")
    assert [li.get_text(strip=True) for li in outer.select(":scope > li > ul > li")] == [
        "virtual machines", "containers and desktops"]


def test_invalid_lab_spec_shows_a_warning_box(site) -> None:
    box = content(site["dom"]["clean"]).select_one(".admonition.warning")
    assert "evil/image" in box.get_text() and "not an allowed base" in box.get_text()


def test_doc_script_text_is_visible_and_never_live(site) -> None:
    hostile, clean = site["dom"]["hostile"], site["dom"]["clean"]
    # Same theme, same depth: any extra <script> would come from doc content.
    assert len(hostile.find_all("script")) == len(clean.find_all("script")) > 0
    main = content(hostile)
    text = main.get_text(" ", strip=True)
    assert "<script>alert(1)</script>" in text and "<script>alert(2)</script>" in text
    assert "Hostile <script>alert(6)</script> notes" == main.h1.get_text(strip=True)
    for el in hostile.find_all(True):
        assert not any(a.startswith("on") for a in el.attrs), el
        for attr in ("href", "src"):
            assert safe_url(el.get(attr, "")), el
    assert main.find("iframe") is None
    assert "click me" in text  # the javascript: link is demoted to text


def test_every_internal_link_resolves(site) -> None:
    public, base = site["workdir"] / "public", site["base"]
    urls: set[str] = set()
    fragments: set[tuple[str, str]] = set()
    for page in public.rglob("*.html"):
        page_url = f"{base}/{page.relative_to(public).as_posix()}"
        soup = BeautifulSoup(page.read_text(), "html.parser")
        for el in soup.find_all(["a", "link", "script", "img"]):
            ref = el.get("href") or el.get("src")
            if not ref or urlsplit(ref).scheme or ref.startswith("//"):
                continue
            url, frag = urldefrag(urljoin(page_url, ref))
            urls.add(url)
            if frag and url.endswith(".html") and url != page_url:
                fragments.add((url, frag))
    assert f"{base}/mcp-376-cswg-workshop-virtual-desktops.html" in urls  # the rewritten Drive link
    bad = sorted(u for u in urls if http_status(u) != 200)
    assert bad == []
    for url, frag in fragments:
        target = public / url[len(base) + 1:]
        assert BeautifulSoup(target.read_text(), "html.parser").find(id=frag) is not None, (url, frag)


def test_screenshots_are_kept(site) -> None:
    for path in site["shots"]:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_site_branch_holds_the_rendered_source(site) -> None:
    workdir = site["workdir"]
    repo = pygit2.Repository(str(workdir / "archive"))
    tip = repo.references["refs/heads/site"].peel(pygit2.Commit)
    assert str(tip.id) == site["published"].site_commit
    assert tip.tree["docs/index.md"].data == (workdir / "site/docs/index.md").read_bytes()
    assert tip.tree["mkdocs.yml"].data == (workdir / "site/mkdocs.yml").read_bytes()
    assert tip.author.name == "docpipe" and tip.parents == []
    # Unchanged site: no new commit. Same archive elsewhere: the same SHA.
    assert publish(workdir, site_branch=True).site_commit == str(tip.id)
    other = workdir.parent / (workdir.name + "-again")
    sample_archive(other)
    render(other)
    assert publish(other, site_branch=True).site_commit == str(tip.id)
    shutil.rmtree(other)


def test_publish_is_byte_identical(tmp_path: Path, site) -> None:
    sample_archive(tmp_path)
    render(tmp_path)
    publish(tmp_path)
    first = file_digests(tmp_path / "public")
    assert "sitemap.xml.gz" in first
    assert first == file_digests(site["workdir"] / "public")
    publish(tmp_path)
    assert file_digests(tmp_path / "public") == first


def test_new_revision_adds_a_site_commit_on_top(tmp_path: Path) -> None:
    repo = sample_archive(tmp_path)
    render(tmp_path)
    first = publish(tmp_path, site_branch=True).site_commit
    tip = repo.references["refs/heads/main"].peel(pygit2.Commit)
    builder = repo.TreeBuilder(tip.tree)
    blob = repo.create_blob(doc_md(TITLES[MCP_ID], "New text.", drive_id=MCP_ID).encode())
    builder.insert("mcp-376-cswg-workshop-virtual-desktops.md", blob, pygit2.enums.FileMode.BLOB)
    sig = pygit2.Signature("Ana Lima", "ana@example.org", tip.commit_time + 60, 0)
    repo.create_commit("refs/heads/main", sig, sig, f"Revision\n\nDrive-File-Id: {MCP_ID}\nDrive-Revision-Id: r9\n",
                       builder.write(), [tip.id])
    render(tmp_path)
    second = publish(tmp_path, site_branch=True).site_commit
    assert second != first and [str(p) for p in repo[second].parent_ids] == [first]


def test_broken_link_fails_strict_build_and_keeps_the_old_site(tmp_path: Path) -> None:
    fid = "1BrokenLinkXXXXXXXXXXXX"
    manifest = {"folder": {"id": "f", "name": "F", "webViewLink": ""},
                "docs": {fid: {"path": "a.md", "comments": None, "title": "A", "webViewLink": link(fid)}}}
    build_archive(tmp_path / "archive", [Event(1_700_000_000, "Ann Lee", fid, {
        ".docpipe/manifest.json": json.dumps(manifest),
        "a.md": doc_md("A", "See [missing](missing.md).", drive_id=fid)}, revision="r1")])
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "keep.html").write_text("old")
    render(tmp_path)
    with pytest.raises(DocpipeError, match=r"mkdocs build --strict failed: .*missing\.md"):
        publish(tmp_path)
    assert (tmp_path / "public" / "keep.html").read_text() == "old"
    assert not (tmp_path / "public.tmp").exists()


def test_publish_without_render_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="run `docpipe render` first"):
        publish(tmp_path)
    out = subprocess.run(["docpipe", "publish", "--workdir", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("docpipe: error: no rendered site at ") and "run `docpipe render` first" in out.stderr


def test_cli_publish_json(tmp_path: Path) -> None:
    sample_archive(tmp_path)
    subprocess.run(["docpipe", "render", "--workdir", str(tmp_path)], check=True, capture_output=True)
    out = subprocess.run(["docpipe", "publish", "--workdir", str(tmp_path), "--site-branch", "--json"],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["html_files"] >= 5 and re.fullmatch(r"[0-9a-f]{40}", data["site_commit"])
    public = tmp_path / "public"
    assert data["public"] == str(public) and data["html_files"] == len(list(public.rglob("*.html")))
    assert data["site_commit"] == str(pygit2.Repository(str(tmp_path / "archive")).references["refs/heads/site"].target)


@pytest.mark.parametrize("fragment, expected", [
    ('<a id="h.x"></a>', '<a id="h.x"></a>'),
    ("<sup>", "<sup>"),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    ('<img src=x onerror="alert(1)">', '<img src="x">'),
    ('<a href="java\tscript:alert(1)">x</a>', "<a>x</a>"),
    ("<!-- <script> -->", "&lt;!-- &lt;script&gt; --&gt;"),
    ('<td colspan="2" style="x">a &amp; b</td>', '<td colspan="2">a &amp; b</td>'),
])
def test_raw_html_filter(fragment: str, expected: str) -> None:
    assert filter_html(fragment) == expected


# ------------------------------------------------------------------ footnotes and tabs, end to end

NOTES_ID, TABS_ID, OTHER_ID = "1SurveyNotesFFFFFFFFFFFFFFFFF", "1LabHandbookGGGGGGGGGGGGGGGGG", "1OtherDocAAAAAAAAAAAAAAAAAAA"


@pytest.fixture(scope="module")
def notes_site(tmp_path_factory: pytest.TempPathFactory):
    """Real exports (tests/fixtures/gdoc-export) converted, committed, rendered, built with
    `mkdocs build --strict` and opened in Chromium: a doc with footnotes, one with tabs and the
    doc its tabs link into."""
    from pipeline.convert import convert_html
    from tests.support.convert import FIXTURES

    workdir = tmp_path_factory.mktemp("notes")
    docs = {NOTES_ID: ("notes/survey.md", "Survey notes", "footnotes"), TABS_ID: ("lab-handbook.md", "Lab handbook", "tabs")}
    files: dict[str, str | bytes] = {}
    for fid, (path, title, fixture) in docs.items():
        html = (FIXTURES / f"{fixture}.export.html").read_text(encoding="utf-8")
        files[path] = convert_html(html, title=title, extra_meta={"drive_id": fid})
    files["other.md"] = doc_md("Other doc", '## Commands explained<a id="h.o7h8e9r0d1c2"></a>\n\nWhat they do.', drive_id=OTHER_ID)
    docs[OTHER_ID] = ("other.md", "Other doc", "")
    manifest = {"folder": {"id": "f", "name": "Notes", "webViewLink": ""},
                "docs": {fid: {"path": path, "comments": None, "title": title, "webViewLink": link(fid)}
                         for fid, (path, title, _) in docs.items()}}
    files[".docpipe/manifest.json"] = json.dumps(manifest)
    build_archive(workdir / "archive", [Event(1_767_225_600, "Ann Lee", NOTES_ID, files, revision="r1")])
    render(workdir)
    publish(workdir)
    browser = Chromium()
    with serve(workdir / "public") as base:
        with ThreadPoolExecutor(max_workers=3) as pool:
            notes = pool.submit(browser.dump_dom, f"{base}/notes/survey.html")
            tabs = pool.submit(browser.dump_dom, f"{base}/lab-handbook.html")
            shot = pool.submit(browser.screenshot, f"{base}/notes/survey.html", ARTIFACTS / "render-footnotes.png")
            yield {"workdir": workdir, "notes": BeautifulSoup(notes.result(), "html.parser"),
                   "tabs": BeautifulSoup(tabs.result(), "html.parser"), "shot": shot.result()}


def test_footnotes_show_as_footnotes(notes_site) -> None:
    main = content(notes_site["notes"])
    marks = main.select("sup > a.footnote-ref")
    assert [(a["href"], a.get_text()) for a in marks] == [("#fn:1", "1"), ("#fn:2", "2"), ("#fn:3", "3"), ("#fn:4", "4")]
    notes = main.select("div.footnote > ol > li")
    assert [li["id"] for li in notes] == ["fn:1", "fn:2", "fn:3", "fn:4"]
    first = notes[0]
    assert first.get_text(" ", strip=True).startswith("Run by the working group ; see the method notes")
    assert first.select_one("strong").get_text() == "working group"
    assert first.select_one("a[href='https://example.org/survey-2026']") is not None
    second = [p.get_text(" ", strip=True) for p in notes[1].select("p")]  # a note of two paragraphs
    assert len(second) == 2 and second[0] == "From 2 to 16 March."
    assert second[1].startswith("A second paragraph of the same note, with emphasis and code")
    for a in marks + main.select("a.footnote-backref"):  # marks and notes link to each other
        assert main.find(id=a["href"][1:]) is not None, a
    assert "[1]" not in main.get_text() and "ftnt" not in str(main)


def test_footnote_page_screenshot(notes_site) -> None:
    data = notes_site["shot"].read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 10_000


def test_tabs_are_sections_and_links_into_them_land(notes_site) -> None:
    main = content(notes_site["tabs"])
    heads = [(h.name, h.get_text(strip=True)) for h in main.select("h1, h2, h3")]
    assert heads[1:] == [("h1", "Overview"), ("h2", "Goals"), ("h1", "Setup"), ("h2", "Install"), ("h3", "On Debian"),
                         ("h1", "Reference"), ("h2", "Commands")]
    assert heads[0] == ("h1", "Lab handbook")  # the page's own title, from the template
    inner = main.find("a", string="Commands")
    assert main.find(id=inner["href"][1:]).find_parent("h2").get_text(strip=True) == "Commands"
    other = main.find("a", string="other doc")["href"]
    assert other == "other.html#h.o7h8e9r0d1c2"
    target = BeautifulSoup((notes_site["workdir"] / "public" / "other.html").read_text(), "html.parser")
    assert target.find(id="h.o7h8e9r0d1c2") is not None
