"""Storage URLs to stores, through the ``runkit_register_storage`` hook (the built-in
backends register there too, in ``storage._builtin``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from ..domain.errors import ConfigurationError
from ..plugins.manager import collect_storage

if TYPE_CHECKING:
    from .base import Store


def open_store(url: str, pm: pluggy.PluginManager) -> Store:
    """The store for ``url``: the factory registered for its scheme (``postgresql+psycopg``
    also matches a factory registered for ``postgresql``)."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    factories = collect_storage(pm)
    factory = factories.get(scheme) or factories.get(scheme.split("+", 1)[0])
    if factory is None:
        known = ", ".join(sorted(factories))
        raise ConfigurationError(
            f"unknown storage URL scheme {scheme!r} in {url!r}; known: {known}"
        )
    store: Store = factory(url)
    return store
