"""One client class per framework, in the manner of strawberry's ``tests/http/clients/``.

Each builds a host application of its framework that serves a route of its own
(``GET /hello``) and mounts the runkit app under :data:`PREFIX` the way docs/frameworks.md
tells users to, runs runkit's lifespan from the *host's* lifespan (never the sub-app's),
and exposes an :class:`httpx.AsyncClient` speaking ASGI to the host (no sockets). The shared
suite only ever talks to :attr:`FrameworkClient.http` with paths under :attr:`prefix`.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import anyio
import httpx
from starlette.types import ASGIApp

import runkit_contrib
from runkit import Runkit

PREFIX = "/runkit"
HELLO = "hello from the host"


class FrameworkClient(abc.ABC):
    name: ClassVar[str]

    def __init__(self, runkit: Runkit, runkit_app: ASGIApp, *, workers: int = 0) -> None:
        self.runkit = runkit
        self.runkit_app = runkit_app
        self.workers = workers
        self.prefix = PREFIX
        self.app = self.build()
        self._http: httpx.AsyncClient | None = None

    @abc.abstractmethod
    def build(self) -> Any:
        """The host app: ``GET /hello`` answers :data:`HELLO`, runkit under the prefix."""

    @property
    def http(self) -> httpx.AsyncClient:
        assert self._http is not None, "use `async with client.running()`"
        return self._http

    def api(self, suffix: str = "") -> str:
        """A path of the Action Runs API as the host serves it."""
        return f"{self.prefix}/api/v1/action-runs{suffix}"

    def v1(self, suffix: str) -> str:
        """Another path of the API (``/kinds``, ``/workers``) as the host serves it."""
        return f"{self.prefix}/api/v1{suffix}"

    @asynccontextmanager
    async def running(self, *, root_path: str = "") -> AsyncIterator[FrameworkClient]:
        """The host's lifespan (startup before the first request, shutdown after the last),
        and a client for the duration. ``root_path``: as if served behind a proxy under
        that path (``uvicorn --root-path``); request paths must then start with it."""
        async with asgi_lifespan(self.app):
            transport = httpx.ASGITransport(app=self.app, root_path=root_path)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                self._http = c
                try:
                    yield self
                finally:
                    self._http = None

    @asynccontextmanager
    async def _runkit_lifespan(self) -> AsyncIterator[None]:
        async with runkit_contrib.lifespan(self.runkit, workers=self.workers):
            yield


@asynccontextmanager
async def asgi_lifespan(app: Any) -> AsyncIterator[None]:
    """Drive the ASGI lifespan protocol the way a server does (httpx's transport does not),
    failing loudly if the app refuses it or reports a failed startup."""
    to_app, app_inbox = anyio.create_memory_object_stream[dict[str, Any]](4)
    app_outbox, from_app = anyio.create_memory_object_stream[dict[str, Any]](4)
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}

    async def expect(kind: str) -> None:
        message = await from_app.receive()
        assert message["type"] == kind, f"lifespan: expected {kind}, got {message}"

    async with to_app, app_inbox, app_outbox, from_app, anyio.create_task_group() as tg:
        tg.start_soon(app, scope, app_inbox.receive, app_outbox.send)
        await to_app.send({"type": "lifespan.startup"})
        await expect("lifespan.startup.complete")
        try:
            yield
        finally:
            await to_app.send({"type": "lifespan.shutdown"})
            await expect("lifespan.shutdown.complete")


class FastAPIClient(FrameworkClient):
    name = "fastapi"

    def build(self) -> Any:
        from fastapi import FastAPI
        from fastapi.responses import PlainTextResponse

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with self._runkit_lifespan():
                yield

        app = FastAPI(lifespan=lifespan)

        @app.get("/hello", response_class=PlainTextResponse)
        async def hello() -> str:
            return HELLO

        app.mount(self.prefix, self.runkit_app)
        return app


class StarletteClient(FrameworkClient):
    name = "starlette"

    def build(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import PlainTextResponse
        from starlette.routing import Mount, Route

        async def hello(request: Request) -> PlainTextResponse:
            return PlainTextResponse(HELLO)

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with self._runkit_lifespan():
                yield

        return Starlette(
            routes=[Route("/hello", hello), Mount(self.prefix, app=self.runkit_app)],
            lifespan=lifespan,
        )


class LitestarClient(FrameworkClient):
    name = "litestar"

    def build(self) -> Any:
        from litestar import Litestar, MediaType, get

        from runkit_contrib.frameworks.litestar import runkit_lifespan, runkit_mount

        @get("/hello", media_type=MediaType.TEXT)
        async def hello() -> str:
            return HELLO

        return Litestar(
            route_handlers=[hello, runkit_mount(self.runkit_app, self.prefix)],
            lifespan=[runkit_lifespan(self.runkit, workers=self.workers)],
            # Litestar's default logging config installs handlers on the root logger of the
            # whole test process; nothing here needs it.
            logging_config=None,
        )


class DjangoClient(FrameworkClient):
    name = "django"

    def build(self) -> Any:
        from django.core.asgi import get_asgi_application

        from runkit_contrib.frameworks.django import make_django_asgi

        from . import django_host

        django_host.configure()
        return make_django_asgi(
            get_asgi_application(),
            self.runkit_app,
            self.prefix,
            runkit=self.runkit,
            workers=self.workers,
        )


class QuartClient(FrameworkClient):
    name = "quart"

    def build(self) -> Any:
        from quart import Quart

        from runkit_contrib.frameworks.quart import mount_quart

        app = Quart("runkit_test_host")

        @app.get("/hello")
        async def hello() -> tuple[str, int, dict[str, str]]:
            return HELLO, 200, {"Content-Type": "text/plain"}

        mount_quart(app, self.runkit_app, self.prefix, runkit=self.runkit, workers=self.workers)
        return app


CLIENTS: tuple[type[FrameworkClient], ...] = (
    FastAPIClient,
    StarletteClient,
    LitestarClient,
    DjangoClient,
    QuartClient,
)
