"""``POST /api/v1/sessions`` (sign in: a key for a ``vai_token`` cookie) and ``DELETE
/api/v1/sessions`` (sign out).

Signing in is refused from another site's page: its ``Origin`` (or ``Sec-Fetch-Site:
cross-site``) says so, and a form cannot send ``application/json`` across sites without a
CORS preflight runkit never grants. So no page elsewhere can sign a visitor in under a key
of its choosing (login CSRF). Signing out with a live cookie needs the same CSRF proof as
any cookie-authenticated change; without one it just clears the cookie.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ._auth import CHALLENGE, COOKIE_NAME, Credentials, check_csrf, extract, trusted_origin
from ._body import decode, json_object
from ._errors import HttpError, invalid, to_response
from ._json import JSONResponse
from ._sessions import Issued, Sessions
from ._wire import Session, SessionPrincipal, SignIn, UserProfile, project, to_json

_MAX_KEY = 4096


def session_routes(
    sessions: Sessions, *, trusted_origins: frozenset[str], max_body_bytes: int
) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        try:
            if request.method == "POST":
                return await _sign_in(request, sessions, trusted_origins, max_body_bytes)
            return _sign_out(request, sessions, trusted_origins)
        except Exception as exc:  # the API's one translation table
            return to_response(exc, "body")

    return [Route("/api/v1/sessions", endpoint, methods=["POST", "DELETE"], name="sessions")]


async def _sign_in(
    request: Request, sessions: Sessions, trusted: frozenset[str], max_body_bytes: int
) -> Response:
    _refuse_cross_site(request, trusted)
    body = decode(await json_object(request, max_body_bytes, required=False), SignIn)
    carried = extract(request)
    if carried is not None and carried.carrier == "cookie":
        carried = None  # a session does not make another
    if body.api_key is not None:
        key = body.api_key
        if not isinstance(key, str):
            raise invalid(("body", "apiKey"), "must be a string", "string_type")
        if not 1 <= len(key) <= _MAX_KEY:
            raise invalid(("body", "apiKey"), f"must be 1 to {_MAX_KEY} characters", "string")
        carried = Credentials(api_key=key)  # the body names whom to sign in: it wins
    if carried is None:
        raise invalid(("body", "apiKey"), "field required", "missing")
    issued = await sessions.sign_in(carried)
    if issued is None:
        raise HttpError(401, "invalid credentials", CHALLENGE)
    response = JSONResponse(_session_json(issued))
    response.set_cookie(
        COOKIE_NAME,
        issued.token,
        max_age=issued.max_age,
        path=_cookie_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _sign_out(request: Request, sessions: Sessions, trusted: frozenset[str]) -> Response:
    token = request.cookies.get(COOKIE_NAME)
    if token:
        check_csrf(request, trusted)
        sessions.sign_out(token)
    response = Response(status_code=204)
    response.delete_cookie(
        COOKIE_NAME,
        path=_cookie_path(request),
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


def _refuse_cross_site(request: Request, trusted: frozenset[str]) -> None:
    """A browser names the page's origin (``null`` when opaque); without one, only its
    Fetch metadata can say the request is cross-site."""
    origin = request.headers.get("origin")
    if origin is not None:
        cross = not trusted_origin(request, trusted)
    else:
        cross = request.headers.get("sec-fetch-site") == "cross-site"
    if cross:
        raise HttpError(403, "sign-in from another site refused")


def _cookie_path(request: Request) -> str:
    """The mount point, so the cookie rides on the API and the dashboard and nowhere else."""
    return str(request.scope.get("root_path", "")).rstrip("/") + "/"


def _session_json(issued: Issued) -> dict[str, object]:
    p = issued.principal
    roles = None if p.roles is None else sorted(p.roles)
    profile = issued.profile
    user = None if profile is None else project(UserProfile, profile)
    wire = Session(
        principal=SessionPrincipal(id=p.id, kind=p.kind, roles=roles, tenant=p.tenant),
        user=user,
        expires_at=issued.expires_at,
    )
    return to_json(wire)
