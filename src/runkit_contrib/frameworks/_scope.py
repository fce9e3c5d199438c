"""Routing a request to a mounted app the way Starlette's ``Mount`` does it (Starlette >= 0.35,
the ASGI spec's reading): ``path`` stays the full path, ``root_path`` gains the prefix.

The runkit app is a Starlette app and finds its route by stripping ``root_path`` from
``path``. Hand-rolled dispatchers that strip the prefix from ``path`` instead work only by
accident, and break when the remaining path itself starts with the prefix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def normalize_prefix(prefix: str) -> str:
    """``"runkit/"`` -> ``"/runkit"``; the empty prefix is refused (mount elsewhere instead)."""
    cleaned = "/" + prefix.strip("/")
    if cleaned == "/":
        raise ValueError("mount prefix must not be empty or '/'")
    return cleaned


def route_path(scope: Scope) -> str:
    """The path below the app's own ``root_path`` (what the app routes on)."""
    path = str(scope["path"])
    root = str(scope.get("root_path", ""))
    if root and (path == root or path.startswith(root + "/")):
        return path[len(root) :]
    return path


def under(prefix: str, path: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def mounted_scope(scope: Scope, prefix: str, remaining: str) -> Scope:
    """A copy of ``scope`` for an app mounted at ``prefix`` that is to see ``remaining``
    (the part of the path below the prefix, ``""`` or starting with ``/``)."""
    root = str(scope.get("root_path", "")) + prefix
    return {**scope, "root_path": root, "path": root + remaining}
