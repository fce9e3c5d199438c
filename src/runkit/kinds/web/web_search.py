"""``web_search``: a query to the configured search provider (:mod:`.search`); the results.

With no provider ready (the built-in one needs ``RUNKIT_SEARCH_URL``), creating a run is a
422 that says what to set. The provider's requests go through the outbound guard and appear
in the run's log like any other request.
"""

from __future__ import annotations

from typing import Any

import attrs

from ...authoring import Kind, RetryPolicy, RunContext, not_blank
from .common import HTTP_MODULES, require_extra

MAX_QUERY_CHARS = 2000
MAX_RESULTS = 50


@attrs.frozen
class WebSearchConfig:
    """``{query, maxResults}``: up to ``maxResults`` (1 to 50, default 5) results."""

    query: str = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.min_len(1), attrs.validators.max_len(MAX_QUERY_CHARS), not_blank
        )
    )
    max_results: int = attrs.field(
        default=5, validator=[attrs.validators.ge(1), attrs.validators.le(MAX_RESULTS)]
    )

    def __attrs_post_init__(self) -> None:
        require_extra("web_search", HTTP_MODULES)
        from .search import select_provider

        select_provider()  # ValueError naming the setting when none is ready


async def execute(ctx: RunContext) -> dict[str, Any]:
    from .exchange import Outbound
    from .search import select_provider

    config: WebSearchConfig = ctx.definition
    provider = select_provider()
    hits = await provider.search(config.query, config.max_results, Outbound(ctx))
    hits = hits[: config.max_results]
    await ctx.log(
        "info",
        f"{provider.name}: {len(hits)} result{'s' if len(hits) != 1 else ''} for {config.query!r}",
        data={"provider": provider.name, "results": len(hits)},
    )
    return {
        "query": config.query,
        "provider": provider.name,
        "results": [hit.to_json() for hit in hits],
    }


KIND = Kind(
    name="web_search",
    executor=execute,
    config=WebSearchConfig,
    display_name="Web search",
    description="Searches the web through the configured provider (SearXNG built in).",
    pausable=False,
    cancellable=True,
    retry=RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=60.0),
    timeout_seconds=120.0,
    example={"query": "postgres advisory locks vs SKIP LOCKED", "maxResults": 5},
)
