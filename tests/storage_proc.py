"""A separate OS process for the cross-process storage tests (tests/test_storage_processes.py).

python storage_proc.py create URL START_AT N KEY   -> prints one line per create: id created
python storage_proc.py claim URL START_AT WORKER BATCH HOLD_SECONDS
    -> claims until nothing is left, completing each run; prints
       "id key start_ns end_ns" per run (CLOCK_MONOTONIC is system-wide on Linux)
"""

from __future__ import annotations

import sys
import time

import anyio

from runkit import Kind, Lease, Runkit

KINDS = [Kind("p_noop", executor=lambda ctx: None)]


def _wait_until(start_at: float) -> None:
    # All processes start their work at the same instant, to make the race real.
    delay = start_at - time.time()
    if delay > 0:
        time.sleep(delay)


async def create(url: str, n: int, key: str) -> None:
    async def one(rk: Runkit) -> None:
        created = await rk.create("p_noop", {"x": 1}, idempotency_key=key)
        print(created.run.id, int(created.created), flush=True)

    async with (
        Runkit(url, kinds=KINDS, autoload_plugins=False) as rk,
        anyio.create_task_group() as tg,
    ):
        for _ in range(n):
            tg.start_soon(one, rk)


async def claim(url: str, worker: str, batch: int, hold: float) -> None:
    async with Runkit(url, kinds=KINDS, autoload_plugins=False) as rk:
        idle = 0
        while idle < 20:
            claimed = await rk.ops.claim(worker, batch)
            if not claimed:
                idle += 1
                await anyio.sleep(0.05)
                continue
            idle = 0
            for run in claimed:
                start = time.monotonic_ns()
                if hold:
                    await anyio.sleep(hold)
                end = time.monotonic_ns()
                assert run.lease_token is not None
                await rk.ops.complete(Lease(run.id, run.attempt, run.lease_token), {})
                print(run.id, run.concurrency_key or "-", start, end, flush=True)


def main() -> None:
    mode, url, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    _wait_until(start_at)
    if mode == "create":
        anyio.run(create, url, int(sys.argv[4]), sys.argv[5])
    elif mode == "claim":
        anyio.run(claim, url, sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
