"""Google Docs export HTML -> Markdown with YAML front matter. Pure: no I/O.

Public API: `convert_html` (`convert_with_warnings` also returns the export's warnings) and
`front_matter`; `not_an_export_warning` tells whether input is a Google Docs export at all.
"""

from __future__ import annotations

from pipeline.convert.core import convert_html, convert_with_warnings, front_matter
from pipeline.convert.detect import is_google_export, not_an_export_warning

__version__ = "3"  # bump when output changes on purpose (replay caches by it)

__all__ = ["convert_html", "convert_with_warnings", "front_matter", "is_google_export", "not_an_export_warning"]
