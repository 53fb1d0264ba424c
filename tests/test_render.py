"""docpipe render: archive (git) -> MkDocs project. Browser checks of the built site live in
tests/test_publish.py."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pipeline.comments import parse_threads
from pipeline.errors import BadInput, DocpipeError
from pipeline.render import render
from tests.support.archive import (
    BAD_ID,
    MCP_ID,
    OUTSIDE_ID,
    WS_ID,
    XSS_ID,
    Event,
    build_archive,
    doc_md,
    link,
    sample_archive,
    sample_workdir,
)
from tests.support.files import file_digests


@pytest.fixture(scope="module")
def rendered(sample_workdir: Path):
    return render(sample_workdir)


def test_every_doc_becomes_a_page_and_the_index_lists_them(rendered, sample_workdir: Path) -> None:
    docs = sample_workdir / "site" / "docs"
    assert {p.id for p in rendered.pages} == {WS_ID, MCP_ID, XSS_ID, BAD_ID}
    for page in rendered.pages:
        assert (docs / page.page).is_file()
    index = (docs / "index.md").read_text()
    assert "| mcp-376-cswg-workshop-virtual-desktops | [virtual desktops](mcp-376-cswg-workshop-virtual-desktops.md) " \
           "| Draft -- anyone can edit. | 2024-06-10 | 1 |" in index
    assert "| ws-go-promisegrid | [Go on PromiseGrid](workshops/ws-go-promisegrid.md) | Ready | 2024-06-11 | 3 |" in index
    assert (sample_workdir / "site" / "mkdocs.yml").is_file()


def test_history_gives_authors_last_update_and_revision_count(rendered) -> None:
    ws = next(p for p in rendered.pages if p.id == WS_ID)
    # Three revisions by three people; the comment commit by Ana is not a revision.
    assert (ws.revisions, ws.authors, ws.updated) == (3, ["Ana Lima", "Bo Chen", "Carla Diaz"], "2024-06-11")
    assert ws.open_threads == 1


def test_workshops_carry_their_lab_spec_or_the_reason_it_is_invalid(rendered, sample_workdir: Path) -> None:
    assert {w.id for w in rendered.workshops} == {WS_ID, BAD_ID}
    ws = next(w for w in rendered.workshops if w.id == WS_ID)
    assert ws.workshop_name == "ws-go-promisegrid" and ws.lab_error is None
    assert ws.lab["base"] == "debian-xfce" and ws.lab["packages"] == ["git", "golang-go"] and ws.lab["ports"] == [8080]
    page = (sample_workdir / "site" / "docs" / ws.page).read_text()
    assert '!!! example "Lab desktop"' in page and "docpipe lab up ws-go-promisegrid" in page
    assert f"ws-go-promisegrid:{ws.lab['image_tag']}" in page
    assert page.count("# Go on PromiseGrid") == 1  # the doc's Title heading is not repeated

    bad = next(w for w in rendered.workshops if w.id == BAD_ID)
    assert bad.lab is None and "base" in bad.lab_error and "evil/image" in bad.lab_error
    bad_page = (sample_workdir / "site" / "docs" / bad.page).read_text()
    assert '!!! warning "Lab desktop unavailable"' in bad_page and "docpipe lab up" not in bad_page

    out = rendered.to_json()
    assert [w["id"] for w in out["workshops"]] == [w.id for w in rendered.workshops]
    assert ws.event_doc() == {"id": WS_ID, "name": "ws-go-promisegrid", "title": "Go on PromiseGrid",
                              "status": "Ready", "path": "workshops/ws-go-promisegrid.md",
                              "page": "workshops/ws-go-promisegrid.md"}


def _provision_tags(workdir: Path, templates: Path | None = None, allow_setup: bool = False) -> dict[str, str]:
    """Workshop name -> the tag `docpipe provision` would build, for the same settings."""
    from pipeline.lab.image import provision
    from pipeline.lab.settings import LabSettings, desktop_templates

    # As `docpipe provision` makes them (pipeline.lab.settings.lab_settings).
    settings = provision.with_archive(workdir, LabSettings(templates=desktop_templates(templates),
                                                           allow_setup=allow_setup))
    _, found = provision.archive_workshops(workdir, settings)
    return {w.name: provision.plan(w, settings).tag for w in found if w.spec is not None}


def test_image_tag_is_the_tag_provision_builds(tmp_path: Path, sample_workdir: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(sample_workdir / "archive", work / "archive")
    custom = tmp_path / "custom"
    (custom / "desktop").mkdir(parents=True)
    shipped = Path(__file__).resolve().parents[1] / "templates" / "desktop" / "Dockerfile.j2"
    (custom / "desktop" / "Dockerfile.j2").write_text(shipped.read_text() + 'LABEL io.docpipe.house="yes"\n')
    tags = {}
    for templates in (None, custom):  # a templates dir's desktop/ overrides the Dockerfile, as in provision
        (ws,) = [w for w in render(work, templates=templates).workshops if w.lab]
        assert _provision_tags(work, templates=templates) == {ws.workshop_name: ws.lab["image_tag"]}
        tags[templates] = ws.lab["image_tag"]
    assert tags[None] != tags[custom]


def test_shell_setup_steps_follow_the_operator_setting(tmp_path: Path) -> None:
    fid = "1SetupStepsXXXXXXXXXXXX"
    manifest = {"folder": {"id": "f", "name": "F", "webViewLink": ""},
                "docs": {fid: {"path": "ws-setup.md", "comments": None, "title": "Setup", "webViewLink": ""}}}
    body = "## Lab desktop\n\nbase: debian-xfce\n\nsetup:\n\n```\necho hi > /etc/motd\n```\n"
    build_archive(tmp_path / "archive", [Event(1_700_000_000, "Ann Lee", fid, {
        ".docpipe/manifest.json": json.dumps(manifest),
        "ws-setup.md": doc_md("Setup", body, drive_id=fid, name="ws-setup")}, revision="r1")])
    (off,) = render(tmp_path).workshops
    assert off.lab is None and "disabled by the operator" in off.lab_error
    assert "Lab desktop unavailable" in (tmp_path / "site/docs/ws-setup.md").read_text()
    (on,) = render(tmp_path, allow_setup=True).workshops
    assert on.lab_error is None and on.lab["setup"] == ["echo hi > /etc/motd"]
    assert _provision_tags(tmp_path, allow_setup=True) == {"ws-setup": on.lab["image_tag"]}
    assert "docpipe lab up ws-setup" in (tmp_path / "site/docs/ws-setup.md").read_text()


def test_drive_links_between_docs_become_relative_page_links(sample_workdir: Path, rendered) -> None:
    docs = sample_workdir / "site" / "docs"
    ws = (docs / "workshops/ws-go-promisegrid.md").read_text()
    assert "](../mcp-376-cswg-workshop-virtual-desktops.md#h.abc123)" in ws
    assert f"]({link(OUTSIDE_ID)})" in ws  # not in the folder: left pointing at Google
    mcp = (docs / "mcp-376-cswg-workshop-virtual-desktops.md").read_text()
    assert "](workshops/ws-go-promisegrid.md)" in mcp


def test_images_are_copied_beside_the_page(sample_workdir: Path, rendered) -> None:
    image = sample_workdir / "site/docs/workshops/ws-go-promisegrid.assets/0f0f00ffc3c3037f.png"
    assert image.read_bytes().startswith(b"\x89PNG")


def test_untrusted_titles_and_names_are_literal_markdown(sample_workdir: Path, rendered) -> None:
    page = (sample_workdir / "site/docs/notes/hostile-notes.md").read_text()
    assert page.startswith("# Hostile &lt;script>alert(6)&lt;/script> notes\n")
    assert "Mallory \\*bold\\* \\[y\\](javascript:alert(7))" in page


def test_comment_threads_open_only() -> None:
    text = (
        "# Comments on X\n\n## Thread c1 · open\n\n> quoted\n> more\n\n**Ann** · 2024-01-02 03:04 UTC\n\n"
        "First line\nsecond line\n\n- **Bob** · 2024-01-03 03:04 UTC · reply: ok\n\n"
        "## Thread c2 · resolved\n\n**Bob** · 2024-01-02 03:04 UTC\n\nDone\n\n## Thread c3 · deleted\n"
    )
    (thread,) = parse_threads(text)  # archives replayed before threads had readable headings
    assert (thread.heading, thread.author, thread.time, thread.quote, thread.text, thread.replies) == (
        "Thread c1", "Ann", "2024-01-02 03:04 UTC", "quoted more", "First line second line", 1)


def test_render_is_deterministic(tmp_path: Path) -> None:
    sample_archive(tmp_path / "a")
    sample_archive(tmp_path / "b")
    render(tmp_path / "a")
    render(tmp_path / "b")
    first = file_digests(tmp_path / "a" / "site")
    assert first == file_digests(tmp_path / "b" / "site")
    render(tmp_path / "a")  # re-render over an existing site: same bytes, no leftovers
    assert file_digests(tmp_path / "a" / "site") == first


def test_one_template_overrides_file_by_file(tmp_path: Path, sample_workdir: Path) -> None:
    work = tmp_path / "w"
    shutil.copytree(sample_workdir / "archive", work / "archive")
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "page.md.j2").write_text("# {{ doc.title|md }}\n\nHouse style for {{ doc.id }}.\n\n{{ body }}\n")
    render(work, templates=custom)
    docs = work / "site" / "docs"
    assert f"House style for {MCP_ID}." in (docs / "mcp-376-cswg-workshop-virtual-desktops.md").read_text()
    tutorial = (docs / "workshops/ws-go-promisegrid.md").read_text()
    assert "House style" not in tutorial and "Lab desktop" in tutorial  # other templates stay shipped
    assert "## All documents" in (docs / "index.md").read_text()


def test_broken_template_is_one_line_bad_input(tmp_path: Path, sample_workdir: Path) -> None:
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "index.md.j2").write_text("{% for p in pages %}\n")
    render(sample_workdir)  # a good site first (this test may run alone, on any pytest-xdist worker)
    with pytest.raises(BadInput, match=r"template index\.md\.j2"):
        render(sample_workdir, templates=custom)
    assert (sample_workdir / "site" / "docs" / "index.md").is_file()  # the previous site survives
    assert not (sample_workdir / "site.tmp").exists()


def test_unsafe_manifest_path_is_refused(tmp_path: Path) -> None:
    manifest = {"folder": {"id": "f", "name": "F", "webViewLink": ""},
                "docs": {"1EvilPathXXXXXXXXX": {"path": "../../escape.md", "comments": None, "title": "x",
                                                "webViewLink": ""}}}
    build_archive(tmp_path / "archive", [Event(1_700_000_000, "Eve Doe", "1EvilPathXXXXXXXXX", {
        ".docpipe/manifest.json": json.dumps(manifest), "escape.md": doc_md("x", "body", drive_id="1EvilPathXXXXXXXXX"),
    }, revision="r1")])
    with pytest.raises(DocpipeError, match="unsafe doc path"):
        render(tmp_path)
    assert not (tmp_path.parent / "escape.md").exists() and not (tmp_path / "site").exists()


def test_cli_render_json_and_missing_archive(tmp_path: Path, sample_workdir: Path) -> None:
    out = subprocess.run(["docpipe", "render", "--workdir", str(sample_workdir), "--json"],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert len(data["pages"]) == 4 and {w["id"] for w in data["workshops"]} == {WS_ID, BAD_ID}
    bad = subprocess.run(["docpipe", "render", "--workdir", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [f"docpipe: error: no archive at {tmp_path / 'nothing' / 'archive'}: "
                                               "run `docpipe replay` first"]


def test_with_a_lab_public_url_each_workshop_page_has_a_start_button(tmp_path: Path, sample_workdir: Path) -> None:
    """[lab] public_url set: a link to `docpipe lab serve`'s page of that workshop, on valid
    workshops only; without it (the module's render above), no button anywhere."""
    workdir = tmp_path / "wd"
    shutil.copytree(sample_workdir, workdir)
    summary = render(workdir, lab_url="https://lab.example.org:8443")
    docs = workdir / "site" / "docs"
    ws = next(w for w in summary.workshops if w.id == WS_ID)
    page = (docs / ws.page).read_text()
    assert ("[Start a desktop for this workshop](https://lab.example.org:8443/start/ws-go-promisegrid/)"
            in page)
    bad = next(w for w in summary.workshops if w.id == BAD_ID)
    assert "Start a desktop for this workshop" not in (docs / bad.page).read_text()  # an invalid spec builds nothing to start
    assert all("Start a desktop for this workshop" not in (docs / p.page).read_text() for p in summary.pages if not p.workshop)
    plain = render(sample_workdir)
    assert all("Start a desktop for this workshop" not in (sample_workdir / "site" / "docs" / p.page).read_text() for p in plain.pages)
