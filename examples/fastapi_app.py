"""FastAPI host: ``RUNKIT_API_KEYS=k uvicorn examples.fastapi_app:app``.

runkit is a mounted sub-app, so FastAPI never runs a lifespan of its own (FastAPI #811):
the host's lifespan opens runkit. Its API lives at ``/runkit/api/v1/action-runs``, its
OpenAPI at ``/runkit/openapi.json`` (the host's ``/docs`` does not list it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import runkit_contrib

from ._common import PREFIX, make_runkit, make_runkit_app, workers

rk = make_runkit()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with runkit_contrib.lifespan(rk, workers=workers()):
        yield


app = FastAPI(lifespan=lifespan)
app.mount(PREFIX, make_runkit_app(rk))


@app.get("/")
async def index() -> dict[str, str]:
    return {"runkit": f"{PREFIX}/docs"}
