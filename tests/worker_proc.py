"""A worker process for the multi-process tests: ``python tests/worker_proc.py URL [opts]``.

Short timings (lease 2 s, heartbeat 0.3 s, rescue 0.3 s). Besides the test kinds it
registers ``record`` (appends ``run_id attempt start end pid`` to the ledger file named by
``RUNKIT_TEST_LEDGER`` after sleeping), ``crash`` (SIGKILLs its own worker process) and
``fanout`` (starts ``record`` children and waits for them durably).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import attrs

import runkit
from runkit import Kind, Runkit, Settings
from runkit.engine import RunContext, run_workers

LEDGER_ENV = "RUNKIT_TEST_LEDGER"


def settings(interrupt_budget: int = 5) -> Settings:
    return Settings(
        lease=timedelta(seconds=2),
        heartbeat=timedelta(seconds=0.3),
        rescue_interval=timedelta(seconds=0.3),
        interrupt_budget=interrupt_budget,
        wait_recheck=timedelta(seconds=2),
    )


@attrs.frozen
class RecordConfig:
    sleep: float = 0.0


async def record(ctx: RunContext) -> dict[str, Any]:
    start = time.time()
    if ctx.definition.sleep:
        await anyio.sleep(ctx.definition.sleep)
    end = time.time()
    line = f"{ctx.run_id} {ctx.attempt} {start:.6f} {end:.6f} {os.getpid()}\n"
    fd = os.open(os.environ[LEDGER_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one write with O_APPEND: lines never interleave
    finally:
        os.close(fd)
    return {"pid": os.getpid()}


@attrs.frozen
class FanoutConfig:
    children: int = 5
    sleep: float = 0.0


async def fanout(ctx: RunContext) -> dict[str, Any]:
    """Starts ``children`` ``record`` runs and waits for them, holding no worker."""
    kids = [
        await ctx.start_child("record", {"sleep": ctx.definition.sleep}, step=str(i))
        for i in range(ctx.definition.children)
    ]
    done = await ctx.wait_for([k.id for k in kids])
    return {"children": [str(d.id) for d in done], "statuses": [d.status.value for d in done]}


async def crash(ctx: RunContext) -> None:
    await ctx.log("info", "about to crash")
    await ctx.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class ProcPlugin:
    @runkit.hookimpl
    def runkit_register_kinds(self, register: Callable[[Kind], None]) -> None:
        register(Kind("record", record, RecordConfig))
        register(Kind("crash", crash))
        register(Kind("fanout", fanout, FanoutConfig))


def make_runkit(url: str, interrupt_budget: int = 5, *, proc_kinds: bool = True) -> Runkit:
    plugins = [ProcPlugin()] if proc_kinds else []
    return Runkit(url, plugins=plugins, settings=settings(interrupt_budget))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--interrupt-budget", type=int, default=5)
    parser.add_argument("--kinds", default=None, help="comma-separated kinds to claim")
    parser.add_argument(
        "--no-proc-kinds", action="store_true", help="register only the test kinds, no record"
    )
    args = parser.parse_args()

    async def serve() -> None:
        runkit = make_runkit(args.url, args.interrupt_budget, proc_kinds=not args.no_proc_kinds)
        async with runkit as rk:
            await run_workers(
                rk,
                args.concurrency,
                grace_period=args.grace,
                poll_interval=0.2,
                control_interval=0.3,
                kinds=args.kinds.split(",") if args.kinds else None,
            )

    anyio.run(serve)
    print("worker exited", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
