"""``fetch_page``: a web page through the outbound guard, as markdown, text or HTML, with its
title and its links made absolute.

HTML (and XHTML) pages are extracted (:mod:`.extract`); ``text/*``, JSON and XML responses
are returned as text; anything else (images, PDFs, archives) fails with
``UnsupportedContent``. A status other than 2xx fails with ``UnexpectedStatus`` (429 and 5xx
retried). A page larger than ``maxBytes`` is cut there while downloading (``truncated``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio.to_thread
import attrs

from ...authoring import Kind, RetryPolicy, RunContext
from .common import (
    HTTP_MODULES,
    MAX_TIMEOUT_SECONDS,
    PAGE_MODULES,
    check_max_bytes,
    check_timeout,
    check_url,
    require_extra,
)

FORMATS = ("markdown", "text", "html")
ACCEPT = "text/html,application/xhtml+xml;q=0.9,text/plain;q=0.8,*/*;q=0.1"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", ""})
TEXT_TYPES = frozenset({"application/json", "application/xml", "application/rss+xml"})


@attrs.frozen
class FetchPageConfig:
    """``{url, format, maxBytes, timeoutSeconds}``; only ``url`` is required.

    ``format``: ``markdown`` (the main content, links kept), ``text`` (the main content as
    plain text) or ``html`` (the page as served). ``timeoutSeconds`` bounds the whole
    download (redirects included), ``maxBytes`` how much of the page is read."""

    url: str = attrs.field(validator=check_url)
    format: str = attrs.field(default="markdown", validator=attrs.validators.in_(FORMATS))
    max_bytes: int = attrs.field(default=5 * 1024 * 1024, validator=check_max_bytes)
    timeout_seconds: float = attrs.field(default=30.0, validator=check_timeout)

    def __attrs_post_init__(self) -> None:
        require_extra("fetch_page", HTTP_MODULES + PAGE_MODULES)


async def execute(ctx: RunContext) -> dict[str, Any]:
    from .display import redact_url, size
    from .errors import UnsupportedContent
    from .exchange import Outbound, check_status
    from .extract import decode_html, extract_page, extract_text

    config: FetchPageConfig = ctx.definition
    exchange = await Outbound(ctx).request(
        "GET",
        config.url,
        headers={"Accept": ACCEPT},
        timeout=config.timeout_seconds,
        max_bytes=config.max_bytes,
    )
    check_status(exchange)
    kind, final_url = exchange.content_type, exchange.final_url
    text = decode_html(exchange.body, exchange.charset)
    if kind in HTML_TYPES:
        # Parsing takes milliseconds (the first page ~100 ms): off the event loop, so the
        # worker's heartbeats and other runs go on meanwhile.
        page = await anyio.to_thread.run_sync(extract_page, text, final_url, config.format)
    elif kind.startswith("text/") or kind in TEXT_TYPES or kind.endswith(("+json", "+xml")):
        page = extract_text(text)
    else:
        raise UnsupportedContent(f"{redact_url(final_url)} is {kind}, not a page")
    await ctx.log(
        "info",
        f"extracted {config.format}: {size(len(page.content.encode()))}, "
        f"{len(page.links)} links" + (f", title {page.title!r}" if page.title else ""),
        data={"format": config.format, "chars": len(page.content), "links": len(page.links)},
    )
    return {
        "url": redact_url(config.url),
        "finalUrl": redact_url(final_url),
        "status": exchange.status,
        "title": page.title,
        "content": page.content,
        "links": page.links,
        "truncated": exchange.truncated,
    }


def describe(progress: Mapping[str, Any]) -> str | None:
    if progress.get("phase") == "reading":
        return f"downloading {progress.get('url')} ({progress.get('bytes', 0)} bytes)"
    if progress.get("phase") == "requesting":
        return f"requesting {progress.get('url')}"
    return None


KIND = Kind(
    name="fetch_page",
    executor=execute,
    config=FetchPageConfig,
    display_name="Fetch page",
    description="Downloads a web page and returns its title, links and content as markdown, "
    "text or HTML.",
    pausable=False,
    cancellable=True,
    retry=RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=60.0),
    timeout_seconds=MAX_TIMEOUT_SECONDS + 60,
    describe_progress=describe,
    example={
        "url": "https://docs.python.org/3/library/ipaddress.html",
        "format": "markdown",
        "maxBytes": 2097152,
        "timeoutSeconds": 20,
    },
)
