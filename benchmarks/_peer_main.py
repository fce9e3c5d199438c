"""One system's pass of the same-work table (``peers``), in its own process (the systems'
imports and global state stay out of the harness):
``python -m benchmarks._peer_main SYSTEM TARGET N PASS``. Prints one line
``RESULT {json}``.

PASS:

* ``a``: enqueue N no-op jobs one at a time through the public API, nothing draining;
* ``b``: enqueue N in batches of :data:`BATCH` (``{"skipped": ...}`` without a batch API);
* ``fill``: enqueue N, batched where the system can (untimed set-up for ``c``);
* ``c``: drain the N jobs a ``fill`` left queued with one worker; the clock starts when the
  worker is started and stops at the last execution;
* ``d``: end to end: the worker runs (started 0.5 s before), N jobs are created one at a
  time meanwhile, each writes two log lines; the clock runs from the first create until
  all N are recorded done in the system's own tables (polled once the executions are in),
  so log lines and completions are durable for every system.

Figures: ``per_s`` (the pass's own: enqueue/s, drain/s, runs/s), ``exec_per_s`` (to the last
execution), ``done_per_s`` (to all recorded done), ``enqueue_per_s``, ``executions`` (a
duplicate shows as executions > N), ``logs`` (log lines written), ``counted`` (jobs counted
queued after a/b/fill, done after c/d, in the system's tables).

SYSTEM and TARGET:

* ``raw``: libpq conninfo (``_samework_raw``); ``runkit``: SQLAlchemy URL, PostgreSQL or
  SQLite (``_samework_runkit``);
* ``pgqueuer``: conninfo; psycopg driver, ``Queries.enqueue`` (lists for a batch),
  ``PgQueuer.run(batch_size=10)``. A log line: one INSERT into ``bench_logs``; a job's two
  lines commit together on a pool connection (psycopg_pool, 4 connections);
* ``procrastinate``: conninfo; psycopg connector, ``defer_async`` / ``batch_defer_async``,
  worker concurrency 16, polling 0.05 s (LISTEN/NOTIFY on). Log lines as pgqueuer's;
* ``dbos``: SQLAlchemy URL (PostgreSQL or SQLite); a sync workflow on a queue
  (worker_concurrency 16, polling 0.01 s), ``Queue.enqueue`` (no batch API). A log line:
  ``DBOS.write_stream("log", line)``, DBOS's own durable append. Passes a, b and fill
  ``listen_queues`` another queue, so nothing drains. No traffic leaves 127.0.0.1: OTLP
  export is off (``enable_otlp: False``), no Conductor key is given, and the
  ``DBOS__CLOUD``/``DBOS__CONDUCTOR_*``/``DBOS__OTLP_*`` variables are removed from the
  environment before DBOS is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from typing import Any, Protocol

CONCURRENCY = 16
BATCH = 500
LINES = ("line 1", "line 2")
TIMEOUT = 600.0
_LOG_TABLE = "CREATE TABLE IF NOT EXISTS bench_logs (id bigserial PRIMARY KEY, job text,"
_LOG_TABLE += " line text, at timestamptz NOT NULL DEFAULT now())"
_LOG_INSERT = "INSERT INTO bench_logs (job, line) VALUES (%s, %s)"


class Tally:
    def __init__(self) -> None:
        self.executions = 0
        self.logs = 0
        self.first = 0.0
        self.last = 0.0
        self._lock = threading.Lock()  # DBOS executes in threads

    def hit(self) -> None:
        with self._lock:
            now = time.perf_counter()
            if not self.executions:
                self.first = now
            self.executions += 1
            self.last = now


class Peer(Protocol):
    batch_api: bool

    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def enqueue(self, n: int, batch: int) -> None: ...
    async def start_worker(self) -> float | None: ...
    async def stop_worker(self) -> None: ...
    async def count(self, what: str) -> int: ...


# --------------------------------------------------------------------------- the driver --
async def drive(peer: Peer, tally: Tally, pass_: str, n: int) -> dict[str, Any]:
    if pass_ == "b" and not peer.batch_api:
        return {"skipped": "no batch API"}
    await peer.open()
    try:
        if pass_ in ("a", "b", "fill"):
            batch = BATCH if pass_ == "b" or (pass_ == "fill" and peer.batch_api) else 1
            t0 = time.perf_counter()
            await peer.enqueue(n, batch)
            elapsed = time.perf_counter() - t0
            out = {"per_s": n / elapsed, "counted": await peer.count("queued")}
            if pass_ == "a" and hasattr(peer, "bare_inserts"):  # raw: B-PG-1 beside it
                out["bare_insert_per_s"] = await peer.bare_inserts(n)
            return out
        if pass_ == "c":
            t0 = time.perf_counter()
            started = await peer.start_worker()
            t1 = t0
        else:
            await peer.start_worker()
            await asyncio.sleep(0.5)
            t0 = time.perf_counter()
            await peer.enqueue(n, 1)
            t1 = time.perf_counter()
        await _wait(lambda: tally.executions >= n)
        done = await _done(peer, n)
        await asyncio.sleep(0.2)  # a late duplicate would show up here
        await peer.stop_worker()
        if pass_ == "c" and started is not None and tally.executions:
            # DBOS: the clock starts once launch() returned (its queue thread runs), or at
            # the first execution if one came before.
            t0 = min(started, tally.first)
        return _out(n, t0, t1, done, tally, pass_)
    finally:
        await peer.close()


async def _wait(predicate: Any, interval: float = 0.005) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def _done(peer: Peer, n: int) -> tuple[float, int]:
    """When all n are recorded done (polled every 5 ms), and how many were."""
    deadline = time.monotonic() + 30
    while True:
        counted = await peer.count("done")
        if counted >= n or time.monotonic() > deadline:
            return time.perf_counter(), counted
        await asyncio.sleep(0.005)


def _out(
    n: int, t0: float, t1: float, done: tuple[float, int], tally: Tally, pass_: str
) -> dict[str, Any]:
    ex = tally.executions
    exec_per_s = ex / (tally.last - t0) if ex else 0.0
    done_per_s = done[1] / (done[0] - t0) if done[1] else 0.0
    out = {
        "per_s": exec_per_s if pass_ == "c" else done_per_s,
        "exec_per_s": exec_per_s,
        "done_per_s": done_per_s,
        "executions": ex,
        "logs": tally.logs,
        "counted": done[1],
    }
    if pass_ == "d":
        out["enqueue_per_s"] = n / (t1 - t0)
    return out


# --------------------------------------------------------------------------- log lines ---
class LogSink:
    """Where pgqueuer's and procrastinate's jobs write their two log lines (neither has a
    log store): two INSERTs committed together, on a pool of 4 connections."""

    def __init__(self, dsn: str, tally: Tally) -> None:
        from psycopg_pool import AsyncConnectionPool

        self.tally = tally
        self.pool = AsyncConnectionPool(dsn, min_size=4, max_size=4, open=False)

    async def open(self) -> None:
        await self.pool.open(wait=True)
        async with self.pool.connection() as conn:
            await conn.execute(_LOG_TABLE)

    async def write(self, job: str) -> None:
        async with self.pool.connection() as conn:  # one transaction, committed on exit
            await conn.execute(_LOG_INSERT, (job, LINES[0]))
            await conn.execute(_LOG_INSERT, (job, LINES[1]))
        self.tally.logs += 2

    async def close(self) -> None:
        await self.pool.close()


# --------------------------------------------------------------------------- pgqueuer ----
class PgqueuerPeer:
    batch_api = True

    def __init__(self, dsn: str, tally: Tally, logs: bool) -> None:
        self.dsn, self.tally, self.logs = dsn, tally, logs
        self.sink = LogSink(dsn, tally) if logs else None
        self.conns: list[Any] = []
        self.pgq: Any = None
        self.task: asyncio.Task[Any] | None = None

    async def open(self) -> None:
        import psycopg
        from pgqueuer import PsycopgDriver, Queries

        self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        self.conns.append(self.conn)
        self.queries = Queries(PsycopgDriver(self.conn))
        if not await self._scalar("SELECT to_regclass('pgqueuer') IS NOT NULL"):
            await self.queries.install()
        if self.sink:
            await self.sink.open()

    async def close(self) -> None:
        if self.sink:
            await self.sink.close()
        for conn in self.conns:
            await conn.close()

    async def enqueue(self, n: int, batch: int) -> None:
        if batch == 1:
            for _ in range(n):
                await self.queries.enqueue("noop", None)
            return
        for start in range(0, n, batch):
            k = min(batch, n - start)
            await self.queries.enqueue(["noop"] * k, [None] * k, [0] * k)

    async def start_worker(self) -> float | None:
        import psycopg
        from pgqueuer import PgQueuer, PsycopgDriver

        worker_conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        self.conns.append(worker_conn)
        self.pgq = PgQueuer(PsycopgDriver(worker_conn))
        sink, tally = self.sink, self.tally

        @self.pgq.entrypoint("noop")  # type: ignore[untyped-decorator]
        async def noop(job: Any) -> None:
            if sink:
                await sink.write(str(job.id))
            tally.hit()

        self.task = asyncio.create_task(self.pgq.run(batch_size=10))
        return None

    async def stop_worker(self) -> None:
        self.pgq.shutdown.set()
        assert self.task is not None
        try:
            await asyncio.wait_for(self.task, 10)
        except (TimeoutError, asyncio.CancelledError):
            self.task.cancel()

    async def _scalar(self, sql: str) -> Any:
        cur = await self.conn.execute(sql)
        row = await cur.fetchone()
        assert row is not None
        return row[0]

    async def count(self, what: str) -> int:
        queued = int(await self._scalar("SELECT count(*) FROM pgqueuer"))
        if what == "queued" or queued:
            return queued if what == "queued" else 0
        sql = "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'"
        return int(await self._scalar(sql))


# --------------------------------------------------------------------------- procrastinate
class ProcrastinatePeer:
    batch_api = True

    def __init__(self, dsn: str, tally: Tally, logs: bool) -> None:
        import procrastinate as pc

        self.dsn, self.tally = dsn, tally
        self.sink = LogSink(dsn, tally) if logs else None
        self.app = pc.App(connector=pc.PsycopgConnector(conninfo=dsn))
        sink = self.sink

        @self.app.task(name="noop", pass_context=True)
        async def noop(context: Any) -> None:
            if sink:
                await sink.write(str(context.job.id))
            tally.hit()

        self.noop = noop
        self.task: asyncio.Task[Any] | None = None
        self.stack = contextlib.AsyncExitStack()

    async def open(self) -> None:
        await self.stack.enter_async_context(self.app.open_async())
        if not await self._scalar("SELECT to_regclass('procrastinate_jobs') IS NOT NULL AS v"):
            await self.app.schema_manager.apply_schema_async()
        if self.sink:
            await self.sink.open()

    async def _scalar(self, sql: str) -> Any:
        row = await self.app.connector.execute_query_one_async(sql)
        return row["v"]

    async def close(self) -> None:
        if self.sink:
            await self.sink.close()
        await self.stack.aclose()

    async def enqueue(self, n: int, batch: int) -> None:
        if batch == 1:
            for _ in range(n):
                await self.noop.defer_async()
            return
        for start in range(0, n, batch):
            await self.noop.batch_defer_async(*[{} for _ in range(min(batch, n - start))])

    async def start_worker(self) -> float | None:
        self.task = asyncio.create_task(
            self.app.run_worker_async(
                concurrency=CONCURRENCY, wait=True, fetch_job_polling_interval=0.05
            )
        )
        return None

    async def stop_worker(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self.task, 10)

    async def count(self, what: str) -> int:
        status = "todo" if what == "queued" else "succeeded"
        sql = f"SELECT count(*) AS v FROM procrastinate_jobs WHERE status = '{status}'"
        return int(await self._scalar(sql))


# --------------------------------------------------------------------------- DBOS --------
class DbosPeer:
    """DBOS is synchronous (and refuses its sync calls inside an event loop): each call
    runs whole in a thread, the loop of N enqueues included."""

    batch_api = False

    def __init__(self, url: str, tally: Tally, logs: bool, worker: bool) -> None:
        for key in list(os.environ):
            if key == "DBOS__CLOUD" or key.startswith(("DBOS__CONDUCTOR", "DBOS__OTLP")):
                del os.environ[key]
        self.url, self.tally, self.logs, self.worker = url, tally, logs, worker
        self.queue: Any = None

    def _open(self) -> None:
        import sqlalchemy as sa
        from dbos import DBOS

        DBOS(config={"name": "bench", "system_database_url": self.url, "enable_otlp": False})
        tally, logs = self.tally, self.logs

        @DBOS.workflow()
        def noop() -> None:
            if logs:
                DBOS.write_stream("log", LINES[0])
                DBOS.write_stream("log", LINES[1])
                with tally._lock:
                    tally.logs += 2
            tally.hit()

        self.noop = noop
        schema = "" if self.url.startswith("sqlite") else "dbos."
        self.count_sql = sa.text(
            f"SELECT count(*) FROM {schema}workflow_status WHERE queue_name = 'bench'"
            " AND status = :status"
        )
        self.engine = sa.create_engine(self.url)
        if not self.worker:
            DBOS.listen_queues(["bench_idle"])  # nothing drains 'bench' in this process
            self._launch()

    def _launch(self) -> float:
        from dbos import DBOS

        DBOS.launch()
        started = time.perf_counter()
        self.queue = DBOS.register_queue(
            "bench", worker_concurrency=CONCURRENCY, polling_interval_sec=0.01
        )
        return started

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    async def close(self) -> None:
        from dbos import DBOS

        await asyncio.to_thread(DBOS.destroy)
        self.engine.dispose()

    async def enqueue(self, n: int, batch: int) -> None:
        def loop() -> None:
            for _ in range(n):
                self.queue.enqueue(self.noop)

        await asyncio.to_thread(loop)

    async def start_worker(self) -> float | None:
        return await asyncio.to_thread(self._launch)

    async def stop_worker(self) -> None:
        pass  # DBOS.destroy() in close() stops the queue thread

    async def count(self, what: str) -> int:
        status = "ENQUEUED" if what == "queued" else "SUCCESS"

        def read() -> int:
            with self.engine.connect() as conn:
                return int(conn.execute(self.count_sql, {"status": status}).scalar_one())

        return await asyncio.to_thread(read)


# --------------------------------------------------------------------------- main --------
def make_peer(system: str, target: str, tally: Tally, pass_: str) -> Peer:
    logs = pass_ == "d"
    if system == "raw":
        from ._samework_raw import RawPeer

        return RawPeer(target, tally, logs)
    if system == "runkit":
        from ._samework_runkit import RunkitPeer

        return RunkitPeer(target, tally, logs)
    if system == "pgqueuer":
        return PgqueuerPeer(target, tally, logs)
    if system == "procrastinate":
        return ProcrastinatePeer(target, tally, logs)
    if system == "dbos":
        return DbosPeer(target, tally, logs, worker=pass_ in ("c", "d"))
    raise SystemExit(f"unknown system {system!r}")


def main(argv: list[str]) -> int:
    system, target, n = argv[0], argv[1], int(argv[2])
    pass_ = argv[3] if len(argv) > 3 else "d"
    if pass_ not in ("a", "b", "fill", "c", "d"):
        raise SystemExit(f"unknown pass {pass_!r}")
    tally = Tally()
    out = asyncio.run(drive(make_peer(system, target, tally, pass_), tally, pass_, n))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
