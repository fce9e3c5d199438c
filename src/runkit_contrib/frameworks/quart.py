"""Quart: serve runkit under a prefix by wrapping ``app.asgi_app`` (as Flask users wrap
``wsgi_app``), and open runkit from Quart's serving hooks::

    app = Quart(__name__)
    mount_quart(app, runkit_contrib.asgi_app(rk, auth=...), "/runkit", runkit=rk, workers=2)

Wrapping ``asgi_app`` rather than the app object keeps ``app`` a Quart (``app.run``,
``app.test_client`` and ``hypercorn module:app`` all still work). Lifespan events keep going
to Quart, whose serving hooks open and close runkit.

This module imports nothing from Quart: it only needs ``app.asgi_app`` and
its serving hooks, so the app is typed structurally.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any, Protocol

from runkit import Runkit

from .._lifespan import lifespan as runkit_lifespan
from ._scope import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    mounted_scope,
    normalize_prefix,
    route_path,
    under,
)


class QuartLike(Protocol):
    asgi_app: Any

    def before_serving(self, func: Callable[[], Awaitable[None]]) -> Any: ...

    def after_serving(self, func: Callable[[], Awaitable[None]]) -> Any: ...


class PrefixDispatcher:
    """HTTP and websocket requests under ``prefix`` go to ``mounted``; everything else,
    lifespan included, to ``app``. The mounted app gets a Starlette-style scope (full
    ``path``, prefix appended to ``root_path``); old dispatchers that left ``root_path``
    alone made mounted apps build wrong URLs (hypercorn #259)."""

    def __init__(self, app: ASGIApp, mounted: ASGIApp, prefix: str) -> None:
        self.app = app
        self.mounted = mounted
        self.prefix = normalize_prefix(prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = route_path(scope)
            if under(self.prefix, path):
                remaining = path[len(self.prefix) :]
                await self.mounted(mounted_scope(scope, self.prefix, remaining), receive, send)
                return
        await self.app(scope, receive, send)


def mount_quart(
    app: QuartLike,
    runkit_app: ASGIApp,
    prefix: str = "/runkit",
    *,
    runkit: Runkit | None = None,
    workers: int = 0,
) -> None:
    """Serve ``runkit_app`` under ``prefix`` of the Quart ``app``; with ``runkit``, open it
    (and run ``workers`` embedded worker slots) while the app serves."""
    app.asgi_app = PrefixDispatcher(app.asgi_app, runkit_app, prefix)
    if runkit is None:
        return
    opened = runkit
    # Not ``while_serving``: Quart calls that generator function once, at registration, so
    # an app served twice in one process (``app.test_app()`` in each test, a test client
    # that runs lifespan per request) finds it exhausted and fails its startup. Quart runs
    # startup and shutdown in the same lifespan task, so the embedded worker's task group
    # may open in one hook and close in the other.
    stacks: list[AsyncExitStack] = []

    async def open_runkit() -> None:
        stack = AsyncExitStack()
        await stack.enter_async_context(runkit_lifespan(opened, workers=workers))
        stacks.append(stack)

    async def close_runkit() -> None:
        if stacks:
            await stacks.pop().aclose()

    app.before_serving(open_runkit)
    app.after_serving(close_runkit)
