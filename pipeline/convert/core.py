"""The converter's public functions: export HTML in, Markdown with YAML front matter out."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

import yaml

from pipeline.convert.blocks import restructure
from pipeline.convert.markdown import GDocConverter

log = logging.getLogger("pipeline.convert")

_BLANK_RUNS = re.compile(r"\n{3,}")
_TRAILING_WS = re.compile(r"[ \t]+$", re.M)


def _dump_front_matter(meta: Mapping[str, str]) -> str:
    # safe_dump quotes whatever YAML would misread (`: `, `#`, leading `*`, "yes"...);
    # width keeps long titles on one line.
    body = yaml.safe_dump(dict(meta), sort_keys=False, allow_unicode=True, width=10**6, default_flow_style=False)
    return f"---\n{body}---\n"


def convert_with_warnings(
    html: str,
    *,
    title: str | None = None,
    images: Mapping[str, str] | None = None,
    comments_href: str | None = None,
    extra_meta: Mapping[str, str] | None = None,
) -> tuple[str, list[str]]:
    """Like `convert_html`, and also return the warnings (e.g. classes the stylesheet lacks)."""
    doc = restructure(html, dict(images) if images else None, comments_href)
    body = GDocConverter().convert_soup(doc.soup)
    body = _TRAILING_WS.sub("", body)
    body = _BLANK_RUNS.sub("\n\n", body).strip("\n")

    meta: dict[str, str] = {"title": doc.headers.get("title") or title or doc.title or "Untitled"}
    for key in ("name", "status"):  # after the title, before any other header
        if key in doc.headers:
            meta[key] = doc.headers[key]
    for key, value in doc.headers.items():
        meta.setdefault(key, value)
    for key, value in (extra_meta or {}).items():
        meta[str(key)] = str(value)
    text = _dump_front_matter(meta) + "\n" + (body + "\n" if body else "")
    return text, doc.warnings


def convert_html(
    html: str,
    *,
    title: str | None = None,
    images: Mapping[str, str] | None = None,
    comments_href: str | None = None,
    extra_meta: Mapping[str, str] | None = None,
) -> str:
    """Google Docs export HTML -> Markdown that starts with YAML front matter.

    `images` maps an `<img src>` exactly as in the HTML to the relative path to link instead;
    `comments_href` is where comment marks ([a]) link to (None drops them). Warnings about the
    export go to the `pipeline.convert` logger; `convert_with_warnings` returns them instead.
    """
    text, warnings = convert_with_warnings(
        html, title=title, images=images, comments_href=comments_href, extra_meta=extra_meta
    )
    for warning in warnings:
        log.warning("%s", warning)
    return text


def front_matter(md: str) -> dict[str, str]:
    """The YAML front matter of converted Markdown as a dict of strings ({} when there is none)."""
    from pipeline.frontmatter import read

    return read(md)
