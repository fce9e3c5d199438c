"""Quart host: ``RUNKIT_API_KEYS=k uvicorn examples.quart_app:app`` (or hypercorn).

``mount_quart`` wraps ``app.asgi_app`` with a prefix dispatcher and opens runkit from
Quart's ``before_serving``/``after_serving``; ``app`` stays a Quart app.
"""

from __future__ import annotations

from quart import Quart

from runkit_contrib.frameworks.quart import mount_quart

from ._common import PREFIX, make_runkit, make_runkit_app, workers

rk = make_runkit()
app = Quart(__name__)


@app.get("/")
async def index() -> dict[str, str]:
    return {"runkit": f"{PREFIX}/docs"}


mount_quart(app, make_runkit_app(rk), PREFIX, runkit=rk, workers=workers())
