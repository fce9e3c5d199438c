"""A fetched page as a title, links and readable content (fetch_page). No HTML parsing of our
own: Lexbor (selectolax) parses, trafilatura finds the main content, markdownify converts
what trafilatura gives up on.

The recipe (tried on real pages): make every link absolute in the Lexbor tree first, so
that all three outputs carry absolute URLs; title from ``<title>`` (trafilatura's metadata
title is the first ``<h1>``); body from trafilatura; if that is missing or short, again with
``favor_recall``; if still short, the main element, stripped of scripts, navigation and
asides, through markdownify (or its text).
"""

from __future__ import annotations

import re
from urllib.parse import urldefrag, urljoin

import attrs
import markdownify
import trafilatura
from selectolax.lexbor import LexborHTMLParser

#: Shorter than this, trafilatura's extraction is taken as a miss and the next step runs.
MIN_CONTENT_CHARS = 200
#: Links kept at most, in page order, without repeats.
MAX_LINKS = 500
_CLUTTER = "script, style, noscript, template, svg, iframe, nav, footer, aside, form"
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
_SPACE = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n\s*\n\s*(\n\s*)+")
_SKIPPED_SCHEMES = ("javascript:", "mailto:", "tel:", "data:", "ftp:")


@attrs.frozen
class Page:
    title: str | None
    content: str
    links: list[dict[str, str]]


def decode_html(body: bytes, header_charset: str | None) -> str:
    """The page's text: the charset of the Content-Type header, else of a ``<meta>`` in the
    first 4 KiB, else UTF-8; undecodable bytes are replaced, never an error."""
    charset = header_charset
    if charset is None:
        found = _META_CHARSET.search(body[:4096])
        charset = found.group(1).decode("ascii") if found else None
    if body.startswith(b"\xef\xbb\xbf"):
        charset = "utf-8-sig"
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:
        return body.decode("utf-8", errors="replace")


def _collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _absolute(base: str, href: str) -> str | None:
    href = href.strip()
    if not href or href.startswith("#") or href.lower().startswith(_SKIPPED_SCHEMES):
        return None
    try:
        url = urldefrag(urljoin(base, href)).url
    except ValueError:
        return None
    return url if url.startswith(("http://", "https://")) else None


def _title(tree: LexborHTMLParser) -> str | None:
    node = tree.css_first("title")
    if node is not None and _collapse(node.text()):
        return _collapse(node.text())
    meta = tree.css_first('meta[property="og:title"]')
    if meta is not None and (meta.attributes.get("content") or "").strip():
        return _collapse(meta.attributes.get("content") or "")
    h1 = tree.css_first("h1")
    if h1 is not None and _collapse(h1.text()):
        return _collapse(h1.text())
    return None


def _links(tree: LexborHTMLParser, base: str) -> list[dict[str, str]]:
    """Every ``a[href]`` made absolute against the page's base (``<base href>`` if any),
    its href rewritten in the tree; the list keeps the first of each URL."""
    links: list[dict[str, str]] = []
    seen: set[str] = set()
    for node in tree.css("a[href], area[href]"):
        url = _absolute(base, node.attributes.get("href") or "")
        if url is None:
            continue
        node.attrs["href"] = url
        if url not in seen and len(links) < MAX_LINKS:
            seen.add(url)
            links.append({"url": url, "text": _collapse(node.text(separator=" "))})
    for node in tree.css("img[src]"):
        src = _absolute(base, node.attributes.get("src") or "")
        if src is not None:
            node.attrs["src"] = src
    return links


def _fallback(tree: LexborHTMLParser, fmt: str) -> str:
    for node in tree.css(_CLUTTER):
        node.decompose()
    main = tree.css_first("main") or tree.css_first("article") or tree.body
    if main is None:
        return ""
    if fmt == "markdown":
        text = markdownify.markdownify(main.html or "", heading_style="ATX")
    else:
        text = main.text(separator="\n")
    return _BLANK_LINES.sub("\n\n", text).strip()


def _trafilatura(html: str, url: str, fmt: str, recall: bool) -> str:
    found = trafilatura.extract(
        html,
        url=url,
        output_format="markdown" if fmt == "markdown" else "txt",
        include_links=fmt == "markdown",
        include_formatting=fmt == "markdown",
        include_tables=True,
        include_images=False,
        include_comments=False,
        favor_recall=recall,
        with_metadata=False,
    )
    return found.strip() if found else ""


def extract_page(html: str, final_url: str, fmt: str) -> Page:
    """``html`` (fetched from ``final_url``) as ``fmt``: ``markdown``, ``text`` or ``html``
    (the page as served, decoded)."""
    tree = LexborHTMLParser(html)
    base_node = tree.css_first("base[href]")
    base = final_url
    if base_node is not None:
        base = _absolute(final_url, base_node.attributes.get("href") or "") or final_url
    title = _title(tree)
    links = _links(tree, base)
    if fmt == "html":
        return Page(title, html, links)
    rewritten = tree.html or html
    content = _trafilatura(rewritten, final_url, fmt, recall=False)
    if len(content) < MIN_CONTENT_CHARS:
        content = max(content, _trafilatura(rewritten, final_url, fmt, recall=True), key=len)
    if len(content) < MIN_CONTENT_CHARS:
        content = max(content, _fallback(tree, fmt), key=len)
    return Page(title, content, links)


def extract_text(text: str) -> Page:
    """A ``text/plain`` (or JSON, XML) response: its text as the content."""
    return Page(None, text, [])
