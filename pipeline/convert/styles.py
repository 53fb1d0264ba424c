"""Google's export stylesheet: `.cN` class rules and inline `style=` resolved to text formats.

The stylesheet is parsed once per document; flags are cached per (class attribute, style attribute)
pair, so a 200 KB export with thousands of spans parses CSS a few dozen times, not per node.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, cached_property

# Fonts Google Docs offers (or imports) whose text reads as code. Anything whose family name
# contains "mono" or "code" also counts (e.g. "Noto Sans Mono", "Source Code Pro").
MONOSPACE_FONTS = frozenset(
    {
        "courier", "courier new", "consolas", "monaco", "menlo", "inconsolata", "lucida console",
        "andale mono", "cousine", "anonymous pro", "monospace", "ocr a std", "nanum gothic coding",
    }
)

# CSS lengths in points: Google writes `pt`; hand-made or re-saved exports may use others.
_LENGTH = re.compile(r"^(-?[0-9.]+)(pt|px|in|cm|mm|pc)?$")
_POINTS = {"pt": 1.0, "px": 0.75, "in": 72.0, "cm": 72 / 2.54, "mm": 72 / 25.4, "pc": 12.0, None: 0.75}

_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_SIMPLE_CLASS = re.compile(r"^\.([A-Za-z0-9_-]+)$")
_HEADING_RULE = re.compile(r"^(h[1-6]|\.title|\.subtitle)$")
# `.lst-kix_<id>-<level>>li:before{content:...}`: the marker Google draws before each item.
_MARKER_RULE = re.compile(r"^\.(lst-kix_[A-Za-z0-9_]+-\d+)\s*>\s*li:before$")
# list-style-type values (CSS Lists 3) that draw a glyph rather than a number or letter.
_BULLET_TYPES = frozenset({"disc", "circle", "square", "disclosure-open", "disclosure-closed"})
# Class names that carry structure rather than style: they need no stylesheet rule.
_STRUCTURAL = re.compile(r"^(doc-content|title|subtitle|start|lst-kix_.*|li-bullet-\d+)$")

# Text formats, in the tie-break order used when nesting them (outermost first).
STRONG, EM, DEL, SUP, SUB, CODE = "strong", "em", "del", "sup", "sub", "code"


def parse_declarations(text: str) -> dict[str, str]:
    """`a:b; c:d` -> {"a": "b", "c": "d"} (lower-cased names, last one wins as in CSS)."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, sep, value = part.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def is_monospace(family: str) -> bool:
    for name in family.split(","):
        name = name.strip().strip("\"'").lower()
        if name in MONOSPACE_FONTS or "mono" in name or " code" in name:
            return True
    return False


def points(value: str | None) -> float:
    """A CSS length in points (0 for what cannot be read, e.g. `auto` or `em`)."""
    if not value:
        return 0.0
    m = _LENGTH.match(value.strip().lower())
    if m is None:
        return 0.0
    try:
        return float(m.group(1)) * _POINTS[m.group(2)]
    except ValueError:
        return 0.0


@dataclass(frozen=True)
class Look:
    """What a run's CSS says about its text. None means "not set here" (inherit)."""

    bold: bool | None = None
    italic: bool | None = None
    mono: bool | None = None
    strike: bool = False
    valign: str | None = None  # "super" | "sub" | "" (baseline) | None
    align: str | None = None  # paragraph text-align: left/right/center/justify
    hidden: bool = False

    def over(self, parent: Look) -> Look:
        """This look on top of its parent's, the way CSS inherits (line-through propagates)."""
        return _over(self, parent)

    @cached_property
    def formats(self) -> frozenset[str]:
        fmts = set()
        if self.bold:
            fmts.add(STRONG)
        if self.italic:
            fmts.add(EM)
        if self.strike:
            fmts.add(DEL)
        if self.valign == "super":
            fmts.add(SUP)
        elif self.valign == "sub":
            fmts.add(SUB)
        if self.mono:
            fmts.add(CODE)
        return frozenset(fmts)


@cache
def _over(self: Look, parent: Look) -> Look:
    """Memoised: a document has a few dozen distinct looks and thousands of spans."""
    return Look(
        bold=self.bold if self.bold is not None else parent.bold,
        italic=self.italic if self.italic is not None else parent.italic,
        mono=self.mono if self.mono is not None else parent.mono,
        strike=self.strike or parent.strike,
        valign=self.valign if self.valign is not None else parent.valign,
        align=self.align if self.align is not None else parent.align,
        hidden=self.hidden or parent.hidden,
    )


def look_of(decls: dict[str, str]) -> Look:
    bold = italic = mono = None
    valign = align = None
    weight = decls.get("font-weight")
    if weight:
        bold = int(weight) >= 600 if weight.isdigit() else weight in ("bold", "bolder")
    style = decls.get("font-style")
    if style:
        italic = style in ("italic", "oblique")
    family = decls.get("font-family")
    if family:
        mono = is_monospace(family)
    va = decls.get("vertical-align")
    if va:
        valign = va if va in ("super", "sub") else ""
    ta = decls.get("text-align")
    if ta:
        align = ta
    decoration = decls.get("text-decoration", "") + " " + decls.get("text-decoration-line", "")
    hidden = decls.get("display") == "none"
    return Look(bold, italic, mono, "line-through" in decoration, valign, align, hidden)


@dataclass
class StyleSheet:
    """The `.cN` rules of one export, and every class the body used but the sheet lacks."""

    classes: dict[str, dict[str, str]]
    # Rules for h1-h6, `.title` and `.subtitle` (the named paragraph styles), by selector.
    named: dict[str, dict[str, str]] = field(default_factory=dict)
    # The `content` of each `.lst-kix_<id>-<level>>li:before` rule, by class name.
    markers: dict[str, str] = field(default_factory=dict)
    _cache: dict[tuple[str, str], Look] = field(default_factory=dict)
    _indents: dict[tuple[str, str], float] = field(default_factory=dict)
    undefined: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, css: str) -> StyleSheet:
        classes: dict[str, dict[str, str]] = {}
        named: dict[str, dict[str, str]] = {}
        markers: dict[str, str] = {}
        css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
        css = re.sub(r"@import[^;]*;", "", css)
        for selectors, body in _RULE.findall(css):
            decls = None
            for selector in selectors.split(","):
                selector = selector.strip()
                m = _SIMPLE_CLASS.match(selector)
                if m:
                    decls = decls if decls is not None else parse_declarations(body)
                    classes.setdefault(m.group(1), {}).update(decls)
                    if selector in (".title", ".subtitle"):
                        named.setdefault(selector, {}).update(decls)
                elif _HEADING_RULE.match(selector):
                    decls = decls if decls is not None else parse_declarations(body)
                    named.setdefault(selector, {}).update(decls)
                elif "li:before" in selector:
                    marker = _MARKER_RULE.match(selector)
                    if marker:
                        decls = decls if decls is not None else parse_declarations(body)
                        if "content" in decls:
                            markers[marker.group(1)] = decls["content"]
        return cls(classes, named, markers)

    def list_kind(self, class_attr: str) -> str | None:
        """"ul" or "ol" as the export's CSS draws a list, None when its CSS does not say.

        Google's exports from before about 2015 write every list as `<ol>`; what it shows is in
        the CSS: the `lst-kix_<id>-<level>>li:before` marker (a counter, or a glyph such as
        U+25CF) or, in the oldest exports, a class rule's `list-style-type`."""
        names = class_attr.split()
        for name in names:
            content = self.markers.get(name)
            if content is not None:
                if "counter(" in content:
                    return "ol"
                if content.strip().strip("\"'").strip() and content.strip() != "none":
                    return "ul"
        style = self._declarations(class_attr, "").get("list-style-type", "").lower()
        if style in _BULLET_TYPES:
            return "ul"
        if style and style != "none" and not style.startswith(("url(", '"', "'")):
            return "ol"  # decimal, lower-latin, upper-roman...: numbered
        return None

    def named_bold(self, selector: str, class_attr: str = "", style_attr: str = "") -> bool:
        """Whether a named style (`h2`, `.title`) with these classes draws its text bold: bold
        that only repeats it says nothing a Markdown heading does not already say."""
        decls = dict(self.named.get(selector, {}))
        decls.update(self._declarations(class_attr, style_attr))
        return bool(look_of(decls).bold)

    def look(self, class_attr: str, style_attr: str = "") -> Look:
        """The look of an element from its `class` and `style` attributes (cached)."""
        key = (class_attr, style_attr)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        decls = self._declarations(class_attr, style_attr)
        self.undefined.update(n for n in class_attr.split() if n not in self.classes and not _STRUCTURAL.match(n))
        result = self._cache[key] = look_of(decls)
        return result

    def indent(self, class_attr: str, style_attr: str = "") -> float:
        """How far a block's text starts from the left edge, in points (margin + padding)."""
        key = (class_attr, style_attr)
        hit = self._indents.get(key)
        if hit is not None:
            return hit
        decls = self._declarations(class_attr, style_attr)
        result = self._indents[key] = points(decls.get("margin-left")) + points(decls.get("padding-left"))
        return result

    def _declarations(self, class_attr: str, style_attr: str) -> dict[str, str]:
        """The CSS that applies to an element: its classes' rules in order, then its own style."""
        decls: dict[str, str] = {}
        for name in class_attr.split():
            decls.update(self.classes.get(name, {}))
        if style_attr:
            decls.update(parse_declarations(style_attr))
        return decls
