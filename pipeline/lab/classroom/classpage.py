"""The instructor's class page: every seat's view-only desktop in a grid (pure, no I/O).

The page holds every view-only password (in its frames' fragments), so it is served on an origin of
its own, never cached, frames only the seats' own origins and runs no script at all.
"""

from __future__ import annotations

import html
import shlex
from collections.abc import Mapping, Sequence


def policy(frame_origins: Sequence[str]) -> str:
    """The page's Content-Security-Policy: inline style, frames of the seats' origins, nothing else."""
    frames = " ".join(dict.fromkeys(frame_origins)) or "'none'"
    return (f"default-src 'none'; style-src 'unsafe-inline'; frame-src {frames}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def help_command(workshop: str, label: str) -> str:
    """What the instructor runs to take a seat's mouse (`docpipe lab help`, which logs every use),
    where no gateway serves the page's help links (the Kubernetes class page is a file)."""
    return f"docpipe lab help {shlex.quote(workshop)} {shlex.quote(label)}"


HELP = "help/"  # the gateway's help route, relative to the class page (nginx.class_conf)


def class_html(workshop: str, tiles: Sequence[tuple[str, str]], frame_origins: Sequence[str],
               progress: Mapping[str, str] | None = None, helps: Mapping[str, str] | None = None) -> str:
    """`tiles`: (student or seat name, view-only desktop URL); names are escaped, never markup.
    `progress`: label -> the tile's last `lab progress` line (progress.summaries).
    `helps`: label -> seat name, where the gateway serves that seat's help link (logged as it is
    followed); a tile without one shows the `docpipe lab help` command instead."""
    def note(label: str) -> str:
        line = (progress or {}).get(label, "")
        return f" <small>{html.escape(line)}</small>" if line else ""

    def hand(label: str) -> str:
        seat = (helps or {}).get(label, "")
        if seat:
            return (f'<a href="{html.escape(HELP + seat)}" target="_blank" rel="noopener noreferrer">'
                    "take the mouse</a>")
        return f"<code>{html.escape(help_command(workshop, label))}</code>"

    figures = "\n".join(
        f'<figure><iframe src="{html.escape(url)}" title="{html.escape(label)}" referrerpolicy="no-referrer">'
        f"</iframe><figcaption>{html.escape(label)}{note(label)} {hand(label)}"
        "</figcaption></figure>" for label, url in tiles)
    return ("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
            "<meta name=\"referrer\" content=\"no-referrer\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{html.escape(policy(frame_origins))}\">"
            f"<title>{html.escape(workshop)}: class view</title>"
            "<style>body{margin:0;font-family:sans-serif;display:grid;"
            "grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:8px;padding:8px}"
            "figure{margin:0}code{font-size:85%;user-select:all}iframe{width:100%;height:280px;border:1px solid #999}</style></head>\n"
            f"<body>\n{figures}\n</body></html>\n")
