"""runkit for the same-work table (``peers``), driven by ``_peer_main`` in a subprocess like
the peers (same import state, same process shape): one ``Runkit`` on the store at TARGET
(a SQLAlchemy URL, PostgreSQL or SQLite), an embedded worker of concurrency 16 in the same
process (``runkit.engine.embedded_workers``).

Creates go through the public API: ``Runkit.create(kind, {}, execute=True)`` one at a time,
``Runkit.create_many([NewRun(kind=..., execute=True)] * 500)`` per batch (when this runkit
has it). The kind ``bench_noop`` executes nothing; in pass d it writes two log lines with
``ctx.log`` (buffered, written with the run's completion).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import runkit
from runkit.storage.sql.store import SqlStore

from ._runkit import KIND, LINES

CONCURRENCY = 16


def has_create_many() -> bool:
    return hasattr(runkit, "NewRun") and hasattr(runkit.Runkit, "create_many")


class RunkitPeer:
    """runkit behind the same interface as the peers (see ``_peer_main.Peer``)."""

    def __init__(self, url: str, tally: Any, logs: bool) -> None:
        self.url = url
        self.tally = tally
        self.logs = logs
        self.batch_api = has_create_many()
        self.rk: runkit.Runkit | None = None
        self.workers: AbstractAsyncContextManager[Any] | None = None

    async def _execute(self, ctx: Any) -> dict[str, Any]:
        if self.logs:
            await ctx.log("info", LINES[0])
            await ctx.log("info", LINES[1])
            self.tally.logs += 2
        self.tally.hit()
        return {}

    async def open(self) -> None:
        # As ``_runkit.make_runkit``, with this pass's executor: a store that does not
        # migrate on open (the harness prepared the schema before the pass).
        rk = runkit.Runkit(
            SqlStore(self.url),
            kinds=[runkit.Kind(KIND, executor=self._execute)],
            autoload_plugins=False,
        )
        self.rk = await rk.__aenter__()

    async def close(self) -> None:
        if self.rk is not None:
            await self.rk.__aexit__(None, None, None)

    async def enqueue(self, n: int, batch: int) -> None:
        rk = self.rk
        assert rk is not None
        if batch == 1:
            for _ in range(n):
                await rk.create(KIND, {}, execute=True)
            return
        for start in range(0, n, batch):
            k = min(batch, n - start)
            await rk.create_many([runkit.NewRun(kind=KIND, execute=True) for _ in range(k)])

    async def start_worker(self) -> float | None:
        from runkit.engine import embedded_workers

        assert self.rk is not None
        self.workers = embedded_workers(self.rk, concurrency=CONCURRENCY, grace_period=5.0)
        await self.workers.__aenter__()
        return None

    async def stop_worker(self) -> None:
        if self.workers is not None:
            await self.workers.__aexit__(None, None, None)

    async def count(self, what: str) -> int:
        assert self.rk is not None
        status = "queued" if what == "queued" else "succeeded"
        page = await self.rk.list(status=status, limit=1)
        return int(page.total)
