"""The driver path's connection pool (``driver``): psycopg async connections of one event
loop, made on demand."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import exc


class Pool:
    """Connections of one event loop, made on demand, at most ``size`` lent at once.

    Why not ``psycopg_pool``: its pool keeps connections from background tasks, so a call
    made while the server is down waits for its timeout instead of failing at once as the
    thread path does (``StorageUnavailable`` at once), and its tasks outlive a loop whose
    store was not closed. This is the behaviour of SQLAlchemy's ``QueuePool``: connect on
    demand, give back to an idle list, drop a broken connection and every idle one with it
    (a restart or a cut takes them all), wait ``timeout`` seconds for a free slot.
    """

    def __init__(
        self,
        kwargs: Mapping[str, Any],
        size: int,
        timeout: float = 30.0,
        on_connect: Callable[[Any], None] | None = None,
    ) -> None:
        import psycopg

        self._connect = psycopg.AsyncConnection.connect
        self._kwargs = dict(kwargs)
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)
        self._timeout = timeout
        self._on_connect = on_connect
        #: A cursor a connection, by ``id(conn)``, for :meth:`cursor`; dropped with it.
        self._cursors: dict[int, Any] = {}

    def cursor(self, conn: Any) -> Any:
        """``conn``'s own cursor, made once: a cursor made per call cost about 14 µs of a
        create (its adapters are set up anew). For one statement at a time outside
        pipeline mode only: in a pipeline, results arrive late, and a cursor shared by two
        statements could read the first one's."""
        cursor = self._cursors.get(id(conn))
        if cursor is None or cursor.connection is not conn:
            cursor = self._cursors[id(conn)] = conn.cursor()
        return cursor

    async def _drop(self, conn: Any) -> None:
        self._cursors.pop(id(conn), None)
        with contextlib.suppress(Exception):
            await conn.close()

    async def get(self) -> Any:
        if self._slots.locked():
            # asyncio.timeout, not wait_for: under load (64 requests on 8 connections) most
            # calls wait here, and wait_for makes a task for each wait.
            try:
                async with asyncio.timeout(self._timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise exc.TimeoutError(f"no connection came free in {self._timeout:g}s") from None
        else:
            await self._slots.acquire()  # a free slot: taken without suspending
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
                await self._drop(conn)
            conn = await self._connect(**self._kwargs)
            if self._on_connect is not None:
                self._on_connect(conn)
            return conn
        except BaseException:
            self._slots.release()
            raise

    async def put(self, conn: Any) -> None:
        try:
            if conn.broken or conn.closed:
                await self._drop(conn)
                await self.clear()
            elif conn.info.transaction_status == 0:  # IDLE: reusable as it is
                self._idle.append(conn)
            else:  # a transaction left open (never by the store): do not reuse
                await self._drop(conn)
        finally:
            self._slots.release()

    async def clear(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await self._drop(conn)
