"""The public conformance suite (runkit.testing) against every built-in backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from runkit.storage.base import Store
from runkit.storage.memory import MemoryStore
from runkit.storage.sql.store import SqlStore
from runkit.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    @pytest.fixture
    async def store(self) -> AsyncIterator[Store]:
        async with MemoryStore() as store:
            yield store


class _SqlConformance(StoreConformance):
    url: str
    #: PostgreSQL on asyncio: the driver path (psycopg's async connections), or threads.
    native_async = True

    @pytest.fixture
    async def store(self, url: str) -> AsyncIterator[Store]:
        async with SqlStore(url, create_schema=True, native_async=self.native_async) as store:
            yield store

    @pytest.fixture
    async def store_twins(self, store: Store, url: str) -> AsyncIterator[list[Store]]:
        # Separate store instances (separate engines and connections) on one database, so
        # the concurrency checks race real transactions.
        others = [SqlStore(url, native_async=self.native_async) for _ in range(2)]
        for other in others:
            await other.open()
        try:
            yield [store, *others]
        finally:
            for other in others:
                await other.close()


class TestSqliteStore(_SqlConformance):
    @pytest.fixture
    def url(self, sqlite_url: str) -> str:
        return sqlite_url


class TestPostgresStore(_SqlConformance):
    @pytest.fixture
    def url(self, pg_url: str) -> str:
        return pg_url


class TestPostgresStoreThreads(TestPostgresStore):
    """PostgreSQL through SQLAlchemy in worker threads: the path trio hosts and hosts'
    own engines take."""

    native_async = False
