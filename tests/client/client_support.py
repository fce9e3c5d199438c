"""What the client's tests share: a real ``runkit serve`` on a free loopback port (SQLite or
PostgreSQL, the test kinds on, two embedded worker slots) with keys made by ``runkit keys
create``; the clients under test, the synchronous one driven from a worker thread so one
async test body checks both (the proxy that cuts a log stream is tests/tcp_proxy.py).

A plain module, not a package (as tests/http's): test modules import the fixtures they use
(``server_fixture``, ``flavour_fixture``, ``anyio_backend``, ``client_fixture``).
Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import functools
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from runkit.client import AsyncClient, Client
from serve_support import clean_env, create_key, serve_process
from serve_support import free_port as free_port  # the tests' port nothing listens on
from sql_fixtures import fresh_schema

#: The keys each server accepts: name -> role.
ROLES = {"admin": "admin", "reader": "read"}


# ------------------------------------------------------------------ the server ----------
class Server:
    """A running ``runkit serve`` and the keys made for it, by name."""

    def __init__(
        self, proc: subprocess.Popen[bytes], url: str, keys: dict[str, str], output: Path
    ) -> None:
        self.proc, self.url, self.keys, self.output = proc, url, keys, output
        self.port = int(url.rpartition(":")[2])

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def serve(database: str, tmp: Path) -> Iterator[Server]:
    env = clean_env(RUNKIT_KEY_FILE=str(tmp / "keys"))
    keys = {name: create_key(database, name, role, env=env) for name, role in ROLES.items()}
    with serve_process(database, tmp, env=env) as (proc, url, log):
        yield Server(proc, url, keys, log)


@pytest.fixture(name="pg_module_url", scope="module")
def pg_module_url_fixture() -> Iterator[str]:
    """A fresh PostgreSQL schema for one module's server (tests/sql_fixtures.py's
    ``pg_url``, but shared by the module's tests, as its server is)."""
    with fresh_schema() as url:
        yield url


@pytest.fixture(name="server", scope="module", params=["sqlite", "postgresql"])
def server_fixture(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp(f"serve-{request.param}")
    if request.param == "sqlite":
        database = f"sqlite:///{tmp / 'runkit.db'}"
    else:
        database = request.getfixturevalue("pg_module_url")
    yield from serve(database, tmp)


# ------------------------------------------------------------------ the clients ---------
#: (anyio backend, client): the async client on both backends, the sync one from a thread.
FLAVOURS = [
    pytest.param(("asyncio", "async"), id="async-asyncio"),
    pytest.param(("trio", "async"), id="async-trio"),
    pytest.param(("asyncio", "sync"), id="sync"),
]


@pytest.fixture(name="flavour", params=FLAVOURS)
def flavour_fixture(request: pytest.FixtureRequest) -> tuple[str, str]:
    flavour: tuple[str, str] = request.param
    return flavour


@pytest.fixture
def anyio_backend(flavour: tuple[str, str]) -> str:
    return flavour[0]


class Threaded:
    """A :class:`Client` seen through :class:`AsyncClient`'s interface: each call runs in a
    worker thread, each step of an iterator too. So one async test body checks both clients,
    and that they take the same arguments."""

    _ITERATORS = frozenset({"iter_runs", "iter_logs", "stream_logs"})

    def __init__(self, client: Client) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.client, name)
        if name in self._ITERATORS:
            return functools.partial(self._iterate, method)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await anyio.to_thread.run_sync(functools.partial(method, *args, **kwargs))

        return call

    @staticmethod
    async def _iterate(method: Callable[..., Iterator[Any]], *args: Any, **kwargs: Any) -> Any:
        iterator = method(*args, **kwargs)
        done = object()
        try:
            while (item := await anyio.to_thread.run_sync(next, iterator, done)) is not done:
                yield item
        finally:
            await anyio.to_thread.run_sync(iterator.close)


async def open_client(flavour: tuple[str, str], url: str, **options: Any) -> Any:
    """An :class:`AsyncClient`, or a :class:`Threaded` :class:`Client`, of ``url``."""
    if flavour[1] == "async":
        return AsyncClient(url, **options)
    return Threaded(Client(url, **options))


async def close_client(client: Any) -> None:
    if isinstance(client, Threaded):
        await anyio.to_thread.run_sync(client.client.close)
    else:
        await client.aclose()


@pytest.fixture(name="client")
async def client_fixture(flavour: tuple[str, str], server: Server) -> AsyncIterator[Any]:
    """An admin's client of the module's server, in the test's flavour."""
    client = await open_client(flavour, server.url, api_key=server.keys["admin"], backoff=0.05)
    try:
        yield client
    finally:
        await close_client(client)


def label() -> str:
    """A fresh ``action_id``: lists filtered by it see only the test's own runs."""
    return f"test-{uuid.uuid4().hex[:12]}"
