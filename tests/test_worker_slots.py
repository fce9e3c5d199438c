"""A worker's slots: ``concurrency`` bounds the executors running at once; a slot frees when
its executor returns, while the outcome is still being written, and the leases a worker
holds stay bounded when those writes are slow."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from runkit import Kind, Runkit, Status
from runkit.domain.models import Run
from runkit.engine import Worker
from runkit.storage.base import Update
from runkit.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio


class GatedReports(MemoryStore):
    """A store whose batched outcome writes wait until ``gate`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = anyio.Event()
        self.waiting = 0

    async def update_many(self, updates: Sequence[Update]) -> list[Run | None]:
        self.waiting += len(updates)
        await self.gate.wait()
        self.waiting -= len(updates)
        return await super().update_many(updates)


class Executions:
    def __init__(self) -> None:
        self.started = 0
        self.running = 0
        self.most = 0

    async def __call__(self, ctx: Any) -> dict[str, Any]:
        self.started += 1
        self.running += 1
        self.most = max(self.most, self.running)
        await anyio.sleep(0.01)
        self.running -= 1
        return {}


async def _settle(condition: Any) -> None:
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - polling state the worker owns
            await anyio.sleep(0.01)


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_a_slot_frees_while_its_outcome_is_written(concurrency: int) -> None:
    store = GatedReports()
    calls = Executions()
    async with Runkit(store, kinds=[Kind("job", calls)], autoload_plugins=False) as rk:
        runs = [(await rk.create("job", {}, execute=True)).run for _ in range(10)]
        worker = Worker(rk, concurrency=concurrency, poll_interval=0.05, flush_interval=0.005)
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            # Outcomes cannot be written: the first slots' runs finish executing, their
            # slots take the next runs, and the worker stops claiming at twice its slots.
            await _settle(lambda: calls.started == 2 * concurrency and calls.running == 0)
            await anyio.sleep(0.2)  # nothing more is claimed while they wait
            assert store.waiting > 0
            assert calls.started == 2 * concurrency
            assert worker.held == 2 * concurrency
            assert calls.most <= concurrency
            statuses = [(await rk.get(r.id)).status for r in runs]
            assert statuses.count(Status.RUNNING) == 2 * concurrency
            assert Status.SUCCEEDED not in statuses
            store.gate.set()
            await _settle(lambda: calls.started == 10 and worker.held == 0)
            worker.stop()
        done = [(await rk.get(r.id)).status for r in runs]
        assert done == [Status.SUCCEEDED] * 10
        assert calls.most <= concurrency
