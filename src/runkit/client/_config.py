"""What a client is pointed at and how it signs in: the base URL, the credential headers,
the user agent and the timeouts. Shared by :class:`~runkit.client.Client` and
:class:`~runkit.client.AsyncClient`; nothing here does I/O."""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping
from typing import Any

import attrs
import httpx

URL_ENV = "RUNKIT_URL"
KEY_ENV = "RUNKIT_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
#: The API's own prefix: a base URL that already ends with it (the ``API:`` line of the
#: ``runkit serve`` banner) is taken as the server's, so either spelling works.
API_PREFIX = "/api/v1"
#: Log streams send a ``: ping`` every 15 s while idle, so a read that waits this long
#: means a dead connection (then the stream reconnects and resumes), not a quiet run.
STREAM_READ_TIMEOUT = 45.0
#: The header of cookie-signed requests that the server's CSRF check asks of a client
#: that is not a browser (a custom header needs a CORS preflight, which runkit never grants).
CSRF_HEADER = ("X-Runkit-CSRF", "1")


def _version() -> str:
    try:
        return importlib.metadata.version("runkit")
    except importlib.metadata.PackageNotFoundError:  # a source tree not installed
        return "0+unknown"


USER_AGENT = f"runkit-client/{_version()}"


def base_url(url: str) -> str:
    """``url`` as the root the API's paths hang from: no trailing slash, no ``/api/v1``."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parsed.path.rstrip("/")
    path = path.removesuffix(API_PREFIX)
    return str(parsed.copy_with(path=path or "/", query=None, fragment=None)).rstrip("/")


def credential_headers(
    api_key: str | None, bearer: str | None, session: str | None
) -> dict[str, str]:
    """The one carrier of the caller's credential. The server lets the first carrier present
    decide (bearer, then key, then cookie), so two at once would silently ignore one."""
    carriers = (("api_key", api_key), ("bearer", bearer), ("session", session))
    given = [name for name, value in carriers if value]
    if len(given) > 1:
        raise ValueError(f"give one credential, not {' and '.join(given)}")
    if api_key:
        return {"X-API-Key": api_key}
    if bearer:
        return {"Authorization": f"Bearer {bearer}"}
    if session:
        return {"Cookie": f"vai_token={session}", CSRF_HEADER[0]: CSRF_HEADER[1]}
    return {}


def timeouts(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    return timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)


def stream_timeouts(timeout: httpx.Timeout) -> httpx.Timeout:
    """The client's timeouts, with a read timeout long enough to span the server's pings."""
    read = timeout.read
    if read is not None:
        read = max(read, STREAM_READ_TIMEOUT)
    return httpx.Timeout(connect=timeout.connect, read=read, write=timeout.write, pool=timeout.pool)


@attrs.frozen
class Settings:
    """Everything both clients are built from (their constructors' arguments, checked)."""

    url: str
    headers: dict[str, str]
    timeout: httpx.Timeout
    retries: int
    backoff: float

    @classmethod
    def of(
        cls,
        url: str,
        *,
        api_key: str | None,
        bearer: str | None,
        session: str | None,
        timeout: float | httpx.Timeout | None,
        retries: int,
        backoff: float,
        headers: Mapping[str, str] | None,
    ) -> Settings:
        if retries < 0:
            raise ValueError(f"retries must be >= 0, not {retries}")
        if backoff < 0:
            raise ValueError(f"backoff must be >= 0, not {backoff}")
        merged = {"User-Agent": USER_AGENT}
        merged.update(headers or {})
        merged.update(credential_headers(api_key, bearer, session))
        return cls(base_url(url), merged, timeouts(timeout), retries, backoff)


def from_env(environ: Mapping[str, str] | None = None, **options: Any) -> dict[str, Any]:
    """The constructor arguments ``Client.from_env`` passes: ``$RUNKIT_URL`` (else
    http://127.0.0.1:8000) and ``$RUNKIT_API_KEY``, unless ``options`` name them."""
    env = os.environ if environ is None else environ
    options.setdefault("url", env.get(URL_ENV) or DEFAULT_URL)
    if not any(options.get(k) for k in ("api_key", "bearer", "session")):
        options["api_key"] = env.get(KEY_ENV) or None
    return options
