"""Write a small Markdown-like text as Google Docs' text/html export would show that doc.

Used to build sample-data and synthetic datasets. The output mimics Google's export closely
(see shared/fixtures/gdoc-export): a `<style>` block of generated `.cN{...}` classes in order
of first use, `lst-kix_<id>-<level>` list classes with `li:before` bullets/counters, links
wrapped in `https://www.google.com/url?q=...&sa=D&source=editors&ust=...&usg=...`, code as
monospace spans, headings with `h.<id>` ids, images in sized spans, comment anchors
`[a]` -> `#cmnt1` with the comment texts at the end.

Input lines:
  `# `..`###### ` headings, `Title: ` is NOT special (headers are paragraphs, as in the MCP docs),
  `- item` / ` - sub item` bullets (one leading space per level, like shared/seed),
  `1. item` numbered, ```` ``` ```` fenced code,
  `![alt](name.png)` an image (served from the item's images/), an empty line an empty paragraph.
Fenced code becomes a Docs code block (U+EC03/U+EC02 markers, Roboto Mono), as Google exports it.
Inline: `**bold**`, `*italic*`, `` `code` ``, `[text](url)`, `[^note text]` a comment anchor.
"""

from __future__ import annotations

import hashlib
import html
import re
import urllib.parse
from dataclasses import dataclass, field

_BASE_STYLE = (
    'ol{margin:0;padding:0}table td,table th{padding:0}'
    '.title{padding-top:0pt;color:#000000;font-size:26pt;padding-bottom:3pt;font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    '.subtitle{padding-top:0pt;color:#666666;font-size:15pt;padding-bottom:16pt;font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    'li{color:#000000;font-size:11pt;font-family:"Arial"}p{margin:0;color:#000000;font-size:11pt;font-family:"Arial"}'
    'h1{padding-top:20pt;color:#000000;font-size:20pt;padding-bottom:6pt;font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    'h2{padding-top:18pt;color:#000000;font-size:16pt;padding-bottom:6pt;font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    'h3{padding-top:16pt;color:#434343;font-size:14pt;padding-bottom:4pt;font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    'h4{padding-top:14pt;color:#666666;font-size:12pt;padding-bottom:4pt;font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    'h5{padding-top:12pt;color:#666666;font-size:11pt;padding-bottom:4pt;font-family:"Arial";line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left}'
    'h6{padding-top:12pt;color:#666666;font-size:11pt;padding-bottom:4pt;font-family:"Arial";line-height:1.15;page-break-after:avoid;font-style:italic;orphans:2;widows:2;text-align:left}'
)

_S_PARA = "padding-top:0pt;padding-bottom:0pt;line-height:1.15;orphans:2;widows:2;text-align:left"
_S_EMPTY = _S_PARA + ";height:11pt"
_S_TEXT = "color:#000000;font-weight:400;text-decoration:none;vertical-align:baseline;font-size:11pt;font-family:\"Arial\";font-style:normal"
_S_BOLD = "font-weight:700"
_S_ITALIC = "font-style:italic"
_S_MONO = 'font-family:"Courier New";font-weight:400'
_S_CODE = 'font-weight:400;font-family:"Roboto Mono"'
_S_CODE_MARK = 'color:#37474f;font-weight:400;font-family:"Roboto Mono"'
_S_LINK_SPAN = "text-decoration:underline;color:#1155cc"
_S_LINK_A = "color:inherit;text-decoration:inherit"
_S_BODY = "background-color:#ffffff;max-width:468pt;padding:72pt 72pt 72pt 72pt"
_S_HEAD = {1: "padding-top:20pt;padding-bottom:6pt;line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left",
           2: "padding-top:18pt;padding-bottom:6pt;line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left",
           3: "padding-top:16pt;padding-bottom:4pt;line-height:1.15;page-break-after:avoid;orphans:2;widows:2;text-align:left"}
_S_HEAD_TEXT = {1: "color:#000000;font-weight:400;text-decoration:none;vertical-align:baseline;font-size:20pt;font-family:\"Arial\";font-style:normal",
                2: "color:#000000;font-weight:400;text-decoration:none;vertical-align:baseline;font-size:16pt;font-family:\"Arial\";font-style:normal",
                3: "color:#434343;font-weight:400;text-decoration:none;vertical-align:baseline;font-size:14pt;font-family:\"Arial\";font-style:normal"}
_S_LIST = "padding:0;margin:0"
_S_COMMENT_DIV = "border:1px solid black;margin:5px"
_S_COMMENT_P = "margin:0;orphans:2;widows:2;text-align:left"
_BULLETS = ["\\0025cf   ", "\\0025cb   ", "\\0025a0   "]


@dataclass
class _Classes:
    """Google numbers classes c0, c1, ... in order of first use; we do the same."""

    order: list[str] = field(default_factory=list)

    def __call__(self, *styles: str) -> str:
        names = []
        for s in styles:
            if s not in self.order:
                self.order.append(s)
            names.append(f"c{self.order.index(s)}")
        return " ".join(names)

    def css(self) -> str:
        return "".join(f".c{i}{{{s}}}" for i, s in enumerate(self.order))


def _esc(text: str) -> str:
    # Google escapes quotes and apostrophes and writes non-ASCII as character references.
    out = html.escape(text, quote=True).replace("&#x27;", "&#39;")
    return out.encode("ascii", "xmlcharrefreplace").decode("ascii")


def _hid(seed: str, n: int = 12) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def google_url(url: str, seed: str) -> str:
    """Google's redirect wrapper around external links in exports."""
    if url.startswith("#"):
        return url
    ust = 1718000000000000 + int(_hid(seed + url, 8), 16) % 10**12
    usg = "AOvVaw" + _hid("usg" + url, 22)
    return f"https://www.google.com/url?q={urllib.parse.quote(url, safe=':/?=&#%+~@!$,;')}&amp;sa=D&amp;source=editors&amp;ust={ust}&amp;usg={usg}"


_INLINE = re.compile(r"\*\*(?P<b>.+?)\*\*|(?<![*\w])\*(?P<i>[^*\s][^*]*?)\*(?!\w)|`(?P<code>[^`]+)`|\[\^(?P<note>[^\]]+)\]|\[(?P<lt>[^\]]+)\]\((?P<lu>[^)\s]+)\)|<(?P<auto>https?://[^>\s]+)>")


class _Writer:
    def __init__(self, seed: str) -> None:
        self.cls = _Classes()
        self.seed = seed
        self.comments: list[str] = []
        self.list_ids: dict[str, str] = {}
        self.list_css: list[str] = []
        self.heading_n = 0

    def text_span(self, text: str, *extra: str) -> str:
        return f'<span class="{self.cls(_S_TEXT, *extra)}">{_esc(text)}</span>'

    def inline(self, text: str, base: tuple[str, ...] = ()) -> str:
        out: list[str] = []
        pos = 0
        for m in _INLINE.finditer(text):
            if m.start() > pos:
                out.append(self.text_span(text[pos:m.start()], *base))
            if m.group("b") is not None:
                out.append(self.text_span(m.group("b"), *base, _S_BOLD))
            elif m.group("i") is not None:
                out.append(self.text_span(m.group("i"), *base, _S_ITALIC))
            elif m.group("code") is not None:
                out.append(self.text_span(m.group("code"), *base, _S_MONO))
            elif m.group("note") is not None:
                self.comments.append(m.group("note"))
                n = len(self.comments)
                out.append(f'<sup><a href="#cmnt{n}" id="cmnt_ref{n}">[{_letters(n)}]</a></sup>')
            else:
                label = m.group("lt") or m.group("auto")
                url = m.group("lu") or m.group("auto")
                out.append(f'<span class="{self.cls(_S_LINK_SPAN, *base)}"><a class="{self.cls(_S_LINK_A)}" href="{google_url(url, self.seed) if not url.startswith("#") else url}">{_esc(label)}</a></span>')
            pos = m.end()
        if pos < len(text) or not out:
            out.append(self.text_span(text[pos:], *base))
        return "".join(out)

    def list_class(self, kind: str, level: int, group: int) -> str:
        key = f"{kind}{group}"
        if key not in self.list_ids:
            self.list_ids[key] = _hid(f"{self.seed}/list/{key}")
        lid = self.list_ids[key]
        name = f"lst-kix_{lid}-{level}"
        if name not in "".join(self.list_css):
            if kind == "ul":
                self.list_css.append(f'.{name}>li:before{{content:"{_BULLETS[level % 3]}"}}ul.{name}{{list-style-type:none}}')
            else:
                self.list_css.append(f'.{name}>li{{counter-increment:lst-ctn-kix_{lid}-{level}}}ol.{name}.start{{counter-reset:lst-ctn-kix_{lid}-{level} 0}}.{name}>li:before{{content:"" counter(lst-ctn-kix_{lid}-{level},decimal) ". "}}ol.{name}{{list-style-type:none}}')
        return name


def _letters(n: int) -> str:
    s = ""
    while n:
        n, r = divmod(n - 1, 26)
        s = chr(97 + r) + s
    return s


def render(source: str, seed: str = "doc", images: dict[str, tuple[int, int]] | None = None) -> str:
    """The export HTML for `source` (see module doc). `seed` makes ids stable per doc."""
    w = _Writer(seed)
    body: list[str] = []
    lines = source.split("\n")
    i = 0
    list_group = 0
    prev_list: tuple[str, int] | None = None  # (kind, level) of the previous line, for <ul>/<ol> runs
    open_list: list[str] = []  # items of the current run
    run_tag = ""

    def flush() -> None:
        nonlocal open_list, run_tag
        if open_list:
            body.append(run_tag + "".join(open_list) + ("</ul>" if run_tag.startswith("<ul") else "</ol>"))
        open_list, run_tag = [], ""

    # A list continues (same lst-kix id, numbering goes on) across code blocks and paragraphs
    # between its items, as in Google Docs; a heading or an empty line ends it.
    counts: dict[tuple[str, int], int] = {}
    in_group = False
    while i < len(lines):
        line = lines[i]
        m_list = re.match(r"^( *)(?:([-*])|(\d+)\.) (.*)$", line)
        if line.startswith("```"):
            # A Docs "code block" building block: the export marks its start and end with the
            # private-use characters U+EC03 / U+EC02 in Roboto Mono spans, lines as paragraphs.
            flush()
            prev_list = None
            i += 1
            first = True
            while i < len(lines) and not lines[i].startswith("```"):
                code = lines[i]
                lead = len(code) - len(code.lstrip(" "))
                spans = f'<span class="{w.cls(_S_CODE_MARK)}">&#60419;</span>' if first else ""
                if lead:
                    spans += f'<span class="{w.cls(_S_CODE)}">{"&nbsp;" * lead}</span>'
                if code.strip():
                    spans += f'<span class="{w.cls(_S_CODE_MARK)}">{_esc(code.lstrip(" "))}</span>'
                if not spans:
                    body.append(f'<p class="{w.cls(_S_PARA, "height:11pt")}"><span class="{w.cls(_S_TEXT, _S_CODE)}"></span></p>')
                else:
                    body.append(f'<p class="{w.cls(_S_PARA)}">{spans}</p>')
                first = False
                i += 1
            body.append(f'<p class="{w.cls(_S_PARA)}"><span class="{w.cls(_S_CODE_MARK)}">&#60418;</span></p>')
            i += 1
            continue
        if m_list:
            kind = "ul" if m_list.group(2) else "ol"
            level = min(len(m_list.group(1)), 8)
            if prev_list is None and not in_group:
                list_group += 1
                counts = {}
            in_group = True
            if prev_list != (kind, level):
                flush()
                name = w.list_class(kind, level, list_group)
                start = " start" if (kind, level) not in counts else ""
                extra = f' start="{counts.get((kind, level), 0) + 1}"' if kind == "ol" else ""
                run_tag = f'<{kind} class="{w.cls(_S_LIST)} {name}{start}"{extra}>'
            counts[(kind, level)] = counts.get((kind, level), 0) + 1
            margin = f"margin-left:{36 * (level + 1)}pt;padding-left:0pt"
            open_list.append(f'<li class="{w.cls(_S_PARA, margin)} li-bullet-0">{w.inline(m_list.group(4))}</li>')
            prev_list = (kind, level)
            i += 1
            continue
        flush()
        prev_list = None
        m_head = re.match(r"^(#{1,6}) (.*)$", line)
        m_img = re.match(r"^!\[([^\]]*)\]\(([^)]+)\)$", line.strip())
        if m_head or not line.strip():
            in_group = False
        if m_head:
            level = min(len(m_head.group(1)), 3)
            w.heading_n += 1
            hid = "h." + _hid(f"{seed}/h/{w.heading_n}/{m_head.group(2)}")
            body.append(f'<h{level} class="{w.cls(_S_HEAD[level])}" id="{hid}">{w.inline(m_head.group(2), (_S_HEAD_TEXT[level],))}</h{level}>')
        elif m_img:
            name = m_img.group(2)
            width, height = (images or {}).get(name, (320, 180))
            box = f"width: {width:.2f}px; height: {height:.2f}px;"
            rot = "transform: rotate(0.00rad) translateZ(0px); -webkit-transform: rotate(0.00rad) translateZ(0px);"
            body.append(
                f'<p class="{w.cls(_S_PARA)}"><span style="overflow: hidden; display: inline-block; margin: 0.00px 0.00px; border: 0.00px solid #000000; {rot} {box}">'
                f'<img alt="{_esc(m_img.group(1))}" src="../images/{_esc(name)}" style="{box} margin-left: 0.00px; margin-top: 0.00px; {rot}" title=""></span></p>'
            )
        elif not line.strip():
            body.append(f'<p class="{w.cls(_S_PARA, "height:11pt")}"><span class="{w.cls(_S_TEXT)}"></span></p>')
        else:
            body.append(f'<p class="{w.cls(_S_PARA)}">{w.inline(line)}</p>')
        i += 1
    flush()
    for n, note in enumerate(w.comments, 1):
        body.append(f'<div class="{w.cls(_S_COMMENT_DIV)}"><p class="{w.cls(_S_COMMENT_P)}"><a href="#cmnt_ref{n}" id="cmnt{n}">[{_letters(n)}]</a><span class="{w.cls(_S_TEXT)}">{_esc(note)}</span></p></div>')
    body_cls = w.cls(_S_BODY)
    css = "".join(w.list_css) + _BASE_STYLE + w.cls.css()
    return (
        '<html><head><meta content="text/html; charset=UTF-8" http-equiv="content-type">'
        f'<style type="text/css">{css}</style></head><body class="{body_cls} doc-content">{"".join(body)}</body></html>'
    )
