"""A web page read through the outbound guard as a title, links and content: ``fetch_page``'s
reading, for the kinds that read pages as a part of their work (``agent_search`` and
``agent_fetch_page`` of :mod:`runkit.kinds.llm`).

HTML (and XHTML) is extracted (:mod:`.extract`), off the event loop; ``text/*``, JSON and
XML are taken as text; anything else raises ``UnsupportedContent``, a status other than
2xx ``UnexpectedStatus`` (429 and 5xx retryable), as ``fetch_page`` does. Needs httpx and
the extraction libraries (``runkit[web]``): import it where a page is read.
"""

from __future__ import annotations

import anyio.to_thread
import attrs

from .display import redact_url
from .errors import UnsupportedContent
from .exchange import Outbound, check_status
from .extract import decode_html, extract_page, extract_text

ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})
TEXT_TYPES = frozenset({"application/json", "application/xml", "application/rss+xml"})


@attrs.frozen
class FetchedPage:
    """A page as read: ``url`` as asked and ``final_url`` after redirects (both with their
    secrets redacted), its title (None: none found), content and links."""

    url: str
    final_url: str
    status: int
    title: str | None
    content: str
    links: list[dict[str, str]]
    truncated: bool


def is_text(content_type: str) -> bool:
    return (
        content_type.startswith("text/")
        or content_type in TEXT_TYPES
        or content_type.endswith(("+json", "+xml"))
    )


async def read_page(
    outbound: Outbound,
    url: str,
    *,
    fmt: str = "markdown",
    max_bytes: int = 2 * 1024 * 1024,
    timeout: float = 30.0,
) -> FetchedPage:
    """GET ``url`` through ``outbound`` (the guard, the run's log) and read it as ``fmt``
    (``markdown``, ``text`` or ``html``)."""
    exchange = await outbound.request(
        "GET", url, headers={"Accept": ACCEPT}, timeout=timeout, max_bytes=max_bytes
    )
    check_status(exchange)
    kind, final_url = exchange.content_type, exchange.final_url
    text = decode_html(exchange.body, exchange.charset)
    if kind in HTML_TYPES:
        # Parsing takes milliseconds (the first page ~100 ms): off the event loop, so the
        # worker's heartbeats and other runs go on meanwhile.
        page = await anyio.to_thread.run_sync(extract_page, text, final_url, fmt)
    elif is_text(kind):
        page = extract_text(text)
    else:
        raise UnsupportedContent(f"{redact_url(final_url)} is {kind}, not a page")
    return FetchedPage(
        url=redact_url(url),
        final_url=redact_url(final_url),
        status=exchange.status,
        title=page.title,
        content=page.content,
        links=page.links,
        truncated=exchange.truncated,
    )
