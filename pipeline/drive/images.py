"""Which images of a Doc's HTML export docpipe fetches: <img> sources, and Google's image hosts."""

from __future__ import annotations

import urllib.parse
from html.parser import HTMLParser


class _ImgParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sources: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            src = dict(attrs).get("src")
            if src and src not in self.sources and urllib.parse.urlsplit(src).scheme in ("http", "https"):
                self.sources.append(src)


_GOOGLE_IMAGE_DOMAINS = ("googleusercontent.com", "google.com", "ggpht.com", "gstatic.com")


def google_image_host(url: str) -> bool:
    """Whether `url` is https on one of the hosts Google serves Docs images from."""
    parts = urllib.parse.urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme == "https" and any(host == d or host.endswith("." + d) for d in _GOOGLE_IMAGE_DOMAINS)


def image_sources(html: bytes) -> list[str]:
    """The distinct http(s) `src` values of <img> tags (entities decoded), in document order."""
    if b"<img" not in html.lower():
        return []  # most revisions: skip parsing altogether
    parser = _ImgParser()
    parser.feed(html.decode("utf-8", "replace"))
    parser.close()
    return parser.sources
