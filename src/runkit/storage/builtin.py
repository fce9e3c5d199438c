"""The built-in storage backends, registered through the same hook as third-party ones.
Drivers load only when a URL of theirs is opened."""

from __future__ import annotations

from collections.abc import Callable

from ..hookspecs import hookimpl
from .base import Store


def _memory(url: str) -> Store:
    from .memory import MemoryStore

    return MemoryStore()


def _sql(url: str) -> Store:
    from .sql.store import SqlStore

    scheme, _, rest = url.partition(":")
    base = scheme.split("+", 1)[0].lower()
    if base in ("postgres", "postgresql") and "+" not in scheme:
        url = "postgresql+psycopg:" + rest  # libpq spellings; psycopg 3 is the driver
    return SqlStore(url, create_schema=True)


@hookimpl
def runkit_register_storage(register: Callable[[str, Callable[[str], Store]], None]) -> None:
    register("memory", _memory)
    for scheme in ("sqlite", "postgresql", "postgres"):
        register(scheme, _sql)
