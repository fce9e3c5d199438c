"""Fixtures for the HTTP API tests: a memory Runkit with our own kinds, the app over it,
and an httpx client that speaks ASGI to it (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from api_support import API_KEY, KINDS
from starlette.applications import Starlette

from runkit import Runkit
from runkit_contrib import ApiKeys, asgi_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh store of each backend (the SQL ones from tests/sql_fixtures.py)."""
    if request.param == "memory":
        return "memory://"
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture
async def runkit() -> AsyncIterator[Runkit]:
    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False) as rk:
        yield rk


@pytest.fixture
def app(runkit: Runkit) -> Starlette:
    return asgi_app(runkit, auth=ApiKeys({"tester": API_KEY}))


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
