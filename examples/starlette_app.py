"""Starlette host: ``RUNKIT_API_KEYS=k uvicorn examples.starlette_app:app``.

``Mount`` keeps the full ``path`` and puts ``/runkit`` in ``root_path`` (Starlette >= 0.35),
which is what runkit builds its ``Location`` headers and OpenAPI ``servers`` from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import runkit_contrib

from ._common import PREFIX, make_runkit, make_runkit_app, workers

rk = make_runkit()


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    async with runkit_contrib.lifespan(rk, workers=workers()):
        yield


async def index(request: Request) -> JSONResponse:
    return JSONResponse({"runkit": f"{PREFIX}/docs"})


app = Starlette(
    routes=[Route("/", index), Mount(PREFIX, app=make_runkit_app(rk))],
    lifespan=lifespan,
)
