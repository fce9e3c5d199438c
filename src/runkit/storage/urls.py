"""Storage URLs to stores. The factories come from the ``runkit_register_storage`` hook
(the built-in backends register there too, in ``storage.builtin``); the facade collects them
and hands them in, so storage knows nothing of plugins."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ..domain.errors import ConfigurationError
from .base import Store


def open_store(url: str, factories: Mapping[str, Callable[[str], Store]]) -> Store:
    """The store for ``url``: the factory registered for its scheme (``postgresql+psycopg``
    also matches a factory registered for ``postgresql``)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    factory = factories.get(scheme) or factories.get(scheme.split("+", 1)[0])
    if factory is None:
        known = ", ".join(sorted(factories))
        raise ConfigurationError(
            f"unknown storage URL scheme {scheme!r} in {url!r}; known: {known}"
        )
    store: Store = factory(url)
    return store
