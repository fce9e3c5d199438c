"""runkit's public API on one store, one pass at a time, for profiling (py-spy) and for
before/after comparisons of hot-path work (the process's CPU time per run in the pass is the
steadier figure on a shared machine: it does not count waiting for the database's disk):

    python -m benchmarks.profile_runkit PASS [--n 5000] [--url URL]
    py-spy record --format raw -o out.txt -- python -m benchmarks.profile_runkit drain

PASS: ``create`` (one at a time, execute=True), ``batch`` (``create_many`` of 500),
``drain`` (N queued by batches first, then an embedded worker of concurrency 16 drains
them), ``e2e`` (creates one at a time while the worker runs; two log lines a run).
The schema is dropped and recreated first (PostgreSQL: the ``bench_profile`` schema of
the URL's database). Prints runs/s. The machine is noisy: compare runs of one session.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any

import anyio
import sqlalchemy as sa

from runkit import Kind, NewRun, Runkit
from runkit.engine import embedded_workers
from runkit.storage.sql.store import SqlStore

DEFAULT_PG = os.environ.get("RUNKIT_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


class Tally:
    def __init__(self) -> None:
        self.done = 0
        self.event = anyio.Event()
        self.n = 0

    def hit(self) -> None:
        self.done += 1
        if self.done >= self.n:
            self.event.set()


def _rates(n: int, t0: float, c0: float) -> tuple[float, float]:
    """Runs/s, and CPU-us/run of this process (its threads included) in the pass."""
    return n / (time.perf_counter() - t0), (time.process_time() - c0) / n * 1e6


def _store(url: str, native: bool) -> SqlStore:
    if url.startswith("sqlite"):
        return SqlStore(url, create_schema=True)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS bench_profile CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA bench_profile")
    engine.dispose()
    sep = "&" if "?" in url else "?"
    return SqlStore(
        f"{url}{sep}options=-csearch_path%3Dbench_profile", create_schema=True, native_async=native
    )


async def main(pass_: str, n: int, url: str, native: bool) -> tuple[float, float]:
    tally = Tally()
    tally.n = n
    logs = pass_ == "e2e"

    async def execute(ctx: Any) -> dict[str, Any]:
        if logs:
            await ctx.log("info", "first line")
            await ctx.log("info", "second line")
        tally.hit()
        return {}

    async with Runkit(
        _store(url, native), kinds=[Kind("noop", executor=execute)], autoload_plugins=False
    ) as rk:
        if pass_ == "create":
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(n):
                await rk.create("noop", execute=True)
            return _rates(n, t0, c0)
        if pass_ == "batch":
            t0, c0 = time.perf_counter(), time.process_time()
            for start in range(0, n, 500):
                await rk.create_many([NewRun("noop", execute=True)] * min(500, n - start))
            return _rates(n, t0, c0)
        if pass_ == "drain":
            for start in range(0, n, 500):
                await rk.create_many([NewRun("noop", execute=True)] * min(500, n - start))
            t0, c0 = time.perf_counter(), time.process_time()
            async with embedded_workers(rk, concurrency=16):
                await tally.event.wait()
                return _rates(n, t0, c0)
        if pass_ == "e2e":
            t0, c0 = time.perf_counter(), time.process_time()
            async with embedded_workers(rk, concurrency=16):
                for _ in range(n):
                    await rk.create("noop", execute=True)
                await tally.event.wait()
                return _rates(n, t0, c0)
    raise SystemExit(f"unknown pass {pass_!r}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("pass_", choices=["create", "batch", "drain", "e2e"])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--url", default=DEFAULT_PG)
    parser.add_argument("--sqlite", action="store_true", help="a fresh SQLite file instead")
    parser.add_argument("--threads", action="store_true", help="PostgreSQL without the driver path")
    args = parser.parse_args()
    url = args.url
    if args.sqlite:
        url = f"sqlite:///{tempfile.mkdtemp()}/profile.db"
    rate, cpu_us = anyio.run(main, args.pass_, args.n, url, not args.threads)
    path = "threads" if args.threads or args.sqlite else "driver"
    print(
        f"{args.pass_}: {rate:,.0f} runs/s, {cpu_us:,.0f} CPU-us/run ({url.split(':')[0]}, {path})"
    )
