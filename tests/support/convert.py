"""Google-Docs-style export HTML for converter tests and bench/convert.py.

`GDoc` writes HTML the way Google's exporter does: a `<style>` block of `.cN` classes, one
`<span class>` per run of text, flat `<ul class="lst-kix_<id>-<level>">` lists, links wrapped in
`https://www.google.com/url?q=`, U+EC03/U+EC02 code blocks, `<table>` with a malformed `<thead>`,
footnote marks `<sup><a href="#ftntN" id="ftnt_refN">[N]</a></sup>` with their notes at the end.
"""

from __future__ import annotations

import html
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "gdoc-export"
SEED = Path(__file__).resolve().parent.parent / "fixtures" / "seed" / "mcp-376-cswg-workshop-virtual-desktops.txt"

# Same shape (and names) as a real export's stylesheet.
_CLASSES = {
    "c1": "background-color:#ffffff;max-width:468pt;padding:72pt 72pt 72pt 72pt",
    "c2": "padding-top:0pt;padding-bottom:0pt;line-height:1.15;orphans:2;widows:2;text-align:left",
    "c3": 'color:#000000;font-weight:400;text-decoration:none;vertical-align:baseline;font-size:11pt;font-family:"Arial";font-style:normal',
    "c4": "height:11pt",
    "c5": "font-weight:700",
    "c6": "font-style:italic",
    "c7": "text-decoration-skip-ink:none;-webkit-text-decoration-skip:none;color:#1155cc;text-decoration:underline",
    "c8": "color:inherit;text-decoration:inherit",
    "c9": 'font-weight:400;font-family:"Courier New"',
    "c10": "padding:0;margin:0",
    "c11": "margin-left:36pt;padding-left:0pt",
    "c12": "text-decoration:line-through",
    "c13": "padding-top:20pt;padding-bottom:6pt;line-height:1.15;page-break-after:avoid;text-align:left",
    "c14": "padding-top:0pt;padding-bottom:0pt;line-height:1.15;text-align:right",
    "c15": "margin-left:72pt;padding-left:0pt",
    "c16": "margin-left:108pt;padding-left:0pt",
}
_RUN_CLASS = {"": "c3", "b": "c5", "i": "c6", "bi": "c5 c6", "s": "c12", "code": "c9"}


def google_url(url: str) -> str:
    return f"https://www.google.com/url?q={quote(url, safe=':/')}&amp;sa=D&amp;source=editors&amp;ust=1&amp;usg=AOvVaw0"


def runs(text: str) -> str:
    """Mini markup -> Google spans: **b**, _i_, ~~s~~, `code`, [text](url); the rest is escaped."""
    out = []
    pattern = re.compile(r"\*\*(.+?)\*\*|_(.+?)_|~~(.+?)~~|`(.+?)`|\[(.+?)\]\((.+?)\)")
    pos = 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append(_span(text[pos:m.start()], ""))
        if m.group(1):
            out.append(_span(m.group(1), "b"))
        elif m.group(2):
            out.append(_span(m.group(2), "i"))
        elif m.group(3):
            out.append(_span(m.group(3), "s"))
        elif m.group(4):
            out.append(_span(m.group(4), "code"))
        else:
            href = m.group(6) if m.group(6).startswith("#") else google_url(m.group(6))
            out.append(f'<span class="c7"><a class="c8" href="{href}">{html.escape(m.group(5))}</a></span>')
        pos = m.end()
    if pos < len(text):
        out.append(_span(text[pos:], ""))
    return "".join(out)


def _span(text: str, kind: str) -> str:
    escaped = html.escape(text, quote=False).replace("  ", " &nbsp;")
    return f'<span class="{_RUN_CLASS[kind]}">{escaped}</span>'


@dataclass
class GDoc:
    parts: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _open_list: tuple[str, int, str] | None = None
    _list_ids: int = 0

    def note(self, text: str) -> str:
        """A footnote mark to put in a run (markup as `raw` takes it); the note goes at the end."""
        self.notes.append(text)
        n = len(self.notes)
        return f'<sup><a href="#ftnt{n}" id="ftnt_ref{n}">[{n}]</a></sup>'

    def _close(self) -> None:
        if self._open_list:
            self.parts.append(f"</{self._open_list[2]}>")
            self._open_list = None

    def p(self, text: str = "") -> GDoc:
        self._close()
        cls = "c2" if text else "c2 c4"
        self.parts.append(f'<p class="{cls}">{runs(text) if text else _span("", "")}</p>')
        return self

    def raw(self, markup: str) -> GDoc:
        self._close()
        self.parts.append(markup)
        return self

    def heading(self, level: int, text: str, hid: str) -> GDoc:
        self._close()
        self.parts.append(f'<h{level} class="c13" id="{hid}">{runs(text)}</h{level}>')
        return self

    def new_list(self) -> str:
        self._list_ids += 1
        return f"gen{self._list_ids:04d}x"

    def li(self, list_id: str, level: int, text: str, ordered: bool = False) -> GDoc:
        tag = "ol" if ordered else "ul"
        if self._open_list != (list_id, level, tag):
            self._close()
            start = ' start="1"' if ordered else ""
            self.parts.append(f'<{tag} class="c10 lst-kix_{list_id}-{level} start"{start}>')
            self._open_list = (list_id, level, tag)
        indent = ("c11", "c15")[level] if level < 2 else "c16"  # Google indents each level 36pt more
        self.parts.append(f'<li class="c2 {indent} li-bullet-0">{runs(text)}</li>')
        return self

    def code_block(self, lines: list[str]) -> GDoc:
        self._close()
        for k, line in enumerate(lines):
            mark = "\uec03" if k == 0 else ""
            self.parts.append(f'<p class="c2">{_span(mark + line, "code")}</p>')
        self.parts.append(f'<p class="c2">{_span(chr(0xEC02), "code")}</p>')
        return self

    def table(self, rows: list[list[str]]) -> GDoc:
        self._close()
        def cells(row: list[str]) -> str:
            return "".join(f'<td class="c2" colspan="1" rowspan="1"><p class="c2">{runs(c)}</p></td>' for c in row)

        body = f'<tr class="c2">{cells(rows[0])}<tbody></tbody></tr>' + "".join(f'<tr class="c2">{cells(r)}</tr>' for r in rows[1:])
        self.parts.append(f'<table class="c10"><thead>{body}</thead></table>')
        return self

    def html(self) -> str:
        self._close()
        notes = "".join(_note(n, text) for n, text in enumerate(self.notes, 1))
        if notes:
            notes = '<hr class="c4">' + notes
        style = "ol{margin:0;padding:0}table td,table th{padding:0}" + "".join(f".{k}{{{v}}}" for k, v in _CLASSES.items())
        return ('<html><head><meta content="text/html; charset=UTF-8" http-equiv="content-type">'
                f'<style type="text/css">{style}</style></head><body class="c1 doc-content">'
                + "".join(self.parts) + notes + "</body></html>")


def _note(n: int, text: str) -> str:
    return f'<div><p class="c2"><a href="#ftnt_ref{n}" id="ftnt{n}">[{n}]</a>{runs(chr(0xA0) + text)}</p></div>'


def seed_html(path: Path = SEED) -> str:
    """The seed MCP doc (a text rendition) as Google would export it."""
    doc = GDoc()
    list_id = None
    for line in path.read_text(encoding="utf-8").splitlines():
        text = re.sub(r"<(https?://[^>]+)>", r"[\1](\1)", line.strip(" -"))
        text = text.replace("](#)", "](https://example.org/doc)")
        if re.match(r"^ ?- ?", line):
            level = 1 if line.startswith(" ") else 0
            list_id = list_id or doc.new_list()
            doc.li(list_id, level, text)
        elif not line.strip():
            doc.p()
        else:
            list_id = None
            if re.search(r"\(\d+ mins\)$", line):
                doc.heading(2, text, f"h.{zlib.crc32(text.encode()):08x}")
            else:
                doc.p(text)
    return doc.html()


def large_html(target_bytes: int = 200_000) -> str:
    """A Google-style doc of about `target_bytes`: headings, styled text, lists, code, tables."""
    doc = GDoc()
    n = 0
    while sum(len(p) for p in doc.parts) + sum(len(_note(k, t)) for k, t in enumerate(doc.notes, 1)) < target_bytes:
        n += 1
        doc.heading(2, f"Section {n}: setting up the **lab** desktop", f"h.sec{n:05d}")
        doc.p(f"Paragraph {n} has **bold**, _italic_, ~~struck~~ and `inline code`, plus a [link](https://example.org/{n}).")
        doc.raw(f'<p class="c2">{runs("A claim that needs a source")}{doc.note(f"Source {n}: the [lab notes](https://example.org/notes/{n}).")}'
                f'{runs(" and goes on.")}</p>')
        doc.p("Smart “quotes”, an ellipsis… and <script>alert(1)</script> that must stay text.")
        lid = doc.new_list()
        for k in range(4):
            doc.li(lid, 0, f"Step {k} of section {n} with **emphasis**")
            doc.li(lid, 1, f"Detail {k}: run `make lab-{k}` and check the _output_")
            if k == 1:  # a step's second paragraph, indented like the step's text (c11: level 0)
                doc.raw(f'<p class="c2 c11">{runs(f"Step {k} goes on: see the **desktop** at `https://lab-{n}`.")}</p>')
        doc.code_block([f"docker run --rm lab:{n}", "  echo 'hello'", "", "exit 0"])
        doc.table([["Tool", "Version", "Notes"], ["python", f"3.{n % 13}", "ok"], ["git", "2.39", "**needed**"]])
    return doc.html()
