"""The outbound guard: the one way the web kinds (and search providers) reach the network.

* Each URL, the first and every redirect hop, is checked before it is sent
  (:func:`~.policy.check_destination`: scheme, port, literal addresses, names).
* Each connection is opened by :class:`GuardedBackend`, which resolves the host once, refuses
  it unless every address is allowed, and connects to an address it checked: there is no
  second resolution for a rebinding DNS server to answer differently. httpcore still sends
  the URL's host as TLS SNI and ``Host``, so certificates are verified against the name.
* Redirects are followed here, not by httpx: at most five, never from https to http, and
  headers that carry secrets are dropped when the origin changes.
* Proxy environment variables are never read (``trust_env=False``); a proxy is used only
  when the policy names one. The proxy then resolves and connects, so the guard checks the
  destination's addresses itself before sending (a second lookup: the proxy is trusted).
* Bodies are read with :func:`read_body`, which stops at the byte limit while reading.
"""

from __future__ import annotations

import functools
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import anyio
import httpcore
import httpx

from .addresses import IPAddress
from .display import is_secret_name
from .errors import BadResponse, BlockedDestination, TooManyRedirects, UnsupportedContent
from .policy import (
    MAX_REDIRECTS,
    OutboundPolicy,
    Refused,
    check_destination,
    check_host,
    checked_addresses,
)

#: The most a connection attempt may take, whatever the kind's own timeout.
CONNECT_TIMEOUT = 5.0
#: Sent unless a definition sets its own ``User-Agent``.
USER_AGENT = "runkit"
#: Only these are offered, so that a body is never in an encoding read_body cannot bound.
ACCEPT_ENCODING = "gzip, deflate"

OnRedirect = Callable[[int, httpx.URL], Awaitable[None]]


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_checked(policy: OutboundPolicy, host: str, port: int) -> list[IPAddress]:
    """The addresses to connect to for ``host``: every one the resolver answers, each
    allowed; :class:`BlockedDestination` otherwise."""
    try:
        target = check_host(policy, host, port)
    except Refused as exc:
        raise BlockedDestination(str(exc)) from None
    if target.literal is not None:
        return [target.literal]
    try:
        answers = await (policy.resolver or system_resolve)(host, port)
    except OSError as exc:  # socket.gaierror included
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    try:
        return checked_addresses(policy, target, answers)
    except Refused as exc:
        raise BlockedDestination(str(exc)) from None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses it has checked."""

    def __init__(self, policy: OutboundPolicy, inner: httpcore.AsyncNetworkBackend) -> None:
        self._policy = policy
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await resolve_checked(self._policy, host, port)
        options = list(socket_options or ())
        failure: Exception | None = None
        for ip in addresses:  # in the resolver's order, as a plain client would try them
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout, OSError) as exc:
                failure = exc
        assert failure is not None  # resolve_checked never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedDestination("unix sockets are refused by the outbound guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pin_backend(transport: httpx.AsyncHTTPTransport, policy: OutboundPolicy) -> None:
    """Give ``transport``'s connection pool a :class:`GuardedBackend`.

    httpx 0.28 has no public way to pass httpcore a network backend; the pool keeps it in
    ``_network_backend`` (httpcore 1.0). This is the only place that reaches for it, and it
    fails loudly (never silently unguarded) if a new version moved it."""
    pool = getattr(transport, "_pool", None)
    inner = getattr(pool, "_network_backend", None)
    if not isinstance(pool, httpcore.AsyncConnectionPool) or not isinstance(
        inner, httpcore.AsyncNetworkBackend
    ):
        raise RuntimeError(
            f"httpx {httpx.__version__} / httpcore {httpcore.__version__}: the connection "
            "pool's network backend moved; the outbound guard cannot pin addresses"
        )
    if not isinstance(inner, GuardedBackend):
        pool._network_backend = GuardedBackend(policy, inner)


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle takes milliseconds; one context serves every client.
    return httpx.create_ssl_context(trust_env=False)


def outbound_client(policy: OutboundPolicy, *, timeout: float) -> httpx.AsyncClient:
    """An httpx client for one run: guarded connections, no environment proxies, no
    automatic redirects (use :func:`send`), no retries of its own."""
    transport = httpx.AsyncHTTPTransport(
        verify=_ssl_context(), trust_env=False, proxy=policy.proxy, retries=0
    )
    if policy.proxy is None:
        pin_backend(transport, policy)
    return httpx.AsyncClient(
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        timeout=httpx.Timeout(timeout, connect=min(CONNECT_TIMEOUT, timeout)),
        headers={"User-Agent": USER_AGENT},
    )


async def check_url(policy: OutboundPolicy, url: httpx.URL) -> None:
    """The checks a URL gets before it is sent; with a proxy also its addresses."""
    try:
        target = check_destination(policy, url.scheme, url.raw_host.decode("ascii"), url.port)
    except Refused as exc:
        raise BlockedDestination(str(exc)) from None
    if policy.proxy is not None:
        try:
            await resolve_checked(policy, target.host, target.port)
        except httpcore.ConnectError as exc:  # outside httpx here: name it as httpx would
            raise httpx.ConnectError(str(exc)) from exc


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    policy: OutboundPolicy,
    *,
    follow_redirects: bool = True,
    on_redirect: OnRedirect | None = None,
) -> httpx.Response:
    """Send ``request`` and follow its redirects, checking each hop; the last response,
    streaming (the caller reads it with :func:`read_body` and closes it)."""
    hops = 0
    while True:
        await check_url(policy, request.url)
        request.headers["Accept-Encoding"] = ACCEPT_ENCODING
        response = await client.send(request, stream=True)
        following = response.next_request if follow_redirects else None
        if following is None:
            return response
        await response.aclose()
        hops += 1
        if hops > MAX_REDIRECTS:
            raise TooManyRedirects(f"more than {MAX_REDIRECTS} redirects")
        if request.url.scheme == "https" and following.url.scheme == "http":
            raise BlockedDestination(f"redirect from https to http refused: {following.url}")
        if _origin(following.url) != _origin(request.url):
            for name in [n for n in following.headers if is_secret_name(n)]:
                del following.headers[name]
        if on_redirect is not None:
            await on_redirect(response.status_code, following.url)
        request = following


def _origin(url: httpx.URL) -> tuple[str, bytes, int | None]:
    return url.scheme, url.raw_host, url.port


# --- reading a body within a limit -----------------------------------------------------------
class _Decoder:
    """Content-Encoding decoding that never produces more than it is asked for (a small
    gzip body can expand a thousandfold)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self._raw_deflate = False
        self._started = False
        self._obj: Any = None
        if encoding == "gzip":
            self._obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._obj = zlib.decompressobj()

    def feed(self, chunk: bytes, budget: int) -> bytes:
        if self._obj is None:
            return chunk[:budget]
        try:
            out: bytes = self._obj.decompress(chunk, budget)
        except zlib.error:
            if self.encoding != "deflate" or self._started:
                raise
            # Some servers send raw deflate, without the zlib header.
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._obj.decompress(chunk, budget)
        self._started = True
        return out


def decoder_for(content_encoding: str | None) -> _Decoder:
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("identity", "gzip", "deflate", ""):
        raise UnsupportedContent(f"unsupported Content-Encoding {content_encoding!r}")
    return _Decoder(encoding)


async def read_body(
    response: httpx.Response,
    limit: int,
    on_progress: Callable[[int], Awaitable[None]] | None = None,
    progress_every: float = 0.5,
) -> tuple[bytes, bool]:
    """Up to ``limit`` decoded bytes of ``response`` and whether there was more. Reading stops
    as soon as the limit is passed (the rest is never downloaded), and also after
    ``2 * limit + 64 KiB`` bytes on the wire, for encodings that yield little."""
    decoder = decoder_for(response.headers.get("content-encoding"))
    body = bytearray()
    wire, wire_limit = 0, 2 * limit + 65536
    last = anyio.current_time()
    try:
        async for chunk in response.aiter_raw():
            wire += len(chunk)
            body += decoder.feed(chunk, limit + 1 - len(body))
            if len(body) > limit or wire > wire_limit:
                return bytes(body[:limit]), True
            if on_progress is not None and anyio.current_time() - last >= progress_every:
                last = anyio.current_time()
                await on_progress(len(body))
    except zlib.error as exc:
        raise BadResponse(f"cannot decode the {decoder.encoding} body: {exc}") from None
    return bytes(body), False
