"""Django: an outer ASGI router in ``asgi.py`` that serves runkit beside Django.

Django's ``ASGIHandler`` refuses ``lifespan`` scopes, so runkit cannot be opened from inside
Django; the outer router (a Starlette app, which runkit needs anyway) takes the lifespan
events and routes everything else::

    # mysite/asgi.py
    django_app = get_asgi_application()       # first: it runs django.setup()
    application = make_django_asgi(
        django_app, runkit_contrib.asgi_app(rk, auth=...), "/runkit", runkit=rk, workers=2
    )

This module imports no Django code: the Django app is just an ASGI callable here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from runkit import Runkit

from .._lifespan import lifespan as runkit_lifespan
from ._scope import normalize_prefix


def make_django_asgi(
    django_app: ASGIApp,
    runkit_app: ASGIApp,
    prefix: str = "/runkit",
    *,
    runkit: Runkit | None = None,
    workers: int = 0,
) -> Starlette:
    """``prefix`` (and below) goes to ``runkit_app``, everything else to ``django_app``.

    With ``runkit``, the router's lifespan opens it (and runs ``workers`` embedded worker
    slots) for as long as the server runs. Without it, open the Runkit elsewhere, or run
    the server with ``--lifespan off`` and a separate ``runkit worker``.

    ``FORCE_SCRIPT_NAME`` is Django's own business: runkit builds its URLs (``Location``,
    the OpenAPI ``servers`` entry) from the ASGI ``root_path`` alone.
    """
    mount_at = normalize_prefix(prefix)
    host_lifespan = None
    if runkit is not None:
        opened = runkit

        @asynccontextmanager
        async def host_lifespan(app: Starlette) -> AsyncIterator[None]:
            async with runkit_lifespan(opened, workers=workers):
                yield

    async def add_slash(request: Request) -> Response:
        url = request.url
        return RedirectResponse(str(url.replace(path=url.path + "/")), status_code=307)

    return Starlette(
        routes=[
            # The bare prefix is runkit's, not Django's: to "<prefix>/" (which sends people
            # on to the docs), as a Starlette or FastAPI host does by itself.
            Route(mount_at, add_slash),
            Mount(mount_at, app=runkit_app),
            # Mount("/") matches every path, so the outer router never answers 404 or a
            # trailing-slash redirect itself: Django's URLconf and APPEND_SLASH stay in charge.
            Mount("/", app=django_app),
        ],
        lifespan=host_lifespan,
    )
