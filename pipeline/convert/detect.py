"""Does this HTML look like a Google Docs export? The CLI warns when not (it still converts)."""

from __future__ import annotations

import re

# Every export Google serves (Drive `text/html` export, File > Download > Web page) has its body
# classed `doc-content`; exports from before that class (2021 and earlier) still have the
# content-type <meta> first in <head> and a stylesheet of generated `.cN` classes.
_DOC_CONTENT = re.compile(r"<body\b[^>]*\bclass=\"[^\"]*\bdoc-content\b", re.IGNORECASE)
_META = re.compile(r"<meta\s+content=\"text/html; charset=UTF-8\"\s+http-equiv=\"content-type\"", re.IGNORECASE)
_CLASS_RULE = re.compile(r"\.c\d+\{")


def is_google_export(html: str) -> bool:
    """True when `html` carries the markers of Google's HTML export."""
    if _DOC_CONTENT.search(html):
        return True
    return bool(_META.search(html, 0, 4096)) and bool(_CLASS_RULE.search(html))


def not_an_export_warning(html: str) -> str | None:
    """The one-line warning for input that is not a Google Docs export, or None."""
    if is_google_export(html):
        return None
    return ("the input does not look like a Google Docs HTML export (no `doc-content` body, no Google "
            "stylesheet); converting it anyway, expect lost lists, code and styling")
