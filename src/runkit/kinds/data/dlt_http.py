"""dlt's HTTP through the outbound guard of the web kinds: the requests ``Session`` a
dlt_extract run gives its ``rest_api`` source (``client.session``, and the ``session`` of an
OAuth2 token request), so that every request dlt makes for the run goes through it.

What is checked, with the same policy as ``http_request`` (``RUNKIT_OUTBOUND_*`` or
``configure_outbound``), read once when the run starts:

* **every request before it is sent** (each page, each link a paginator follows, each
  request of a dependent resource, each redirect hop, the token request): scheme, port,
  literal address, loopback and denied names (:func:`~..web.policy.check_destination`);
* **every connection** (:class:`_Connector`): the host is resolved once, every address it
  resolves to must be allowed, and the socket connects to an address that was checked,
  never through a second lookup (DNS rebinding gets nowhere). TLS still verifies the
  certificate against the name;
* **redirects**: at most 5, never from https to http; headers with secret-looking names
  are dropped when a redirect leaves the origin (requests drops ``Authorization`` itself);
* **proxies**: proxy environment variables are ignored; with ``RUNKIT_OUTBOUND_PROXY`` the
  proxy connects, so the destination's addresses are checked before each request instead;
* **bodies**: each response is read up to :data:`MAX_RESPONSE_BYTES`, then refused.

Needs requests and urllib3 (dlt's own dependencies); imported only when a run starts.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError
from urllib3.util import connection as urllib3_connection

from ...authoring import Fatal
from ..web.display import is_secret_name, redact_url
from ..web.errors import BlockedDestination
from ..web.policy import MAX_REDIRECTS, OutboundPolicy, Refused, check_host, checked_addresses
from .dlt_checks import url_refusal
from .dlt_progress import Tracker

#: Seconds to connect, and to wait for each read of a response.
TIMEOUT = (5.0, 60.0)
#: The most one response body may hold (a page of an API is far smaller).
MAX_RESPONSE_BYTES = 64 * 1024 * 1024
#: Attempts of one request on 429, 502, 503, 504 and broken connections (dlt's own client
#: retries the same statuses); waits 1 s, then 2 s, or what Retry-After says (up to 60 s).
ATTEMPTS = 3
RETRY_STATUSES = frozenset({429, 502, 503, 504})
MAX_RETRY_AFTER = 60.0
USER_AGENT = "runkit-dlt"


#: ``resolve(host, port)``: the addresses of ``host``, as strings.
Resolve = Callable[[str, int], Sequence[str]]


def system_resolve(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


class ResponseTooLarge(Fatal):
    """A response body over :data:`MAX_RESPONSE_BYTES`."""


class _Connector:
    """Opens the sockets of one run's connections: resolve once, check every address,
    connect to a checked one. Any thread may call it (dlt's pool threads included)."""

    def __init__(self, policy: OutboundPolicy, tracker: Tracker, resolve: Resolve | None) -> None:
        self.policy = policy
        self.tracker = tracker
        self._resolve = resolve or system_resolve

    def addresses(self, host: str, port: int) -> list[Any]:
        try:
            target = check_host(self.policy, host, port)
        except Refused as exc:
            raise BlockedDestination(str(exc)) from None
        if target.literal is not None:
            return [target.literal]
        answers: Sequence[str] = self._resolve(host, port)
        try:
            return checked_addresses(self.policy, target, answers)
        except Refused as exc:
            raise BlockedDestination(str(exc)) from None

    def open(self, conn: HTTPConnection) -> socket.socket:
        self.tracker.stop.check()
        # _dns_host is the name urllib3 itself would resolve (conn.host stays for SNI, Host).
        host = str(getattr(conn, "_dns_host", conn.host)).strip("[]")
        port = conn.port or conn.default_port
        try:
            addresses = self.addresses(host, port)
        except OSError as exc:  # the name does not resolve
            raise NewConnectionError(conn, f"cannot resolve {host}: {exc}") from exc
        failure: Exception | None = None
        for ip in addresses:  # in the resolver's order, as a plain client tries them
            try:
                sock = urllib3_connection.create_connection(
                    (str(ip), port),
                    conn.timeout,
                    source_address=conn.source_address,
                    socket_options=conn.socket_options,
                )
            except TimeoutError as exc:
                failure = ConnectTimeoutError(conn, f"connecting to {host} ({ip}) timed out")
                failure.__cause__ = exc
            except OSError as exc:
                failure = NewConnectionError(conn, f"cannot connect to {host} ({ip}): {exc}")
            else:
                self.tracker.stop.track(sock)
                return sock
        assert failure is not None  # addresses() never returns an empty list
        raise failure


class _PinnedHTTP(HTTPConnection):
    connector: ClassVar[_Connector]

    def _new_conn(self) -> socket.socket:
        return self.connector.open(self)


class _PinnedHTTPS(HTTPSConnection):
    connector: ClassVar[_Connector]

    def _new_conn(self) -> socket.socket:
        return self.connector.open(self)


class _GuardedAdapter(HTTPAdapter):
    """An adapter whose pools open their connections through a :class:`_Connector`
    (without one: through the policy's proxy), and that retries and reads responses."""

    def __init__(self, tracker: Tracker, connector: _Connector | None) -> None:
        self._tracker = tracker
        self._connector = connector
        super().__init__()

    def __deepcopy__(self, memo: dict[int, Any]) -> _GuardedAdapter:
        return self  # see GuardedSession.__deepcopy__

    def send(
        self, request: requests.PreparedRequest, *args: Any, **kwargs: Any
    ) -> requests.Response:
        """Send with retries, and read the body. Both happen here, before the session runs
        the request's response hooks: dlt's raise on an error status (a 503 would never be
        retried), and an unread streamed body would hold its connection out of the pool."""
        kwargs["stream"] = True
        url = str(request.url)
        for attempt in range(1, ATTEMPTS + 1):
            self._tracker.stop.check()
            self._tracker.request()
            try:
                response = super().send(request, *args, **kwargs)
                limit = 1024 * 1024 if response.is_redirect else MAX_RESPONSE_BYTES
                _read(response, limit, url)
            except (requests.ConnectionError, requests.Timeout) as exc:
                self._tracker.stop.check()  # a socket shut by the stop reads as a broken one
                if attempt == ATTEMPTS:
                    raise
                delay, why = float(attempt), type(exc).__name__
            else:
                if response.status_code not in RETRY_STATUSES or attempt == ATTEMPTS:
                    return response
                delay = _retry_after(response.headers) or float(attempt)
                why = f"status {response.status_code}"
            self._tracker.log(
                "warning",
                f"{request.method} {redact_url(url)}: {why}; retrying in {delay:g} s "
                f"(attempt {attempt + 1} of {ATTEMPTS})",
            )
            self._tracker.stop.wait(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def close(self) -> None:
        # urllib3 2 no longer closes a pool's idle connections when the manager is cleared;
        # close them here, so that a run leaves no socket open behind it.
        pools = self.poolmanager.pools
        for key in list(pools.keys()):
            pool = pools.get(key)
            if pool is not None:
                pool.close()
        super().close()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        if self._connector is None:  # through a proxy: the proxy connects
            return
        shared = {"connector": self._connector}
        http = type("PinnedHTTPConnection", (_PinnedHTTP,), shared)
        https = type("PinnedHTTPSConnection", (_PinnedHTTPS,), shared)
        # PoolManager picks the pool class per scheme from this mapping (urllib3 1.26 and 2);
        # an instance attribute, so no other session's pools change.
        self.poolmanager.pool_classes_by_scheme = {
            "http": type("PinnedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("PinnedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }


class GuardedSession(requests.Session):
    """The session of one run. ``resolve(host, port)`` gives a host's addresses (the
    policy's own resolver, called on the event loop; None: the system's)."""

    def __init__(
        self, policy: OutboundPolicy, tracker: Tracker, resolve: Resolve | None = None
    ) -> None:
        super().__init__()
        self.trust_env = False  # no proxy, netrc or CA bundle from the environment
        self.max_redirects = MAX_REDIRECTS
        self.headers["User-Agent"] = USER_AGENT
        self.policy = policy
        self.tracker = tracker
        self._connector = _Connector(policy, tracker, resolve)
        adapter = _GuardedAdapter(tracker, None if policy.proxy else self._connector)
        self.mount("http://", adapter)
        self.mount("https://", adapter)
        if policy.proxy:
            self.proxies = {"http": policy.proxy, "https": policy.proxy}

    def __deepcopy__(self, memo: dict[int, Any]) -> GuardedSession:
        # dlt deep-copies a source's arguments; requests would copy only its own fields and
        # drop the guard. One session serves the whole run, so a copy is this session.
        return self

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = str(request.url)
        why = url_refusal(url, self.policy)
        if why is not None:
            raise BlockedDestination(why)
        if self.policy.proxy:  # the proxy resolves: check the addresses here first
            parts = urllib3.util.parse_url(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            self._connector.addresses((parts.host or "").strip("[]"), port)
        kwargs["timeout"] = kwargs.get("timeout") or TIMEOUT
        return super().send(request, **kwargs)  # retried and read whole by the adapter

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target is not None:
            following = urljoin(str(resp.url), target)
            if urlsplit(str(resp.url)).scheme == "https" and urlsplit(following).scheme == "http":
                raise BlockedDestination(f"redirect from https to http refused: {following}")
        return target

    def rebuild_auth(
        self, prepared_request: requests.PreparedRequest, response: requests.Response
    ) -> None:
        super().rebuild_auth(prepared_request, response)
        if _origin(str(prepared_request.url)) != _origin(str(response.request.url)):
            for name in [n for n in prepared_request.headers if is_secret_name(n)]:
                del prepared_request.headers[name]


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or ""), parts.port


def _read(response: requests.Response, limit: int, url: str) -> None:
    """Read the body into the response (as requests does when not streaming), at most
    ``limit`` bytes after decoding; larger bodies are refused, not truncated."""
    body = bytearray()
    try:
        for chunk in response.raw.stream(65536, decode_content=True):
            body += chunk
            if len(body) > limit:
                response.close()
                raise ResponseTooLarge(
                    f"the response from {redact_url(url)} is over {limit // (1024 * 1024)} MiB"
                )
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise requests.ConnectionError(f"reading the response failed: {exc}") from exc
    response._content = bytes(body)
    response._content_consumed = True
    response.raw.release_conn()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = (headers.get("Retry-After") or "").strip()
    return min(float(value), MAX_RETRY_AFTER) if value.isdigit() else None
