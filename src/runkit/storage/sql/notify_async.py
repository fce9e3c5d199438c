"""PostgreSQL LISTEN on psycopg's async connection: the asyncio path of a store that runs
its statements on the driver path (``driver``).

The thread listener (:class:`~runkit.storage.sql.notify.PgListener`) hands every
notification from its thread to the event loop: about a tenth of a millisecond of CPU,
spent by every process on every notification any process sends. Here the event loop waits
on the connection's socket itself. Trio, and stores on a host's engine, keep the thread
listener.

Same contract as the thread listener: one dedicated connection (not a pooled one), opened
on first use and reopened after a failure; payloads kept per channel; the store's own
notifications dropped. A wait that is cancelled closes the connection (a generator of
psycopg's left in the middle cannot be trusted to leave the connection usable); the next
wait opens a new one, and what was sent in between is lost, which costs latency only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import anyio
import psycopg
from psycopg import sql

from .notify import Inbox
from .senders import OwnSenders


class AsyncPgListener:
    """One LISTEN connection for one event loop; waiters take turns."""

    def __init__(
        self, connect: Callable[[], Awaitable[Any]], senders: OwnSenders | None = None
    ) -> None:
        self._connect = connect
        self._conn: Any = None
        self._channels: set[str] = set()
        self._inbox = Inbox(senders)
        self._lock = anyio.Lock()
        self._closed = False

    async def wait_payloads(self, channels: Collection[str], timeout: float) -> dict[str, set[str]]:
        """Wait up to ``timeout`` seconds for notifications on any of ``channels``; what
        each channel's carried (``""`` for none), empty at timeout."""
        deadline = anyio.current_time() + timeout
        acquired = False
        with anyio.move_on_after(timeout):
            await self._lock.acquire()
            acquired = True  # no await between: a deadline now cannot undo it
        if not acquired:
            return {}
        try:
            if self._closed:
                return {}
            return await self._wait(channels, deadline)
        except BaseException:  # failed, or cancelled mid-wait: the connection's state is unknown
            await self._reset()
            raise
        finally:
            self._lock.release()

    async def _wait(self, channels: Collection[str], deadline: float) -> dict[str, set[str]]:
        for channel in channels:
            conn = await self._listening(channel)
        while True:
            fired = self._inbox.take(channels)
            if fired:
                async for note in conn.notifies(timeout=0.0):
                    self._inbox.put(note, fired)  # those already here join this wake-up
                return fired
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return {}
            async for note in conn.notifies(timeout=remaining, stop_after=1):
                self._inbox.put(note)

    async def close(self) -> None:
        self._closed = True
        with anyio.CancelScope(shield=True):
            async with self._lock:
                await self._reset()

    async def _listening(self, channel: str) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
            self._channels.clear()
            self._inbox.clear()
        if channel not in self._channels:
            await self._conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
            self._channels.add(channel)
        return self._conn

    async def _reset(self) -> None:
        conn, self._conn = self._conn, None
        self._channels.clear()
        if conn is not None:
            with anyio.CancelScope(shield=True), contextlib.suppress(psycopg.Error):
                await conn.close()
