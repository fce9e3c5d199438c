"""The HTTP servers the ``http`` family measures, one process each (pinned by the caller):
``python -m benchmarks._http_server MODE DATABASE PORT``.

MODE ``runkit``: ``runkit_contrib.asgi_app(rk, allow_anonymous=True)`` with runkit opened by
``runkit_contrib.lifespan`` (API only, no worker). MODE ``bare``: a Starlette app with one
route, ``GET /bare/{run_id}``, that reads the same row through a psycopg pool and answers
its JSON: the framework-plus-driver floor of ``GET /api/v1/action-runs/{id}``.
Both under uvicorn, one worker, access log off.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from . import _harness as h


def runkit_app(database: str) -> Starlette:
    import runkit_contrib

    from ._runkit import make_runkit

    rk = make_runkit(h.url(database))
    api = runkit_contrib.asgi_app(rk, allow_anonymous=True, docs=False)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runkit_contrib.lifespan(rk):
            yield

    return Starlette(routes=[Mount("/", api)], lifespan=lifespan)


def bare_app(database: str) -> Starlette:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(h.dsn(database), min_size=4, max_size=8, open=False)

    async def get_run(request: Request) -> Response:
        async with pool.connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "SELECT * FROM runkit_runs WHERE id = %s", [request.path_params["run_id"]]
            )
            row: Any = await cur.fetchone()
        if row is None:
            return Response(b'{"detail":"not found"}', 404, media_type="application/json")
        body = json.dumps(row, default=str, separators=(",", ":"))
        return Response(body, media_type="application/json")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await pool.open()
        try:
            yield
        finally:
            await pool.close()

    return Starlette(routes=[Route("/bare/{run_id}", get_run)], lifespan=lifespan)


def main(argv: list[str]) -> int:
    mode, database, port = argv[0], argv[1], int(argv[2])
    app = runkit_app(database) if mode == "runkit" else bare_app(database)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
