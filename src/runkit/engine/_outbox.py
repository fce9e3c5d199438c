"""The completion buffer: finished attempts' outcomes written in batches, one storage
transaction for many, and the retry of a write through a storage outage."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import attrs

from ..domain.errors import RunkitError, StorageUnavailable
from ..domain.moves import Report
from ._wakeups import Signal

log = logging.getLogger("runkit.engine")


@attrs.define
class _Written:
    """A queued outcome's fate: the run as written, or the error its report met."""

    done: anyio.Event = attrs.field(factory=anyio.Event)
    result: Any = None


class CompletionBuffer:
    """Outcomes wait here to be written together by :meth:`run`: at once when every run the
    worker holds has reported (nobody else is about to), else after ``flush_interval``
    gathers more. A lone run is never delayed; a busy worker spends one commit on many."""

    def __init__(
        self,
        write: Callable[[Sequence[Report]], Awaitable[list[Any]]],
        *,
        batch: int,
        flush_interval: float,
        lease_seconds: Callable[[], float],
        holding: Callable[[], int],
    ) -> None:
        self._write = write
        self._batch = batch
        self._flush_interval = flush_interval
        self._lease_seconds = lease_seconds
        self._holding = holding
        self._queue: list[tuple[Report, _Written]] = []
        self._ready = Signal()

    async def submit(self, report: Report) -> Any:
        """Queue ``report``, wait until its batch is written, and return what its write
        came to: the run as written, or the error (LeaseLost, IllegalTransition, ...)."""
        written = _Written()
        self._queue.append((report, written))
        self._ready.fire()
        await written.done.wait()
        return written.result

    async def run(self) -> None:
        while True:
            if not self._queue:
                await self._ready.wait()
                continue
            if len(self._queue) < min(self._holding(), self._batch):
                await self._ready.wait(self._flush_interval)
            batch, self._queue = self._queue[: self._batch], self._queue[self._batch :]
            reports = [report for report, _ in batch]
            try:
                write = functools.partial(self._write, reports)
                results = await persist(write, self._lease_seconds())
            except Exception as exc:  # storage gone for a whole lease: the rescuer takes over
                results = [exc] * len(batch)
            for (_, written), result in zip(batch, results, strict=True):
                written.result = result
                written.done.set()


async def persist(call: Callable[[], Awaitable[Any]], lease_seconds: float) -> Any:
    """Retry ``call`` through storage outages for up to one lease, then re-raise (the lease
    has expired by then and the rescuer owns the run)."""
    deadline = time.monotonic() + lease_seconds
    delay = 0.05
    while True:
        try:
            return await call()
        except RunkitError as exc:
            if not isinstance(exc, StorageUnavailable) or time.monotonic() > deadline:
                raise
        except Exception:
            if time.monotonic() > deadline:
                raise
            log.warning("storage write failed; retrying", exc_info=True)
        await anyio.sleep(delay)
        delay = min(delay * 2, 1.0)
