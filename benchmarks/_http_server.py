"""The HTTP servers the ``http`` and ``sse`` families measure, one process each (pinned by
the caller): ``python -m benchmarks._http_server MODE DATABASE PORT``.

MODE ``runkit``: ``runkit_contrib.asgi_app(rk, auth=ApiKeys({"bench": API_KEY}))`` with
runkit opened by ``runkit_contrib.lifespan`` (API only, no worker).

MODE ``bare`` (B-HTTP-1, the framework-plus-driver floor): a Starlette app with a psycopg
pool and no runkit, answering the same shapes from the same rows:

* ``GET /bare/{run_id}``: ``SELECT * FROM runkit_runs WHERE id = $1`` as JSON;
* ``GET /bare-list?limit=N``: the same page runkit's list reads (``ORDER BY seq DESC
  LIMIT N`` plus ``count(*)``) as JSON;
* ``POST /bare-create``: one autocommit INSERT of the request body into ``bench_http_create``,
  answering 201 with the new row;
* ``GET /hello``: constant bytes, no database (B-HTTP-0, the server floor).

MODE ``streams``: the ``runkit`` app with the stream caps raised (the ``streams`` family).

MODE ``sse``: the ``runkit`` app plus the in-process appender of the ``sse`` family under
``/bench`` (prepare a claimed run, append at a paced rate through ``Runkit.append_logs``,
complete it) and B-SSE-1, an in-memory broadcast of preformatted frames to SSE clients
(``GET /bench/floor-stream``).

All under uvicorn, one worker, access log off, uvloop and httptools when installed
(:func:`server_stack` says which).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route

from . import _harness as h

API_KEY = "bench-api-key-0123456789"
WORKER_ID = "bench-sse-appender"


def server_stack() -> dict[str, str]:
    """uvicorn's event loop and HTTP parser: the fast ones when installed."""
    has = importlib.util.find_spec
    return {
        "loop": "uvloop" if has("uvloop") else "asyncio",
        "http": "httptools" if has("httptools") else "h11",
    }


def _runkit_api(database: str, **options: Any) -> tuple[Any, Any]:
    import runkit_contrib

    from ._runkit import make_runkit

    rk = make_runkit(h.url(database))
    api = runkit_contrib.asgi_app(
        rk, auth=runkit_contrib.ApiKeys({"bench": API_KEY}), docs=False, **options
    )
    return rk, api


def runkit_app(database: str, **options: Any) -> Starlette:
    import runkit_contrib

    rk, api = _runkit_api(database, **options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runkit_contrib.lifespan(rk):
            yield

    return Starlette(routes=[Mount("/", api)], lifespan=lifespan)


def bare_app(database: str) -> Starlette:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(h.dsn(database), min_size=4, max_size=8, open=False)

    def as_json(value: Any, status: int = 200) -> Response:
        body = json.dumps(value, default=str, separators=(",", ":"))
        return Response(body, status, media_type="application/json")

    async def get_run(request: Request) -> Response:
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT * FROM runkit_runs WHERE id = %s", [request.path_params["run_id"]]
            )
            row: Any = await cur.fetchone()
        if row is None:
            return Response(b'{"detail":"not found"}', 404, media_type="application/json")
        return as_json(row)

    async def list_runs(request: Request) -> Response:
        limit = int(request.query_params.get("limit", "100"))
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute("SELECT * FROM runkit_runs ORDER BY seq DESC LIMIT %s", [limit])
            rows = await cur.fetchall()
            await cur.execute("SELECT count(*) AS n FROM runkit_runs")
            total: Any = await cur.fetchone()
        return as_json({"items": rows, "total": total["n"], "limit": limit, "offset": 0})

    async def create(request: Request) -> Response:
        body = await request.body()
        json.loads(body)  # the same validation floor: the body must be JSON
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "INSERT INTO bench_http_create (body) VALUES (%s) RETURNING *",
                [body.decode()],
            )
            row = await cur.fetchone()
        return as_json(row, 201)

    async def hello(request: Request) -> Response:
        return Response(b'{"hello":"world"}', media_type="application/json")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open()
        async with pool.connection() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_http_create (id bigserial PRIMARY KEY,"
                " body jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
            )
        try:
            yield
        finally:
            await pool.close()

    return Starlette(
        routes=[
            Route("/bare/{run_id}", get_run),
            Route("/bare-list", list_runs),
            Route("/bare-create", create, methods=["POST"]),
            Route("/hello", hello),
        ],
        lifespan=lifespan,
    )


# --------------------------------------------------------------------------- SSE mode ----
class Appender:
    """The in-process side of the ``sse`` family: one claimed run, appended to at a paced
    rate (open loop: send times are scheduled, lateness is counted), and B-SSE-1's
    in-memory broadcaster."""

    def __init__(self, rk: Any) -> None:
        self.rk = rk
        self.lease: Any = None
        self.run_id: uuid.UUID | None = None
        self.floor_queues: set[asyncio.Queue[bytes | None]] = set()
        self.floor_seq = 0

    async def prepare(self, request: Request) -> Response:
        from runkit import Lease

        from ._runkit import KIND

        created = await self.rk.create(KIND, {}, execute=True)
        (run,) = await self.rk.ops.claim(WORKER_ID, 1)
        assert run.id == created.run.id, "another run was queued"
        self.lease = Lease(run.id, run.attempt, run.lease_token or "")
        self.run_id = run.id
        return JSONResponse({"run_id": str(run.id), "last_seq": run.log_seq})

    async def append(self, request: Request) -> Response:
        rate = float(request.query_params["rate"])
        seconds = float(request.query_params["seconds"])
        batch = int(request.query_params.get("batch", "1"))
        floor = request.query_params.get("floor") == "1"
        records, late = await paced_append(
            self._floor_write if floor else self._write, rate, seconds, batch
        )
        return JSONResponse({"records": records, "late": late})

    async def _write(self, entries: list[Any]) -> list[int]:
        stored = await self.rk.ops.append_logs(self.lease, entries)
        return [e.seq for e in stored]

    async def _floor_write(self, entries: list[Any]) -> list[int]:
        from runkit import LogEntry
        from runkit_contrib._wire import log_to_wire

        from .sse import FLOOR_RUN

        seqs, frames = [], []
        for new in entries:
            self.floor_seq += 1
            entry = LogEntry(
                FLOOR_RUN, self.floor_seq, 1, new.level, new.message, now(), data=new.data
            )
            data = json.dumps(log_to_wire(entry), separators=(",", ":"))
            frames.append(f"id: {entry.cursor}\nevent: log\ndata: {data}\n\n")
            seqs.append(self.floor_seq)
        payload = "".join(frames).encode()  # encoded once, shared by every client
        for queue in self.floor_queues:
            queue.put_nowait(payload)
        return seqs

    async def finish(self, request: Request) -> Response:
        if request.query_params.get("floor") == "1":
            for queue in self.floor_queues:
                queue.put_nowait(None)
            return JSONResponse({"ok": True})
        await self.rk.ops.complete(self.lease, {})
        return JSONResponse({"ok": True})

    async def floor_stream(self, request: Request) -> Response:
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.floor_queues.add(queue)

        async def frames() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 3000\n\n"
                while (item := await queue.get()) is not None:
                    yield item
                yield b'event: end\ndata: {"status":"succeeded"}\n\n'
            finally:
                self.floor_queues.discard(queue)

        return StreamingResponse(frames(), media_type="text/event-stream")

    async def floor_reset(self, request: Request) -> Response:
        self.floor_seq = 0
        return JSONResponse({"run_id": str(_floor_run()), "last_seq": 0})


def _floor_run() -> uuid.UUID:
    from .sse import FLOOR_RUN

    return FLOOR_RUN


def now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def paced_append(
    write: Any, rate: float, seconds: float, batch: int
) -> tuple[list[list[int]], int]:
    """Append ``rate`` lines/s for ``seconds`` in batches of ``batch``, open loop. Each line's
    ``data`` carries ``t_ns`` (``time.time_ns()`` before the call); the records are
    ``[seq, t_ns before the call, t_ns after it returned]``, one per line."""
    from runkit import NewLogEntry

    interval = batch / rate
    count = int(rate * seconds / batch)
    records: list[list[int]] = []
    late = 0
    start = time.perf_counter()
    for i in range(count):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -interval:
            late += 1
        t0 = time.time_ns()
        entries = [
            NewLogEntry(f"bench line {i}.{j}", data={"t_ns": t0, "i": i * batch + j})
            for j in range(batch)
        ]
        seqs = await write(entries)
        t1 = time.time_ns()
        records.extend([seq, t0, t1] for seq in seqs)
    return records, late


def sse_app(database: str, poll_interval: float | None = None) -> Starlette:
    import runkit_contrib

    options: dict[str, Any] = {}
    if poll_interval is not None:
        options["stream"] = runkit_contrib.StreamSettings(poll_interval=poll_interval)
    rk, api = _runkit_api(database, **options)
    appender = Appender(rk)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runkit_contrib.lifespan(rk):
            yield

    bench = [
        Route("/prepare", appender.prepare, methods=["POST"]),
        Route("/append", appender.append, methods=["POST"]),
        Route("/finish", appender.finish, methods=["POST"]),
        Route("/floor-reset", appender.floor_reset, methods=["POST"]),
        Route("/floor-stream", appender.floor_stream),
    ]
    return Starlette(routes=[Mount("/bench", routes=bench), Mount("/", api)], lifespan=lifespan)


def main(argv: list[str]) -> int:
    mode, database, port = argv[0], argv[1], int(argv[2])
    if mode == "runkit":
        app = runkit_app(database)
    elif mode == "streams":  # the ``streams`` family holds more streams than the caps allow
        from runkit_contrib import StreamSettings

        caps = StreamSettings(max_streams=100_000, max_streams_per_principal=100_000)
        app = runkit_app(database, stream=caps)
    elif mode == "sse":
        app = sse_app(database, float(argv[3]) if len(argv) > 3 else None)
    else:
        app = bare_app(database)
    stack = server_stack()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop=stack["loop"],
        http=stack["http"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
