"""The worker's log flusher: one task writes every running attempt's buffered entries."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import uuid4

import anyio
import pytest

from run_support import wait_status
from runkit import Kind, Lease, Runkit, Settings, Status
from runkit.domain.errors import LeaseLost
from runkit.engine import Worker
from runkit.engine._flusher import LogFlusher

pytestmark = pytest.mark.anyio


class _Ctx:
    """What the flusher uses of an AttemptContext."""

    def __init__(self, fail: BaseException | None = None, fail_times: int = 1) -> None:
        self.run_id = uuid4()
        self.logs_closed = False
        self.flushes = 0
        self._fail, self._fail_times = fail, fail_times

    async def flush(self) -> None:
        self.flushes += 1
        if self._fail is not None and self.flushes <= self._fail_times:
            raise self._fail


async def _round(flusher: LogFlusher, contexts: list[Any], wait: float = 0.2) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(flusher.run, tg)
        for ctx in contexts:
            flusher.pending(ctx)
        await anyio.sleep(wait)
        tg.cancel_scope.cancel()


async def test_one_write_per_attempt_per_round_and_none_for_closed() -> None:
    lost: list[Any] = []
    flusher = LogFlusher(interval=0.02, retry_after=0.01, on_lost=lost.append)
    busy, ended = _Ctx(), _Ctx()
    ended.logs_closed = True  # its entries went with its outcome
    # Many entries before the round: one write.
    await _round(flusher, [busy, busy, busy, ended])
    assert busy.flushes == 1 and ended.flushes == 0 and lost == []


async def test_a_lost_lease_is_reported_and_a_failed_write_retried() -> None:
    lost: list[Any] = []
    flusher = LogFlusher(interval=0.01, retry_after=0.01, on_lost=lost.append)
    fenced, flaky = _Ctx(LeaseLost(uuid4(), 1)), _Ctx(RuntimeError("store down"), fail_times=2)
    await _round(flusher, [fenced, flaky], wait=0.3)
    assert lost == [fenced] and fenced.flushes == 1
    assert flaky.flushes == 3  # two failures, then written


async def test_a_flush_that_finds_the_lease_gone_stops_the_attempt() -> None:
    """Without a heartbeat to notice (one a minute), the next log write
    fences the attempt out: the executor is cancelled at once and writes nothing more."""
    stopped = anyio.Event()

    async def chatty(ctx: Any) -> dict[str, Any]:
        try:
            while True:
                await ctx.log("info", "tick")
                await anyio.sleep(0.01)
        finally:
            stopped.set()

    slow_heartbeat = Settings(lease=timedelta(minutes=5), heartbeat=timedelta(minutes=1))
    async with Runkit(
        "memory://",
        kinds=[Kind("chatty", executor=chatty)],
        settings=slow_heartbeat,
        autoload_plugins=False,
    ) as rk:
        worker = Worker(rk, poll_interval=0.1, control_interval=60, rescue=False, grace_period=0.5)
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            run = (await rk.create("chatty", execute=True)).run
            await wait_status(rk, run.id, {Status.RUNNING})
            token = (await rk.get(run.id)).lease_token or ""
            await rk.ops.release(Lease(run.id, 1, token))
            takeover = (await rk.get(run.id)).log_seq
            with anyio.fail_after(5):
                await stopped.wait()
            await rk.cancel(run.id)
            worker.stop()
        entries = [entry async for entry in rk.iter_logs(run.id)]
        assert [
            e for e in entries if e.seq > takeover and e.attempt == 1 and e.message == "tick"
        ] == []
