"""One peer's end-to-end pass, in its own process (the peers' imports and global state stay
out of the harness): ``python -m benchmarks._peer_main SYSTEM TARGET N``.

Like ``runkit embedded`` in ``e2e``: one process runs the peer's worker in the background
and enqueues N no-op jobs one at a time through the peer's public API; the pass ends when
the worker has executed all of them. Prints one JSON object: runs/s (first enqueue to last
execution), enqueue/s, executions (a duplicate shows as executions > N).

SYSTEM: ``pgqueuer`` (psycopg driver, batch 10), ``procrastinate`` (psycopg connector,
concurrency 16, polling 0.05 s), ``dbos`` (queue, worker_concurrency 16, polling 0.01 s;
TARGET is a SQLAlchemy URL, PostgreSQL or SQLite). TARGET is a libpq conninfo otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any

CONCURRENCY = 16


class Tally:
    def __init__(self) -> None:
        self.executions = 0
        self.last = 0.0

    def hit(self) -> None:
        self.executions += 1
        self.last = time.perf_counter()


async def _wait(tally: Tally, n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while tally.executions < n and time.monotonic() < deadline:  # noqa: ASYNC110 - a poll
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # a late duplicate would show up here


async def pgqueuer(dsn: str, n: int) -> dict[str, Any]:
    import psycopg
    from pgqueuer import PgQueuer, PsycopgDriver, Queries

    tally = Tally()
    worker_conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    enqueue_conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True)
    await Queries(PsycopgDriver(enqueue_conn)).install()
    pgq = PgQueuer(PsycopgDriver(worker_conn))

    @pgq.entrypoint("noop")
    async def noop(job: Any) -> None:
        tally.hit()

    worker = asyncio.create_task(pgq.run(batch_size=10))
    await asyncio.sleep(0.5)
    queries = Queries(PsycopgDriver(enqueue_conn))
    t0 = time.perf_counter()
    for _ in range(n):
        await queries.enqueue("noop", None)
    t1 = time.perf_counter()
    await _wait(tally, n, 120)
    pgq.shutdown.set()
    try:
        await asyncio.wait_for(worker, 10)
    except (TimeoutError, asyncio.CancelledError):
        worker.cancel()
    await worker_conn.close()
    await enqueue_conn.close()
    return _out(n, t0, t1, tally)


async def procrastinate(dsn: str, n: int) -> dict[str, Any]:
    import procrastinate as pc

    tally = Tally()
    app = pc.App(connector=pc.PsycopgConnector(conninfo=dsn))

    @app.task(name="noop")
    async def noop() -> None:
        tally.hit()

    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        worker = asyncio.create_task(
            app.run_worker_async(
                concurrency=CONCURRENCY, wait=True, fetch_job_polling_interval=0.05
            )
        )
        await asyncio.sleep(0.5)
        t0 = time.perf_counter()
        for _ in range(n):
            await noop.defer_async()
        t1 = time.perf_counter()
        await _wait(tally, n, 120)
        worker.cancel()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(worker, 10)
    return _out(n, t0, t1, tally)


def dbos(url: str, n: int) -> dict[str, Any]:
    from dbos import DBOS

    tally = Tally()
    DBOS(config={"name": "bench", "system_database_url": url})

    @DBOS.workflow()
    def noop() -> None:
        tally.hit()

    DBOS.launch()
    queue = DBOS.register_queue("bench", worker_concurrency=CONCURRENCY, polling_interval_sec=0.01)
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            queue.enqueue(noop)
        t1 = time.perf_counter()
        deadline = time.monotonic() + 180
        while tally.executions < n and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
    finally:
        DBOS.destroy()
    return _out(n, t0, t1, tally)


def _out(n: int, t0: float, t1: float, tally: Tally) -> dict[str, Any]:
    end = tally.last if tally.executions else float("nan")
    return {
        "runs_per_s": tally.executions / (end - t0) if tally.executions else 0.0,
        "enqueue_per_s": n / (t1 - t0),
        "executions": tally.executions,
    }


def main(argv: list[str]) -> int:
    system, target, n = argv[0], argv[1], int(argv[2])
    if system == "pgqueuer":
        out = asyncio.run(pgqueuer(target, n))
    elif system == "procrastinate":
        out = asyncio.run(procrastinate(target, n))
    elif system == "dbos":
        out = dbos(target, n)
    else:
        raise SystemExit(f"unknown peer {system!r}")
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
