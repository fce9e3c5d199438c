"""``asgi_app``: the Action Runs API as a Starlette application a host mounts anywhere.

The app keeps no lifespan of its own (frameworks do not forward lifespan events to mounted
apps): the host opens the Runkit, e.g. with :func:`runkit_contrib.lifespan`. Paths are
relative to the mount point; ``/openapi.json`` names the mount prefix in ``servers``, and
``/`` sends people to the dashboard (``/ui/``), or to ``/docs`` without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from runkit import Runkit

from ._auth import AuthConfig, Authenticator, as_authenticators
from ._docs_page import docs_page
from ._errors import catch_all_handler, http_exception_handler
from ._json import JSONResponse
from ._openapi import build_openapi
from ._routes import Api, ApiConfig, Authorize
from ._session_routes import session_routes
from ._sessions import SESSION_LIFETIME, Sessions, sessions_for
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
    sessions: Sessions | bool | None = None,
    session_secret: bytes | str | None = None,
    session_lifetime: timedelta = SESSION_LIFETIME,
    ui: bool = True,
) -> Starlette:
    """The API over ``runkit``. Secure by default: with no ``auth`` every request answers
    401 unless ``allow_anonymous``. ``authorize(principal, action, run)`` may refuse any
    action on any run (see docs/http.md); ``stream`` tunes the SSE timings;
    ``max_page_bytes`` bounds a list page (it holds fewer runs than asked beyond it).

    Sessions (docs/dashboard.md): ``POST /api/v1/sessions`` trades a key ``auth`` accepts
    for a ``vai_token`` cookie signed with ``session_secret`` (None: a secret of this
    process, so sessions end when it stops), valid for ``session_lifetime``; ``sessions``
    passes a :class:`Sessions` instead, or False for none. ``ui``: the dashboard under
    ``/ui/``, and ``/`` leading to it."""
    if max_body_bytes < 1 or max_page_bytes < 1:
        raise ValueError("max_body_bytes and max_page_bytes must be positive")
    verifiers = as_authenticators(auth)
    if sessions is None and session_secret is not None:
        sessions = Sessions(session_secret, lifetime=session_lifetime)
    elif sessions is None:
        sessions = Sessions.ephemeral(lifetime=session_lifetime)
    signer = sessions_for(sessions, verifiers)
    trusted = frozenset(o.rstrip("/") for o in csrf_trusted_origins)
    config = ApiConfig(
        runkit=runkit,
        auth=AuthConfig(
            # Sessions first: they answer only runkit's own cookie tokens, and leave any
            # other cookie (a host's own sign-in) to the host's verifiers.
            authenticators=verifiers if signer is None else (signer, *verifiers),
            allow_anonymous=allow_anonymous,
            trusted_origins=trusted,
        ),
        max_body_bytes=max_body_bytes,
        authorize=authorize,
        stream=stream or StreamSettings(),
        max_page_bytes=max_page_bytes,
    )
    api = Api(config)
    routes: list[BaseRoute] = api.routes()
    if signer is not None:
        routes += session_routes(signer, trusted_origins=trusted, max_body_bytes=max_body_bytes)
    if ui:
        from .ui import ui_routes  # jinja2 is loaded only by apps that serve the pages

        routes += ui_routes(api, sign_in=signer is not None)
    home_path = "/ui/" if ui else "/docs" if docs else None
    if home_path is not None:

        async def home(request: Request) -> Response:
            # An absolute path under the mount: a relative one would resolve against
            # "/runkit" (no slash) to "/", outside the mount.
            root = str(request.scope.get("root_path", "")).rstrip("/")
            return RedirectResponse(f"{root}{home_path}", status_code=307)

        routes.append(Route("/", home, methods=["GET"], include_in_schema=False))
    if docs:

        def document(request: Request) -> dict[str, object]:
            root = str(request.scope.get("root_path", "")).rstrip("/")
            return build_openapi(
                runkit,
                allow_anonymous=allow_anonymous,
                root_path=root,
                sessions=signer is not None,
            )

        async def openapi(request: Request) -> Response:
            return JSONResponse(document(request))

        async def docs_html(request: Request) -> Response:
            return HTMLResponse(docs_page(document(request)))

        routes += [
            Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
            Route("/docs", docs_html, methods=["GET"], include_in_schema=False),
        ]
    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: http_exception_handler, Exception: catch_all_handler},
    )
