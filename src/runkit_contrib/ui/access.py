"""Who is looking at a page, and what they may do: sign-in redirects, the 403/404 pages, and
the action buttons a run shows (what its status allows, intersected with what the
principal may do).

Pages authenticate exactly as the API does (:func:`runkit_contrib._auth.authenticate`): an
``X-API-Key`` or bearer header, or the ``vai_token`` session cookie. A caller without one
is sent to the sign-in page; an htmx fragment request (a live refresh whose session
expired) answers 401 with ``HX-Redirect`` instead, so htmx leaves the page for the sign-in
page rather than swapping it into a table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote
from uuid import UUID

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from runkit import TRANSITIONS, Action, Principal, Run, RunNotFound, Status, StorageUnavailable

from .._auth import authenticate
from .._errors import RETRY_AFTER_SECONDS, HttpError, logger
from .._routes import Api
from .render import SECURITY_HEADERS, render, root

#: The API actions a run page may offer, in the order its buttons appear.
ACTIONS: tuple[Action, ...] = (
    Action.EXECUTE,
    Action.RESUME,
    Action.PAUSE,
    Action.APPROVE,
    Action.REJECT,
    Action.CANCEL,
    Action.RETRY,
    Action.DELETE,
)
LABELS = {
    Action.EXECUTE: "Execute",
    Action.RESUME: "Resume",
    Action.PAUSE: "Pause",
    Action.APPROVE: "Approve",
    Action.REJECT: "Reject",
    Action.CANCEL: "Cancel",
    Action.RETRY: "Retry",
    Action.DELETE: "Delete",
}

#: A page: what it answers ``principal`` (authenticated by :func:`guarded`).
Page = Callable[[Request, Principal | None], Awaitable[Response]]
#: What a template is rendered with, for ``principal``.
Context = Callable[[Api, Request, Principal | None], Awaitable[dict[str, Any]]]


class Refused(Exception):
    """A page the caller may not see: rendered as the 403 or 404 page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_fragment(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def sign_in_url(request: Request, next_path: str | None = None) -> str:
    """R/ui/sign-in?next=<where the caller was going> (the page itself for a fragment)."""
    if next_path is None:
        next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{root(request)}/ui/sign-in?next={quote(next_path, safe='/')}"


def rendered(api: Api, template: str, context: Context) -> Page:
    """The page that renders ``template`` with ``context``."""

    async def page(request: Request, principal: Principal | None) -> Response:
        return render(request, template, await context(api, request, principal))

    return page


def guarded(api: Api, page: Page) -> Callable[[Request], Awaitable[Response]]:
    """``page`` behind authentication: 303 to the sign-in page without credentials, the
    403/404 page for what the caller may not see."""

    async def endpoint(request: Request) -> Response:
        try:
            principal = await authenticate(request, api.config.auth)
        except HttpError as exc:
            if exc.status != 401:
                return error_page(api, request, exc.status, exc.detail)
            if is_fragment(request):
                current = request.headers.get("hx-current-url")
                target = sign_in_url(request, _path_of(current) if current else None)
                return Response(status_code=401, headers={"HX-Redirect": target})
            return RedirectResponse(sign_in_url(request), status_code=303)
        try:
            return await page(request, principal)
        except Refused as exc:
            return error_page(api, request, exc.status, exc.message, principal)
        except RunNotFound:
            return error_page(api, request, 404, "No such run.", principal)
        except StorageUnavailable as exc:
            # Details stay in the server log (as the API's 503 keeps them).
            logger.warning("storage unavailable: %s", exc)
            response = error_page(
                api, request, 503, "The run store is unavailable; try again shortly.", principal
            )
            response.headers["Retry-After"] = RETRY_AFTER_SECONDS
            return response

    return endpoint


def _path_of(url: str) -> str:
    """The path and query of an absolute URL (htmx's ``HX-Current-URL``)."""
    rest = url.split("://", 1)[-1]
    slash = rest.find("/")
    return rest[slash:] if slash >= 0 else "/"


def error_page(
    api: Api, request: Request, status: int, message: str, principal: Principal | None = None
) -> Response:
    if is_fragment(request):
        # htmx does not swap error answers: the row or summary stays as it was.
        return Response(message, status_code=status, headers=SECURITY_HEADERS)
    titles = {403: "Not allowed", 404: "Not found", 503: "Unavailable"}
    return render(
        request,
        "error.html",
        {
            **chrome(api, principal, ""),
            "title": titles.get(status, "Error"),
            "message": message,
            "status": status,
        },
        status=status,
    )


async def require(api: Api, principal: Principal | None, action: str, run: Run | None) -> None:
    """Refused unless ``principal`` may ``action``; a run it may not see is "not found"."""
    if await api.allowed(principal, action, run):
        return
    if run is not None and (action == "get" or not await api.allowed(principal, "get", run)):
        raise Refused(404, "No such run.")
    if run is not None:
        raise Refused(403, f"You are not allowed to {action} run {run.id}.")
    what = _WITHOUT_RUN.get(action, f"{action.replace('_', ' ')} runs")
    raise Refused(403, f"You are not allowed to {what}.")


#: What the actions asked without a run are, for the 403 page ("not allowed to ...").
_WITHOUT_RUN = {
    "create": "create runs",
    "list": "list runs",
    "workers": "see the workers",
    "kinds": "see the kinds",
}


def parse_run_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise Refused(404, "No such run.") from None


def status_actions(api: Api, run: Run) -> list[Action]:
    """The client actions ``run``'s status allows, as the core decides them: the state
    table, less ``pause`` of a running run whose kind cannot pause (``Runkit.pause``
    refuses it) and approve/reject of a run whose kind is no approval gate."""
    legal = {a for (s, a) in TRANSITIONS if s is run.status}
    kind = api.rk.kinds.get(run.kind)
    if run.status is Status.RUNNING and kind is not None and not kind.pausable:
        legal.discard(Action.PAUSE)
    if kind is None or kind.approval is None:
        legal -= {Action.APPROVE, Action.REJECT}
    return [a for a in ACTIONS if a in legal]


async def run_actions(
    api: Api, principal: Principal | None, run: Run, refusal: str = ""
) -> tuple[list[dict[str, str]], str]:
    """The buttons of ``run``: what its status allows and ``principal`` may do; and the
    note to show instead of Approve and Reject when the roles allow them but the gate's
    policy refuses ``principal`` (``refusal``, from :func:`~.run.decision_note`)."""
    shown = []
    note = ""
    for action in status_actions(api, run):
        if not await api.allowed(principal, action.value, run):
            continue
        if refusal and action in (Action.APPROVE, Action.REJECT):
            note = refusal
            continue
        shown.append({"action": action.value, "label": LABELS[action]})
    return shown, note


def chrome(api: Api, principal: Principal | None, nav: str) -> dict[str, Any]:
    """What every page's frame shows: who is signed in, and which nav link is current."""
    return {"whoami": principal_name(api, principal), "principal": principal, "nav": nav}


def principal_name(api: Api, principal: Principal | None) -> str:
    """The signed-in person's name when an authenticator knows it (a key store naming its
    keys' owners), else the principal's id (always for an API key or system principal,
    whose id may be a person's too)."""
    if principal is None:
        return "anonymous"
    if principal.kind != "user":  # the directories know people by user id, not keys
        return principal.id
    for verifier in api.config.auth.authenticators:
        lookup: Any = getattr(verifier, "users", None)
        if lookup is None:
            continue
        try:
            profile = lookup([principal.id]).get(principal.id)
        except Exception:  # a directory that fails must not take the page down
            continue
        if profile is not None:
            full = " ".join(p for p in (profile.first_name, profile.last_name) if p)
            if full:
                return str(full)
    return principal.id
