"""How the SQL store's primitives run, in one place. Three ways, one set of rules:

* in a worker thread on SQLAlchemy's engine (:class:`~.engine.Transactions`): SQLite, trio,
  a host's engine, calls made outside an event loop;
* on asyncio with PostgreSQL, in a greenlet over psycopg's async connections (``driver``):
  the primitive's synchronous body yields to the event loop at each round trip;
* a primitive that is **one autocommit statement** (a create, a read by id, a NOTIFY),
  awaited on psycopg directly (:meth:`DriverPath.statement`). Why: a greenlet per call
  costs about as much Python as the rest of a create (measured: 40 CPU-us a call of the
  250 a create took on the store's side).

Whichever way, a primitive is not abandoned when its caller is cancelled (it finishes,
then the caller sees the cancellation), a serialization failure or deadlock is retried (the
transaction was rolled back whole), and a lost database becomes ``StorageUnavailable``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

import anyio
import anyio.to_thread
from sqlalchemy import exc
from sqlalchemy.util.concurrency import in_greenlet

from .driver import DriverPath, Result
from .engine import Transactions, retryable, translate

T = TypeVar("T")

#: Tries of a primitive that keeps failing on a serialization failure or deadlock.
_TRIES = 3


class Calls:
    """Runs one store's primitives (see the module's docstring)."""

    def __init__(self, threads_tx: Transactions, driver: DriverPath | None, threads: int) -> None:
        self.driver = driver
        self._threads_tx = threads_tx
        self._threads = threads
        self._limiter: anyio.CapacityLimiter | None = None

    def open(self) -> None:
        self._limiter = anyio.CapacityLimiter(self._threads)

    @property
    def tx(self) -> Transactions:
        """The transactions of the path this primitive runs on: inside the driver path's
        greenlet, psycopg's async connections; otherwise SQLAlchemy's engine."""
        if self.driver is not None and in_greenlet():
            # The same four methods, and connections with the part of Connection the
            # primitives use (driver.DriverConnection).
            return cast(Transactions, self.driver.tx)
        return self._threads_tx

    async def run(self, fn: Callable[[], T], *, driver: bool = True) -> T:
        """Run ``fn`` (a primitive's synchronous body): on the driver path when the call
        may take it and ``driver`` (its statements are prebuilt, so they compile once);
        otherwise in a worker thread."""
        if driver and self.direct():
            assert self.driver is not None
            return await self.driver.run(functools.partial(_guarded, fn))
        if self._limiter is None:  # created lazily: it belongs to the running event loop
            self._limiter = anyio.CapacityLimiter(self._threads)
        return await anyio.to_thread.run_sync(_guarded, fn, limiter=self._limiter)

    def direct(self) -> bool:
        """Whether this call may take the driver path (on asyncio, on its pool's loop)."""
        return self.driver is not None and self.driver.usable()

    async def statement(self, stmt: Any, params: Mapping[str, Any]) -> Result:
        """One statement in autocommit, awaited on psycopg directly; only when
        :meth:`direct` says so."""
        assert self.driver is not None
        attempt = 0
        while True:
            try:
                return await self.driver.statement(stmt, params)
            except (exc.DBAPIError, exc.TimeoutError) as err:
                _retry_or_raise(err, attempt)
            attempt += 1


def _guarded(fn: Callable[[], T]) -> T:
    attempt = 0
    while True:
        try:
            return fn()
        except (exc.DBAPIError, exc.TimeoutError) as err:
            _retry_or_raise(err, attempt)
        attempt += 1


def _retry_or_raise(err: exc.DBAPIError | exc.TimeoutError, attempt: int) -> None:
    """Return when ``err`` may be retried (a serialization failure, before the last try);
    otherwise raise it, a lost database as ``StorageUnavailable``."""
    if retryable(err) and attempt < _TRIES - 1:
        return
    translated = translate(err)
    if translated is err:
        raise err
    raise translated from err
