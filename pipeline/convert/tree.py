"""The two trees: Google's export is read with lxml, the semantic result is a BeautifulSoup tree.

Reading the export through BeautifulSoup cost more than all other work on a 200 KB doc (bs4
builds a Python object per node and its find*/get_text go through a generic filter machine), so
the export is parsed and walked with lxml's C tree; markdownify needs bs4, so the small semantic
tree we build is bs4, with `FastTag` answering markdownify's hot look-ups directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeAlias

import lxml.html
from bs4 import Tag
from lxml.etree import ParserError

# lxml ships no type hints: its elements are typed as Any here, not guessed at.
Element: TypeAlias = Any
_PARSER = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True)


def parse(html: str) -> Element:
    """The export as an lxml tree (always an <html> root); bytes avoid lxml's refusal of
    str input that carries an XML encoding declaration."""
    try:
        return lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"), parser=_PARSER)
    except (ParserError, ValueError):  # empty or whitespace-only document
        return lxml.html.document_fromstring(b"<html><body></body></html>", parser=_PARSER)


def tag_of(node: Element) -> str | None:
    tag = node.tag
    return tag.lower() if isinstance(tag, str) else None


def child_tags(node: Element, names: Iterable[str] | None = None) -> Iterator[Element]:
    wanted = frozenset(names) if names is not None else None
    for child in node:
        tag = tag_of(child)
        if tag is not None and (wanted is None or tag in wanted):
            yield child


def first_descendant(node: Element, names: Iterable[str]) -> Element | None:
    return next(node.iterdescendants(*names), None)


def text_of(node: Element) -> str:
    return str(node.text_content())


def is_blank(node: Element) -> bool:
    """No visible text and no image."""
    return not node.text_content().strip() and first_descendant(node, ("img",)) is None


def classes(node: Element) -> str:
    return str(node.get("class") or "")


class FastTag(Tag):
    """The semantic tree's tags: markdownify asks every node for its `pre` parent and every list
    item for its previous siblings; answer those by walking pointers, not through bs4's filters."""

    def find_parent(self, name: Any = None, attrs: Any = {}, **kwargs: Any) -> Any:  # noqa: B006 - bs4's signature
        if not isinstance(name, str) or attrs or kwargs:
            return super().find_parent(name, attrs, **kwargs)
        node = self.parent
        while node is not None:
            if node.name == name:
                return node
            node = node.parent
        return None

    def find_previous_siblings(self, name: Any = None, attrs: Any = {}, string: Any = None, limit: Any = None,  # noqa: B006
                               **kwargs: Any) -> Any:
        if not isinstance(name, str) or attrs or string is not None or limit is not None or kwargs:
            return super().find_previous_siblings(name, attrs, string, limit, **kwargs)
        out: list[Tag] = []
        node = self.previous_sibling
        while node is not None:
            if isinstance(node, Tag) and node.name == name:
                out.append(node)
            node = node.previous_sibling
        return out
