"""Litestar host: ``RUNKIT_API_KEYS=k uvicorn examples.litestar_app:app``.

``runkit_mount`` is an ``@asgi(is_mount=True, copy_scope=True)`` handler that restores the
scope runkit expects (Litestar strips the mount path and appends a slash). Litestar's own
OpenAPI stays at ``/schema``; runkit serves its document at ``/runkit/openapi.json``.
"""

from __future__ import annotations

from litestar import Litestar, get

from runkit_contrib.frameworks.litestar import runkit_lifespan, runkit_mount

from ._common import PREFIX, make_runkit, make_runkit_app, workers

rk = make_runkit()


@get("/")
async def index() -> dict[str, str]:
    return {"runkit": f"{PREFIX}/docs"}


app = Litestar(
    route_handlers=[index, runkit_mount(make_runkit_app(rk), PREFIX)],
    lifespan=[runkit_lifespan(rk, workers=workers())],
)
