"""docpipe render: each workshop progress check under its step (the section whose heading its name
matches), the unmatched ones in the end-of-page list; checked in the Markdown render writes and,
for hostile names and commands, in the HTML `mkdocs build --strict` makes of it."""

from __future__ import annotations

import json
from pathlib import Path

from bs4 import BeautifulSoup

from pipeline.publish import publish
from pipeline.render import place_checks, render
from tests.support.archive import Event, build_archive, doc_md
from tests.support.files import file_digests

FID = "1StepChecksXXXXXXXXXXXX"
PAGE = "ws-steps.md"
LAB = "## Lab desktop\n\nbase: debian-xfce\n\nchecks:\n\n{checks}\n"


def _mark(check) -> str:
    return f"CHECK<{check['name']}>"


def test_a_check_lands_at_the_end_of_its_step_and_nowhere_else() -> None:
    body = ("## Intro\n\nHello.\n\n## Install *Go*!<a id=\"h.x1\"></a>\n\nRun it.\n\n### Detail\n\nMore.\n\n\n"
            "## Run it\n\nGo.\n")
    checks = [{"name": "Run it", "command": "true"}, {"name": "install go", "command": "go version"}]
    out, unplaced = place_checks(body, checks, _mark)
    assert unplaced == []
    # At the end of the section (after its sub-heading's text), before the next heading of its
    # level; matched ignoring case, emphasis, punctuation and the converter's anchor.
    assert out == ("## Intro\n\nHello.\n\n## Install *Go*!<a id=\"h.x1\"></a>\n\nRun it.\n\n### Detail\n\nMore.\n\n"
                   "CHECK<install go>\n\n## Run it\n\nGo.\n\nCHECK<Run it>\n")
    assert out.count("CHECK<") == 2


def test_checks_of_nested_steps_ending_together_come_inner_first_in_their_order() -> None:
    body = "## Build\n\nA.\n\n### Compile\n\nB.\n\n## Next\n"
    checks = [{"name": "Build", "command": "b"}, {"name": "Compile", "command": "c"}]
    out, _ = place_checks(body, checks, _mark)
    assert out == "## Build\n\nA.\n\n### Compile\n\nB.\n\nCHECK<Compile>\n\nCHECK<Build>\n\n## Next\n"


def test_unmatched_checks_are_returned_in_order_and_the_body_is_unchanged() -> None:
    body = "## Setup\n\nText.\n"
    checks = [{"name": "Deploy", "command": "d"}, {"name": "Lint", "command": "l"}]
    out, unplaced = place_checks(body, checks, _mark)
    assert out == body and unplaced == checks


def test_a_heading_inside_a_code_fence_is_not_a_step() -> None:
    body = ("## Setup\n\n```sh\n# Deploy\necho hi\n```\n\n~~~\n## Setup done\n~~~\n\nAfter the blocks.\n\n"
            "## Next\n")
    checks = [{"name": "Deploy", "command": "d"}, {"name": "Setup", "command": "s"},
              {"name": "Setup done", "command": "x"}]
    out, unplaced = place_checks(body, checks, _mark)
    assert [c["name"] for c in unplaced] == ["Deploy", "Setup done"]
    # The fenced `# Deploy` does not end the Setup section either: its check follows the blocks.
    assert out == body.replace("After the blocks.\n\n", "After the blocks.\n\nCHECK<Setup>\n\n")


def _workshop(tmp_path: Path, checks: list[str], steps: str) -> Path:
    manifest = {"folder": {"id": "f", "name": "F", "webViewLink": ""},
                "docs": {FID: {"path": PAGE, "comments": None, "title": "Steps", "webViewLink": ""}}}
    body = LAB.format(checks="\n".join(f"- {c}" for c in checks)) + "\n" + steps
    build_archive(tmp_path / "archive", [Event(1_700_000_000, "Ann Lee", FID, {
        ".docpipe/manifest.json": json.dumps(manifest),
        PAGE: doc_md("Steps", body, drive_id=FID, name="ws-steps")}, revision="r1")])
    return tmp_path


def test_render_puts_checks_under_steps_and_lists_only_the_rest(tmp_path: Path) -> None:
    work = _workshop(tmp_path, ["Clone the repo: `git -C ~/repo status`", "Tidy up: `test ! -e ~/tmp`"],
                     "## Clone the repo\n\nClone it.\n\n## Build\n\nBuild it.\n")
    (ws,) = render(work).workshops
    assert ws.lab_error is None and [c["name"] for c in ws.lab["checks"]] == ["Clone the repo", "Tidy up"]
    page = (work / "site/docs" / PAGE).read_text()
    clone, build, end = page.index("## Clone the repo"), page.index("## Build"), page.index("How you know you're done")
    under = page.index("<code>git -C ~/repo status</code>")
    assert clone < under < build and page.count("<code>git -C ~/repo status</code>") == 1  # under its step only
    assert page.count("**Tidy up**") == 1 and end < page.index("**Tidy up**: <code>test ! -e ~/tmp</code>")

    all_matched = _workshop(tmp_path / "all", ["Build: `make`"], "## Build\n\nBuild it.\n")
    render(all_matched)
    page = (all_matched / "site/docs" / PAGE).read_text()
    assert "How you know you're done" not in page and "<code>make</code>" in page  # no end list


def test_same_input_renders_byte_identical(tmp_path: Path) -> None:
    args = (["Clone the repo: `git status`", "Nowhere: `true`"], "## Clone the repo\n\n```\n# Nowhere\n```\n")
    for name in ("a", "b"):
        render(_workshop(tmp_path / name, *args))
    first = file_digests(tmp_path / "a" / "site")
    assert first == file_digests(tmp_path / "b" / "site")
    render(tmp_path / "a")
    assert file_digests(tmp_path / "a" / "site") == first


HOSTILE_STEP = "Run <script>alert(1)</script> *now* &lt;b>"  # a step name has no colon
HOSTILE_CMD = "echo '</code><script>alert(3)</script>' [x](javascript:alert(2)) [y](https://evil.example/) *b* `c` a\\b &amp;"


def test_hostile_check_names_and_commands_stay_inert_in_the_built_html(tmp_path: Path) -> None:
    work = _workshop(tmp_path, [f"{HOSTILE_STEP}: ``{HOSTILE_CMD}``",
                                f"Not a step <img src=x onerror=alert(4)> [y] _z_ | #: ``{HOSTILE_CMD}``"],
                     f"## {HOSTILE_STEP}\n\nDo it.\n\n## After\n\nDone.\n")
    (ws,) = render(work).workshops
    assert ws.lab_error is None, ws.lab_error
    names = [c["name"] for c in ws.lab["checks"]]
    assert [c["command"] for c in ws.lab["checks"]] == [HOSTILE_CMD, HOSTILE_CMD]
    publish(work)  # mkdocs build --strict
    dom = BeautifulSoup((work / "public" / "ws-steps.html").read_text(), "html.parser")
    main = dom.select_one('div[role="main"]')
    boxes = main.select(".admonition.success")
    assert len(boxes) == 2
    step, end = boxes
    # The first check is under its step (the heading the page shows for the same text) ...
    (heading,) = [h for h in main.select("h2") if h.get_text().startswith("Run <script>alert(1)</script>")]
    assert heading.find_next("div", class_="admonition") is step
    assert step.find_next("h2").get_text(strip=True) == "After"
    # ... the other at the end, and both commands and names show exactly as typed, as text.
    for box, name in zip(boxes, names, strict=True):
        code = box.select("code")[-1]  # the end list's intro has a <code> of its own
        assert code.get_text() == HOSTILE_CMD and not code.find_all(True)
        assert name in box.get_text()
        assert not box.find_all(["script", "a", "img", "em"])
    assert "Not a step" in end.get_text()
    scripts = [s for s in dom.find_all("script") if not s.get("src")]
    assert all("alert" not in s.get_text() for s in scripts)
    for el in dom.find_all(True):
        assert not any(a.startswith("on") for a in el.attrs), el
        assert not el.get("href", "").startswith("javascript"), el
