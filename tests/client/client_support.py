"""What the client's tests share: a real ``runkit serve`` on a free loopback port (SQLite or
PostgreSQL, the test kinds on, two embedded worker slots) with keys made by ``runkit keys
create``; the clients under test, the synchronous one driven from a worker thread so one
async test body checks both; and a TCP proxy that cuts a log stream at chosen bytes.

A plain module, not a package (as tests/http's): test modules import the fixtures they use
(``server_fixture``, ``flavour_fixture``, ``anyio_backend``, ``client_fixture``).
Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import functools
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

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


# ------------------------------------------------------------------ a proxy that cuts ---
#: Where to cut a connection's server-to-client bytes: given all of them so far, the
#: offset to cut at (everything before it is delivered), or None for "not yet".
Cut = Callable[[bytes], int | None]


def cut_inside(marker: bytes, extra: int = 0) -> Cut:
    """Cut ``extra`` bytes after the first ``marker`` ends."""

    def where(sent: bytes) -> int | None:
        at = sent.find(marker)
        if at < 0 or at + len(marker) + extra > len(sent):
            return None
        return at + len(marker) + extra

    return where


def cut_after(marker: bytes, then: bytes, extra: int = 0) -> Cut:
    """Cut ``extra`` bytes into the first ``then`` that follows the first ``marker``."""

    def where(sent: bytes) -> int | None:
        at = sent.find(marker)
        if at < 0:
            return None
        end = sent.find(then, at + len(marker))
        return None if end < 0 else end + extra

    return where


class TcpProxy(AbstractContextManager["TcpProxy"]):
    """A TCP proxy on 127.0.0.1 in front of ``upstream_port``, on its own thread and event
    loop (so sync and async tests alike use it). Connections are passed through untouched,
    except that the planned cuts (:meth:`plan`) are made in turn: the first connection whose
    server-to-client bytes reach a cut's offset gets exactly the bytes before it, then both
    its sides are closed, as a dropped connection would be."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.accepted = 0
        self.cuts_made = 0
        self._plan: list[Cut] = []
        self._lock = threading.Lock()
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def plan(self, *cuts: Cut) -> None:
        with self._lock:
            self._plan.extend(cuts)

    def __enter__(self) -> TcpProxy:
        self._portal_cm = start_blocking_portal("asyncio")
        portal = self._portal = self._portal_cm.__enter__()
        listener = portal.call(functools.partial(anyio.create_tcp_listener, local_host="127.0.0.1"))
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        portal.start_task_soon(self._serve, listener)
        return self

    async def _serve(self, listener: anyio.abc.Listener[anyio.abc.SocketStream]) -> None:
        async with listener:  # closed when the portal stops
            await listener.serve(self._handle)

    def __exit__(self, *exc: object) -> None:
        assert self._portal_cm is not None and self._portal is not None
        self._portal.call(self._portal.stop, True)  # cancels the listener and every pipe
        self._portal_cm.__exit__(None, None, None)

    def _next_cut(self) -> Cut | None:
        with self._lock:
            return self._plan[0] if self._plan else None

    def _take_cut(self, cut: Cut) -> bool:
        with self._lock:
            if self._plan and self._plan[0] is cut:
                self._plan.pop(0)
                self.cuts_made += 1
                return True
            return False

    async def _handle(self, downstream: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        try:
            upstream = await anyio.connect_tcp("127.0.0.1", self.upstream_port)
        except OSError:
            await downstream.aclose()
            return
        async with downstream, upstream, anyio.create_task_group() as pipes:

            async def client_to_server() -> None:
                try:
                    async for chunk in downstream:
                        await upstream.send(chunk)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass
                pipes.cancel_scope.cancel()

            async def server_to_client() -> None:
                sent = b""
                try:
                    async for chunk in upstream:
                        cut = self._next_cut()
                        at = cut(sent + chunk) if cut is not None else None
                        if cut is not None and at is not None and self._take_cut(cut):
                            await downstream.send((sent + chunk)[len(sent) : at])
                            break  # closing both sides: the connection is dropped here
                        await downstream.send(chunk)
                        if cut is not None:
                            sent += chunk
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass
                pipes.cancel_scope.cancel()

            pipes.start_soon(client_to_server)
            pipes.start_soon(server_to_client)
