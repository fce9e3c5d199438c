"""How the SQL store waits for other processes: PostgreSQL LISTEN on a dedicated connection,
or, on SQLite, a dedicated connection watching ``PRAGMA data_version``. A wake-up is a hint
to re-read the store, never a promise."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, cast

import anyio
import anyio.to_thread
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Engine

from ...domain.errors import StorageUnavailable
from ..protocols import Notifications
from .engine import is_memory_sqlite
from .senders import OwnSenders, remember_sender
from .watch import DataVersionWatcher

if TYPE_CHECKING:
    from .notify import PgListener
    from .notify_async import AsyncPgListener


class Listening:
    """The store's listening side; opened lazily on the first wait, closed with the store."""

    def __init__(self, engine: Engine, listen_dsn: str | None) -> None:
        self.engine = engine
        self._listen_dsn = listen_dsn
        #: The store's own connections, whose NOTIFYs are not wake-ups here: those made by
        #: the engine are remembered by its ``connect`` event, the driver path's by its pool
        #: (``senders.add_connection``).
        self.senders = OwnSenders()
        self._remember: Any = None
        if engine.dialect.name == "postgresql":
            self._remember = remember_sender(self.senders)
            sa.event.listen(engine, "connect", self._remember)
        self._listener: PgListener | None = None
        self._watcher: DataVersionWatcher | None = None
        #: Opens an async LISTEN connection: set by a store on the driver path, whose waits
        #: on asyncio then need no thread (``notify_async``).
        self._async_connect: Callable[[], Awaitable[Any]] | None = None
        self._async_listener: AsyncPgListener | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    def listen_async(self, connect_kwargs: dict[str, Any]) -> None:
        """On asyncio, LISTEN on psycopg's async connection: made with the driver path's
        ``connect_kwargs``, or from ``listen_dsn``."""
        import psycopg

        kwargs = connect_kwargs if self._listen_dsn is None else {"conninfo": self._listen_dsn}
        self._async_connect = functools.partial(
            psycopg.AsyncConnection.connect, **{**kwargs, "autocommit": True}
        )

    async def aclose(self) -> None:
        if self._async_listener is not None and self._async_usable():
            await self._async_listener.close()
        self._async_listener = None
        self._async_loop = None
        self.close()

    def close(self) -> None:
        if self._remember is not None:  # a host's engine outlives the store: no listener left
            sa.event.remove(self.engine, "connect", self._remember)
            self._remember = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None

    async def wait(self, channels: Collection[str], timeout: float) -> set[str]:
        """Wait up to ``timeout`` seconds for a NOTIFY on any of ``channels``; the channels
        that had one (empty at timeout), on PostgreSQL as :class:`Notifications` carrying
        their payloads.

        PostgreSQL: LISTENs (from the first call on) on a dedicated connection, outside the
        pool. SQLite has no notifications: a dedicated connection polls ``PRAGMA
        data_version`` every 20 ms and every channel counts as notified as soon as any other
        connection (any process) has committed since the previous wait for the same
        channels returned (see ``watch``); an in-memory database just sleeps. Either
        way a notification is a hint to re-read the store, never a promise.
        """
        if self.engine.dialect.name == "sqlite":
            if is_memory_sqlite(self.engine.url):  # one process: nobody else can commit
                await anyio.sleep(timeout)
                return set()
            if self._watcher is None:
                self._watcher = DataVersionWatcher(self._sqlite_watch_connection)
            key = "|".join(sorted(channels))
            woke = await self._watcher.wait(key, timeout)
            return set(channels) if woke else set()
        if self.engine.dialect.name != "postgresql":
            await anyio.sleep(timeout)
            return set()
        import psycopg

        if self._async_usable():
            return await self._wait_async(channels, timeout)

        from .notify import PgListener  # psycopg is needed on PostgreSQL only

        if self._listener is None:
            self._listener = PgListener(self._listen_connection, self.senders)
        listener = self._listener
        try:
            # Abandoned on cancellation: the thread returns by itself within the timeout.
            fired: dict[str, set[str]] = await anyio.to_thread.run_sync(
                listener.wait_payloads, tuple(channels), timeout, abandon_on_cancel=True
            )
        except (psycopg.Error, exc.DBAPIError) as err:
            raise StorageUnavailable(f"LISTEN {sorted(channels)} failed: {err}") from err
        return Notifications(fired)

    def _async_usable(self) -> bool:
        """On asyncio (not trio), on the loop the async listener was opened on (if it was)."""
        if self._async_connect is None:
            return False
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if self._async_loop is None:
            self._async_loop = loop
        return self._async_loop is loop

    async def _wait_async(self, channels: Collection[str], timeout: float) -> set[str]:
        import psycopg

        from .notify_async import AsyncPgListener

        if self._async_listener is None:
            assert self._async_connect is not None
            self._async_listener = AsyncPgListener(self._async_connect, self.senders)
        try:
            fired = await self._async_listener.wait_payloads(tuple(channels), timeout)
        except psycopg.Error as err:
            raise StorageUnavailable(f"LISTEN {sorted(channels)} failed: {err}") from err
        return Notifications(fired)

    def _sqlite_watch_connection(self) -> sqlite3.Connection:
        # Made like the pool's (the host's connect arguments and events included), then
        # taken out of the pool for good: it belongs to the watcher.
        fairy = self.engine.raw_connection()
        fairy.detach()
        return cast(sqlite3.Connection, fairy.dbapi_connection)

    def _listen_connection(self) -> Any:
        if self._listen_dsn is not None:
            import psycopg

            return psycopg.connect(self._listen_dsn, autocommit=True)
        # A connection made exactly like the pool's (host connect args and events
        # included), then taken out of the pool for good.
        fairy = self.engine.raw_connection()
        fairy.detach()
        return fairy.dbapi_connection
