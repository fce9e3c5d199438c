"""A TCP proxy on 127.0.0.1 that drops a connection at chosen bytes of what the server
sends: how the tests check that a log stream (the client's, the dashboard's EventSource)
resumes after a lost connection with no gap and no duplicate.

A plain module, not a package (see tests/run_support.py).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

import anyio
import anyio.abc
from anyio.from_thread import BlockingPortal, start_blocking_portal

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
