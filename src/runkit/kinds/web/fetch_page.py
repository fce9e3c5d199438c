"""``fetch_page``: a web page through the outbound guard, as markdown, text or HTML, with its
title and its links made absolute.

HTML (and XHTML) pages are extracted (:mod:`.extract`); ``text/*``, JSON and XML responses
are returned as text; anything else (images, PDFs, archives) fails with
``UnsupportedContent``. A status other than 2xx fails with ``UnexpectedStatus`` (429 and 5xx
retried). A page larger than ``maxBytes`` is cut there while downloading (``truncated``).
The reading itself is :func:`.page.read_page`, shared with the kinds that read pages as a
part of their work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    from .display import size
    from .exchange import Outbound
    from .page import read_page

    config: FetchPageConfig = ctx.definition
    page = await read_page(
        Outbound(ctx),
        config.url,
        fmt=config.format,
        max_bytes=config.max_bytes,
        timeout=config.timeout_seconds,
    )
    await ctx.log(
        "info",
        f"extracted {config.format}: {size(len(page.content.encode()))}, "
        f"{len(page.links)} links" + (f", title {page.title!r}" if page.title else ""),
        data={"format": config.format, "chars": len(page.content), "links": len(page.links)},
    )
    return {
        "url": page.url,
        "finalUrl": page.final_url,
        "status": page.status,
        "title": page.title,
        "content": page.content,
        "links": page.links,
        "truncated": page.truncated,
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
