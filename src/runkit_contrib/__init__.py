"""runkit_contrib: the Action Runs HTTP API (ASGI, on Starlette) and ``runkit serve``."""

from ._app import asgi_app
from ._auth import ApiKeys, Authenticator, Credentials
from ._lifespan import lifespan
from ._routes import Authorize
from ._sse import StreamSettings

__all__ = [
    "ApiKeys",
    "Authenticator",
    "Authorize",
    "Credentials",
    "StreamSettings",
    "asgi_app",
    "lifespan",
]
