"""Storage URLs to stores: built-in schemes first, then the ones plugins register."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

from ._errors import ConfigurationError
from ._plugins import collect_storage

if TYPE_CHECKING:
    from .storage.base import Store

_SQL_SCHEMES = ("sqlite", "postgresql", "postgres")


def open_store(url: str, pm: pluggy.PluginManager) -> Store:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    base = scheme.split("+", 1)[0]
    if scheme == "memory":
        from .storage.memory import MemoryStore

        return MemoryStore()
    if base in _SQL_SCHEMES:
        from .storage.sql import SqlStore

        if base == "postgres":  # the libpq spelling; SQLAlchemy wants postgresql
            url = "postgresql" + url[len("postgres") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return SqlStore(url, create_schema=True)
    factories = collect_storage(pm)
    if scheme in factories:
        store: Store = factories[scheme](url)
        return store
    known = ", ".join(sorted({"memory", *_SQL_SCHEMES, *factories}))
    raise ConfigurationError(f"unknown storage URL scheme {scheme!r} in {url!r}; known: {known}")
