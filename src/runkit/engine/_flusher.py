"""Writing running attempts' log entries: one task for all of a worker's attempts.

An entry an executor logs is buffered in its :class:`AttemptContext`; this flusher writes the
buffers of the attempts that have some, ``interval`` seconds after the first one of a round
(a few entries per commit). An attempt that ends first hands its buffer to its outcome's
transaction instead (:meth:`AttemptContext.close_logs`), so a short run's entries cost no
commit of their own and no task: before, every attempt started a task group and a flusher
task of its own, a fixed cost on every run however little it logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from ..domain.errors import LeaseLost
from ._wakeups import Signal

if TYPE_CHECKING:
    from ._context import AttemptContext

log = logging.getLogger("runkit.engine")


class LogFlusher:
    def __init__(
        self,
        *,
        interval: float,
        retry_after: float,
        on_lost: Callable[[AttemptContext], None],
    ) -> None:
        self._interval = interval
        self._retry_after = retry_after
        self._on_lost = on_lost
        self._dirty: dict[AttemptContext, None] = {}  # insertion-ordered set
        self._ready = Signal()

    def pending(self, ctx: AttemptContext) -> None:
        """``ctx`` buffered an entry: write it in the next round."""
        if ctx not in self._dirty:
            self._dirty[ctx] = None
            self._ready.fire()

    async def run(self, tg: TaskGroup) -> None:
        """Until cancelled: each round waits for a first buffered entry, then ``interval``
        to gather more, then writes each attempt's buffer in a task of its own (a slow
        store holds up one attempt's entries, not all of them)."""
        while True:
            if not self._dirty:
                await self._ready.wait()
                continue
            await anyio.sleep(self._interval)
            dirty, self._dirty = self._dirty, {}
            for ctx in dirty:
                if not ctx.logs_closed:
                    tg.start_soon(self._flush, ctx)

    async def _flush(self, ctx: AttemptContext) -> None:
        try:
            await ctx.flush()
        except LeaseLost:
            self._on_lost(ctx)
        except Exception:
            log.warning("run %s: log flush failed; will retry", ctx.run_id, exc_info=True)
            await anyio.sleep(self._retry_after)
            self.pending(ctx)
