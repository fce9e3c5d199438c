"""Running workers inside a host: an ``async with`` block, or a blocking call that owns
the process's signals (the ``runkit worker`` command)."""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio

from ._worker import Worker

if TYPE_CHECKING:
    from .._service import Runkit


@asynccontextmanager
async def embedded_workers(
    runkit: Runkit, *, concurrency: int = 10, **options: Any
) -> AsyncIterator[Worker]:
    """Run a :class:`Worker` in the background for the duration of the block; on exit it
    shuts down gracefully (``grace_period``, then releases what is left)::

        async with Runkit(url) as rk, embedded_workers(rk, concurrency=4):
            ...  # serve HTTP, create runs; they execute here
    """
    worker = Worker(runkit, concurrency=concurrency, **options)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        try:
            yield worker
        finally:
            worker.stop()


async def run_workers(
    runkit: Runkit, concurrency: int = 10, *, handle_signals: bool = True, **options: Any
) -> None:
    """Run a worker until SIGTERM or SIGINT: the first asks for a graceful shutdown, a
    second exits at once (leases are left to expire and the rescuer requeues their runs)."""
    worker = Worker(runkit, concurrency=concurrency, **options)
    async with anyio.create_task_group() as tg:
        if handle_signals and threading.current_thread() is threading.main_thread():
            tg.start_soon(_signals, worker)
        await worker.run()
        tg.cancel_scope.cancel()


async def _signals(worker: Worker) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as received:
        count = 0
        async for _ in received:
            count += 1
            if count == 1:
                worker.stop()
            else:
                worker.abort()
                return
