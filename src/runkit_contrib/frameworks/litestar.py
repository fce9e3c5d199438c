"""Litestar: an ``@asgi(is_mount=True, copy_scope=True)`` handler that serves runkit::

    app = Litestar(
        route_handlers=[runkit_mount(runkit_contrib.asgi_app(rk, auth=...), "/runkit")],
        lifespan=[runkit_lifespan(rk, workers=2)],
    )

Litestar hands a mounted app ``path`` with the mount path cut off and a ``/`` appended
(``/runkit/api/v1/action-runs`` arrives as ``/api/v1/action-runs/``) and leaves
``root_path`` alone. The runkit app is a Starlette app that expects the Starlette shape
(full ``path``, prefix in ``root_path``; otherwise its ``Location`` headers and OpenAPI
``servers`` lose the prefix, and the appended slash would 404), so the handler rebuilds
that scope. ``copy_scope=True``: the rebuilt scope never leaks back into Litestar's.

Register the handler on the application itself: its path is taken as the mount prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from litestar import Litestar, asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from runkit import Runkit

from .._lifespan import lifespan as _lifespan
from ._scope import ASGIApp, mounted_scope, normalize_prefix


def runkit_mount(
    runkit_app: ASGIApp, path: str = "/runkit", *, name: str = "runkit"
) -> ASGIRouteHandler:
    """The route handler mounting ``runkit_app`` at ``path``."""
    prefix = normalize_prefix(path)

    async def serve_runkit(scope: Scope, receive: Receive, send: Send) -> None:
        remaining = str(scope["path"])
        # Litestar appended a slash the client did not send; the raw path tells.
        raw = scope.get("raw_path")
        sent_slash = isinstance(raw, bytes) and raw.split(b"?", 1)[0].endswith(b"/")
        if remaining.endswith("/") and not sent_slash:
            remaining = remaining[:-1]
        child = mounted_scope(scope, prefix, remaining)  # type: ignore[arg-type]
        await runkit_app(child, receive, send)  # type: ignore[arg-type]

    handler: ASGIRouteHandler = asgi(prefix, is_mount=True, copy_scope=True, name=name)(
        serve_runkit
    )
    return handler


def runkit_lifespan(
    runkit: Runkit, *, workers: int = 0
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    """For ``Litestar(lifespan=[...])``: opens ``runkit`` (and runs ``workers`` embedded
    worker slots) while the application runs."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with _lifespan(runkit, workers=workers):
            yield

    return lifespan
