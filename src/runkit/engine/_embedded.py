"""Running workers inside a host: an ``async with`` block, or a blocking call that owns
the process's signals (the ``runkit worker`` command)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ._worker import Worker

if TYPE_CHECKING:
    from ..service.runkit import Runkit


def embedded_workers(
    runkit: Runkit, *, concurrency: int = 10, **options: Any
) -> AbstractAsyncContextManager[Worker]:
    """Run a :class:`Worker` in the background for the duration of the block; on exit it
    shuts down gracefully (``grace_period``, then releases what is left)::

        async with Runkit(url) as rk, embedded_workers(rk, concurrency=4):
            ...  # serve HTTP, create runs; they execute here

    An exception raised in the block leaves it as itself (not inside an ExceptionGroup),
    after the worker has stopped. ``options`` are :class:`Worker`'s.
    """
    return _EmbeddedWorkers(Worker(runkit, concurrency=concurrency, **options))


class _EmbeddedWorkers(AbstractAsyncContextManager[Worker]):
    """The task group that runs the worker is exited with no exception from the block, so
    that the block's own exception is not wrapped into an ExceptionGroup by it."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Worker:
        tg = anyio.create_task_group()
        await tg.__aenter__()
        try:
            await tg.start(self.worker.run)
        except BaseException as exc:
            tg.cancel_scope.cancel()
            await tg.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        self._tg = tg
        return self.worker

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tg, self._tg = self._tg, None
        assert tg is not None
        self.worker.stop()
        try:
            await tg.__aexit__(None, None, None)
        except BaseExceptionGroup as group:
            # The worker itself failed: raise its error as itself when it is the only one.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise


async def run_workers(
    runkit: Runkit,
    concurrency: int = 10,
    *,
    handle_signals: bool = True,
    on_start: Callable[[Worker], None] | None = None,
    **options: Any,
) -> None:
    """Run a worker until SIGTERM or SIGINT: the first asks for a graceful shutdown, a
    second exits at once (leases are left to expire and the rescuer requeues their runs).
    ``on_start`` is called with the worker once it is registered and claiming."""
    worker = Worker(runkit, concurrency=concurrency, **options)
    async with anyio.create_task_group() as tg:
        if handle_signals and threading.current_thread() is threading.main_thread():
            tg.start_soon(_signals, worker)

        async def run_then_stop(*, task_status: TaskStatus[Worker]) -> None:
            await worker.run(task_status=task_status)
            tg.cancel_scope.cancel()  # the signal handler's task too

        await tg.start(run_then_stop)
        if on_start is not None:
            on_start(worker)


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
