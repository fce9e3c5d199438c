"""The runkit dashboard: HTML pages under ``/ui`` over the same :class:`Api` as the JSON
API, served by the same ASGI app.

Pages are rendered on the server from runkit itself (autoescaped Jinja2 templates); what
changes them (creating runs, actions, decisions, signing in and out) is done by the browser
calling the JSON API (``static/dashboard.js``). Live parts refresh with htmx (vendored in
``static/vendor``), logs by cursor and Server-Sent Events. Every URL a page emits is
absolute under the app's mount root (``scope["root_path"]``). See docs/dashboard.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from runkit import Principal

from .._routes import Api
from .access import Page, Refused, guarded, rendered
from .pages import approvals_context, new_context, sign_in_page, workers_context
from .render import SESSIONS, STATIC, root
from .run import run_page, run_summary
from .runs import runs_context

__all__ = ["ui_routes"]

Endpoint = Callable[[Request], Awaitable[Response]]

#: Static files' URLs carry a digest of their content (``?v=``), so they may be kept long.
STATIC_CACHE = "public, max-age=86400"


class _Static:
    """The package's static files, with a cache header and no sniffing."""

    def __init__(self) -> None:
        self.files = StaticFiles(directory=STATIC)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers.append((b"cache-control", STATIC_CACHE.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.files(scope, receive, send_with_headers)  # type: ignore[arg-type]


def ui_routes(api: Api, *, sign_in: bool = True) -> list[BaseRoute]:
    """The dashboard's routes, all under ``/ui``; the app adds them beside the API's.

    ``sign_in``: whether the app has runkit's sessions (``POST /api/v1/sessions``), so the
    sign-in page offers a key form; False: it says the host signs people in itself."""

    async def to_home(request: Request) -> Response:
        return RedirectResponse(f"{root(request)}/ui/", status_code=307)

    def marked(endpoint: Endpoint) -> Endpoint:
        """``endpoint``, its pages told whether runkit signs people in (:data:`SESSIONS`)."""

        async def answer(request: Request) -> Response:
            request.scope[SESSIONS] = sign_in
            return await endpoint(request)

        return answer

    async def not_found(request: Request, principal: Principal | None) -> Response:
        raise Refused(404, "No such page.")

    def page(path: str, endpoint: Page, name: str) -> Route:
        return Route(path, marked(guarded(api, endpoint)), methods=["GET"], name=name)

    return [
        Route("/ui", to_home, methods=["GET"], include_in_schema=False),
        Route("/ui/sign-in", marked(sign_in_page(api)), methods=["GET"], name="ui_sign_in"),
        page("/ui/", rendered(api, "runs.html", runs_context), "ui_runs"),
        page("/ui/fragments/runs", rendered(api, "runs_live.html", runs_context), "ui_runs_rows"),
        page("/ui/runs/{run_id}", run_page(api), "ui_run"),
        page("/ui/runs/{run_id}/summary", run_summary(api), "ui_run_summary"),
        page("/ui/new", rendered(api, "new.html", new_context), "ui_new"),
        page("/ui/approvals", rendered(api, "approvals.html", approvals_context), "ui_approvals"),
        page(
            "/ui/fragments/approvals",
            rendered(api, "approvals_live.html", approvals_context),
            "ui_approvals_rows",
        ),
        page("/ui/workers", rendered(api, "workers.html", workers_context), "ui_workers"),
        page(
            "/ui/fragments/workers",
            rendered(api, "workers_live.html", workers_context),
            "ui_workers_rows",
        ),
        Mount("/ui/static", app=_Static(), name="ui_static"),
        # Any other address under /ui/: the 404 page (an HTML page, with its icon), not
        # the API's JSON 404, after which a browser would ask the host for /favicon.ico.
        page("/ui/{rest:path}", not_found, "ui_not_found"),
    ]
