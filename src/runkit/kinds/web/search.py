"""Search providers for ``web_search``: plugins that turn a query into results.

A provider is any object with ``name``, ``problem()`` (None when it is ready to search,
otherwise what to configure: a 422 at create time) and ``async search(query, max_results,
outbound)``, which makes its requests through ``outbound`` (:class:`~.exchange.Outbound`: the
outbound guard, logged in the run). Providers come from, in this order:

1. :func:`register_search_provider` (a host or plugin calls it at import or start-up);
2. the ``runkit.search_providers`` entry-point group: an installed package declares
   ``[project.entry-points."runkit.search_providers"] name = "pkg.module:provider"`` (an
   object, or a class or function called without arguments to make one);
3. the built-in SearXNG provider, configured by ``RUNKIT_SEARCH_URL``.

The provider used is the one ``RUNKIT_SEARCH_PROVIDER`` names, else the first that is ready.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from ..selection import select

if TYPE_CHECKING:
    from .exchange import Outbound

SEARCH_URL_ENV = "RUNKIT_SEARCH_URL"
PROVIDER_ENV = "RUNKIT_SEARCH_PROVIDER"
ENTRY_POINT_GROUP = "runkit.search_providers"

log = logging.getLogger(__name__)


@attrs.frozen
class SearchHit:
    title: str
    url: str
    snippet: str = ""

    def to_json(self) -> dict[str, str]:
        return {"title": self.title, "url": self.url, "snippet": self.snippet}


@runtime_checkable
class SearchProvider(Protocol):
    name: str

    def problem(self) -> str | None:
        """None when the provider can search; otherwise what must be configured (name the
        setting): ``web_search`` runs are then refused at create time with this text."""
        ...

    async def search(self, query: str, max_results: int, outbound: Outbound) -> list[SearchHit]:
        """Up to ``max_results`` results for ``query``; requests only through ``outbound``."""
        ...


class SearxngProvider:
    """A SearXNG instance's JSON API (``GET {base}/search?q=...&format=json``). The instance
    must allow the ``json`` format (``search.formats`` in its settings.yml), and its address
    must pass the outbound guard: a SearXNG on this machine or the local network needs its
    address in ``RUNKIT_OUTBOUND_ALLOW``."""

    name = "searxng"

    def __init__(self, base_url: str | None = None) -> None:
        #: None: ``RUNKIT_SEARCH_URL``, read at each use.
        self._base_url = base_url

    @property
    def base_url(self) -> str:
        return (self._base_url or os.environ.get(SEARCH_URL_ENV, "")).strip()

    def problem(self) -> str | None:
        from .policy import url_refusal

        if not self.base_url:
            return f"set {SEARCH_URL_ENV} to a SearXNG instance's base URL"
        why = url_refusal(self.base_url)
        return None if why is None else f"{SEARCH_URL_ENV} is refused: {why}"

    async def search(self, query: str, max_results: int, outbound: Outbound) -> list[SearchHit]:
        from .errors import BadResponse

        data = await outbound.get_json(
            self.base_url.rstrip("/") + "/search",
            params={"q": query, "format": "json", "pageno": 1},
        )
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise BadResponse("the SearXNG answer has no results list")
        hits = []
        for item in results:
            if not isinstance(item, dict) or not isinstance(item.get("url"), str):
                continue
            title, snippet = item.get("title"), item.get("content")
            hits.append(
                SearchHit(
                    title=title.strip() if isinstance(title, str) else "",
                    url=item["url"],
                    snippet=snippet.strip() if isinstance(snippet, str) else "",
                )
            )
            if len(hits) >= max_results:
                break
        return hits


_registered: list[SearchProvider] = []
_entry_points: list[SearchProvider] | None = None
_lock = threading.Lock()
BUILTIN = SearxngProvider()


def register_search_provider(provider: SearchProvider) -> None:
    """Add ``provider`` (before those registered earlier with another name; one with the
    same name is replaced)."""
    if not isinstance(provider, SearchProvider):
        raise TypeError(f"{provider!r} is no search provider (name, problem(), search())")
    with _lock:
        _registered[:] = [p for p in _registered if p.name != provider.name]
        _registered.insert(0, provider)


def unregister_search_provider(name: str) -> None:
    with _lock:
        _registered[:] = [p for p in _registered if p.name != name]


def _load_entry_points() -> list[SearchProvider]:
    global _entry_points
    with _lock:
        if _entry_points is None:
            loaded: list[SearchProvider] = []
            for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
                try:
                    obj: Any = point.load()
                    provider = obj() if isinstance(obj, type) or not hasattr(obj, "name") else obj
                except Exception:
                    log.exception("search provider entry point %r failed to load", point.name)
                    continue
                if isinstance(provider, SearchProvider):
                    loaded.append(provider)
                else:
                    log.error("entry point %r is no search provider", point.name)
            _entry_points = loaded
        return _entry_points


def providers() -> list[SearchProvider]:
    """Every known provider, in the order they are tried."""
    with _lock:
        registered = list(_registered)
    return [*registered, *_load_entry_points(), BUILTIN]


def select_provider() -> SearchProvider:
    """The provider ``web_search`` uses now; ValueError naming the setting when none is
    ready (a 422 at create time)."""
    return select(
        providers(), PROVIDER_ENV, "search provider", nothing="no web search provider is configured"
    )
