"""Google Docs export HTML -> Markdown with YAML front matter. Pure: no I/O.

Public API: `convert_html` (`convert_with_warnings` also returns the export's warnings) and
`front_matter`.
"""

from __future__ import annotations

from pipeline.convert.core import convert_html, convert_with_warnings, front_matter

__version__ = "1"  # bump when output changes on purpose (replay caches by it)

__all__ = ["convert_html", "convert_with_warnings", "front_matter"]
