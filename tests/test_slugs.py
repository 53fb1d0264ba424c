"""pipeline/slugs.py: every variant gives, for any text, exactly what the function it replaced gave
(archive paths and SHAs, workdirs, repository, image and seat names are made of them)."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import slugs

# ------------------------------------------------------------------ the five functions as they were
# Frozen copies (replay/paths.slugify, config._slug, push.slug, lab/roster.slug, lab/spec.workshop_slug):
# compare, never regenerate.

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def old_path_slugify(text: str | None, fallback: str = "untitled") -> str:
    chars = []
    for c in unicodedata.normalize("NFKC", text or ""):
        parts = unicodedata.normalize("NFKD", c)
        chars.append(parts[0] if parts[0].isascii() and parts[0].isalpha() else c)
    folded = "".join(chars).lower()
    slug = "".join(c if c.isalnum() and c.isprintable() else "-" for c in folded)
    slug = re.sub(r"-{2,}", "-", slug).strip("-")[:80].rstrip("-")
    if not slug:
        return fallback
    return f"{slug}-doc" if slug in _RESERVED else slug


def old_config_slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.").lower()
    return s or "folder"


def old_push_slug(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:100].strip("-")
    return text or "docs"


def old_roster_slug(name: str) -> str:
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40].strip("-")
    return text or "student"


def old_workshop_slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    slug = re.sub(r"-{2,}", "-", slug)[:63].strip("-")
    return slug or "workshop"


PAIRS = [(slugs.path_slug, old_path_slugify), (slugs.workdir_slug, old_config_slug), (slugs.repo_slug, old_push_slug),
         (slugs.seat_slug, old_roster_slug), (slugs.workshop_slug, old_workshop_slug)]

# What names are made of: any text, plus the characters the rules treat specially, often enough
# to meet them (accents, ligatures, case oddities like İ and the Kelvin sign, other scripts,
# separators, dots, reserved Windows names, long runs that hit the length limits).
TRICKY = list("aZ09 -_./\\:éÉöØßﬁİıKǅ日本ドド\u0301\u200b\u00a0\t\n") + ["con", "LPT1", "..", "x" * 50]
NAMES = st.one_of(st.text(), st.lists(st.sampled_from(TRICKY), max_size=30).map("".join),
                  st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=200))


@settings(max_examples=3000, deadline=None)
@given(NAMES)
def test_every_variant_gives_what_the_old_function_gave(name: str) -> None:
    for new, old in PAIRS:
        assert new(name) == old(name), (new.__name__, name)
    assert slugs.path_slug(name, "folder") == old_path_slugify(name, "folder")


@pytest.mark.parametrize("fn, name, slug", [
    (slugs.path_slug, "Café Déjà vu", "cafe-deja-vu"),
    (slugs.path_slug, "日本語のドキュメント", "日本語のドキュメント"),
    (slugs.path_slug, "CON", "con-doc"),
    (slugs.path_slug, "../../etc/passwd", "etc-passwd"),
    (slugs.workdir_slug, "CSWG Design.Docs_2", "cswg-design.docs_2"),
    (slugs.workdir_slug, "..hidden", "hidden"),
    (slugs.workdir_slug, "文档", "folder"),
    (slugs.repo_slug, "CSWG Design Docs", "cswg-design-docs"),
    (slugs.repo_slug, "../../etc/passwd", "etc-passwd"),
    (slugs.repo_slug, "文档", "docs"),
    (slugs.repo_slug, "x" * 300, "x" * 100),
    (slugs.seat_slug, "Zoë Ünicode", "zoe-unicode"),
    (slugs.seat_slug, "Robert'); DROP TABLE--", "robert-drop-table"),
    (slugs.seat_slug, "<>", "student"),
    (slugs.workshop_slug, "MCP 376: Virtual Desktops!", "mcp-376-virtual-desktops"),
    (slugs.workshop_slug, "café lab", "caf-lab"),
    (slugs.workshop_slug, "../../etc", "etc"),
    (slugs.workshop_slug, "", "workshop"),
])
def test_examples(fn, name: str, slug: str) -> None:  # type: ignore[no-untyped-def]
    assert fn(name) == slug


def test_labels_are_dns_1123() -> None:
    label = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
    for name in ("Ada Lovelace", "-x-", "ǅ" * 100, "a" * 100 + "-b"):
        assert label.fullmatch(slugs.seat_slug(name)) and label.fullmatch(slugs.workshop_slug(name))
