"""``python -m benchmarks.outbound [--requests N] [--reps R]``: what the outbound guard costs
per request, against a plain httpx client, both to the same local server (127.0.0.1).

Three pairs, each measured R times in alternation (plain, guarded, plain, ...), medians
kept:

* ``keep-alive``: one client for all requests (the guard checks each URL; the connection,
  checked once, is reused);
* ``new client``: one client per request, as a run does (the guard also resolves, checks
  and pins each connection); the plain client gets the same cached TLS context, so only the
  guard differs;
* ``kind path``: ``Outbound.request`` (guard, bounded read, timing, no run context) against
  a plain client per request with ``response.read()``.

Prints milliseconds per request, the guard's overhead and the ratio; the target is an
overhead under 0.5 ms per request. Standalone: not part of ``python -m benchmarks``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx

from runkit.kinds.web.exchange import Outbound
from runkit.kinds.web.guard import _ssl_context, outbound_client, read_body, send
from runkit.kinds.web.policy import OutboundPolicy

TARGET_MS = 0.5
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


class _Responder(asyncio.Protocol):
    """The fastest server the comparison can have: answers each request head with 200."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)  # type: ignore[attr-defined]


@contextmanager
def local_server() -> Iterator[str]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(_Responder, "127.0.0.1", 0))
    port = server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/hello"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


Step = Callable[[], Awaitable[None]]


async def _timed(step: Step, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await step()
    return (time.perf_counter() - started) / n * 1000


async def _pair(name: str, plain: Step, guarded: Step, n: int, reps: int) -> dict[str, float]:
    for step in (plain, guarded):  # warm up: imports, first connection, TLS context
        await _timed(step, max(20, n // 20))
    plain_ms, guarded_ms = [], []
    for _ in range(reps):
        plain_ms.append(await _timed(plain, n))
        guarded_ms.append(await _timed(guarded, n))
    p, g = statistics.median(plain_ms), statistics.median(guarded_ms)
    overhead = g - p
    verdict = "ok" if overhead < TARGET_MS else "OVER TARGET"
    print(
        f"{name:<11} plain {p:7.3f} ms  guarded {g:7.3f} ms  "
        f"overhead {overhead:+7.3f} ms  ratio {g / p:5.2f}  ({verdict})"
    )
    return {"plain_ms": p, "guarded_ms": g, "overhead_ms": overhead, "ratio": g / p}


async def measure(url: str, n: int, reps: int) -> dict[str, dict[str, float]]:
    policy = OutboundPolicy(allow=("127.0.0.1",))
    results: dict[str, dict[str, float]] = {}

    async with (
        httpx.AsyncClient(trust_env=False) as plain_client,
        outbound_client(policy, timeout=10) as guarded_client,
    ):

        async def plain_keepalive() -> None:
            (await plain_client.get(url)).raise_for_status()

        async def guarded_keepalive() -> None:
            response = await send(guarded_client, guarded_client.build_request("GET", url), policy)
            try:
                await read_body(response, 1024 * 1024)
            finally:
                await response.aclose()

        results["keep-alive"] = await _pair(
            "keep-alive", plain_keepalive, guarded_keepalive, n, reps
        )

    async def plain_new() -> None:
        async with httpx.AsyncClient(trust_env=False, verify=_ssl_context()) as client:
            (await client.get(url)).raise_for_status()

    async def guarded_new() -> None:
        async with outbound_client(policy, timeout=10) as client:
            response = await send(client, client.build_request("GET", url), policy)
            try:
                await read_body(response, 1024 * 1024)
            finally:
                await response.aclose()

    results["new client"] = await _pair("new client", plain_new, guarded_new, n // 4, reps)

    outbound = Outbound(policy=policy)

    async def plain_read() -> None:
        async with httpx.AsyncClient(trust_env=False, verify=_ssl_context()) as client:
            response = await client.get(url)
            await response.aread()

    async def kind_path() -> None:
        await outbound.request("GET", url, timeout=10)

    results["kind path"] = await _pair("kind path", plain_read, kind_path, n // 4, reps)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.outbound", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per measurement")
    parser.add_argument("--reps", type=int, default=5, help="alternating repetitions")
    args = parser.parse_args(argv)
    print(
        f"outbound guard vs plain httpx {httpx.__version__}, {args.requests} requests x "
        f"{args.reps} reps, median; target overhead < {TARGET_MS} ms/request"
    )
    with local_server() as url:
        results = asyncio.run(measure(url, args.requests, args.reps))
    worst = max(r["overhead_ms"] for r in results.values())
    print(f"worst overhead {worst:.3f} ms per request (target < {TARGET_MS} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
