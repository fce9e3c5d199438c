"""``asgi_app``: the Action Runs API as a Starlette application a host mounts anywhere.

The app keeps no lifespan of its own (frameworks do not forward lifespan events to mounted
apps): the host opens the Runkit, e.g. with :func:`runkit_contrib.lifespan`. Paths are
relative to the mount point; ``/openapi.json`` names the mount prefix in ``servers``, and
``/`` sends people to ``/docs``.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from runkit import Runkit

from ._auth import AuthConfig, Authenticator, as_authenticators
from ._docs_page import docs_page
from ._errors import catch_all_handler, http_exception_handler
from ._openapi import build_openapi
from ._routes import Api, ApiConfig, Authorize
from ._sse import StreamSettings


def asgi_app(
    runkit: Runkit,
    *,
    auth: Authenticator | Sequence[Authenticator] | None = None,
    allow_anonymous: bool = False,
    csrf_trusted_origins: Sequence[str] = (),
    max_body_bytes: int = 1 << 20,
    authorize: Authorize | None = None,
    docs: bool = True,
    stream: StreamSettings | None = None,
    max_page_bytes: int = 8 << 20,
) -> Starlette:
    """The API over ``runkit``. Secure by default: with no ``auth`` every request answers
    401 unless ``allow_anonymous``. ``authorize(principal, action, run)`` may refuse any
    action on any run (see docs/http.md); ``stream`` tunes the SSE timings;
    ``max_page_bytes`` bounds a list page (it holds fewer runs than asked beyond it)."""
    if max_body_bytes < 1 or max_page_bytes < 1:
        raise ValueError("max_body_bytes and max_page_bytes must be positive")
    config = ApiConfig(
        runkit=runkit,
        auth=AuthConfig(
            authenticators=as_authenticators(auth),
            allow_anonymous=allow_anonymous,
            trusted_origins=frozenset(o.rstrip("/") for o in csrf_trusted_origins),
        ),
        max_body_bytes=max_body_bytes,
        authorize=authorize,
        stream=stream or StreamSettings(),
        max_page_bytes=max_page_bytes,
    )
    routes: list[BaseRoute] = Api(config).routes()
    if docs:

        def document(request: Request) -> dict[str, object]:
            root = str(request.scope.get("root_path", "")).rstrip("/")
            return build_openapi(runkit, allow_anonymous=allow_anonymous, root_path=root)

        async def openapi(request: Request) -> Response:
            return JSONResponse(document(request))

        async def docs_html(request: Request) -> Response:
            return HTMLResponse(docs_page(document(request)))

        async def home(request: Request) -> Response:
            # An absolute path under the mount: a relative "docs" would resolve against
            # "/runkit" (no slash) to "/docs", outside the mount.
            root = str(request.scope.get("root_path", "")).rstrip("/")
            return RedirectResponse(f"{root}/docs", status_code=307)

        routes += [
            Route("/", home, methods=["GET"], include_in_schema=False),
            Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
            Route("/docs", docs_html, methods=["GET"], include_in_schema=False),
        ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_exception_handler, Exception: catch_all_handler},
    )
