"""One request made in a run, through the guard: bounded in time and size while it happens,
logged the way a user reads it, and its failures named (see :mod:`.errors`).

:class:`Outbound` is what the kinds and the search providers use; it needs no run context
(the benchmark uses it without one), and with one it logs and reports progress.
"""

from __future__ import annotations

import email.utils
import json as jsonlib
import time
from collections.abc import Collection, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import anyio
import attrs
import httpx

from ...authoring import RunContext
from .display import redact_text, redact_url, size
from .errors import (
    BadResponse,
    InvalidRequest,
    connection_failed,
    request_timeout,
    unexpected_status,
)
from .guard import outbound_client, read_body, send
from .policy import OutboundPolicy, current_policy

#: Methods that may be sent again after a timeout or a broken connection (RFC 9110 §9.2.2).
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: A ``Retry-After`` longer than this is cut to it: a run should not sleep for days.
MAX_RETRY_AFTER = 600.0
_NO_JSON = object()


@attrs.frozen
class Exchange:
    """A completed request: the final response and up to the byte limit of its body."""

    method: str
    url: str
    final_url: str
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    truncated: bool
    elapsed_ms: int
    redirects: tuple[Mapping[str, Any], ...] = ()

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), None)

    @property
    def content_type(self) -> str:
        return (self.header("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def charset(self) -> str | None:
        for param in (self.header("content-type") or "").split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date), at most
    :data:`MAX_RETRY_AFTER`; None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def check_status(exchange: Exchange, expect: Collection[int] | None = None) -> None:
    """Raise ``UnexpectedStatus`` unless the status is in ``expect`` (None: any 2xx); 429
    and 5xx are retried (after ``Retry-After`` when given), other statuses are final."""
    status = exchange.status
    if (status in expect) if expect is not None else (200 <= status < 300):
        return
    retry = status == 429 or status >= 500
    wanted = ", ".join(str(s) for s in expect) if expect is not None else "2xx"
    raise unexpected_status(
        f"status {status} from {exchange.method} {redact_url(exchange.final_url)} "
        f"(expected {wanted})",
        status=status,
        retry=retry,
        retry_after=retry_after(exchange.header("retry-after")) if retry else None,
    )


class Outbound:
    """Requests for one run. ``secrets``: values (header values the definition marked
    secret) that must never appear in a log line or an error message."""

    def __init__(
        self,
        ctx: RunContext | None = None,
        *,
        policy: OutboundPolicy | None = None,
        secrets: Iterable[str] = (),
    ) -> None:
        self.ctx = ctx
        self.policy = policy
        self.secrets = tuple(secrets)

    async def _log(self, level: str, message: str, data: Mapping[str, Any]) -> None:
        if self.ctx is not None:
            await self.ctx.log(level, redact_text(message, self.secrets), data=data)

    async def _progress(self, progress: Mapping[str, Any]) -> None:
        if self.ctx is not None:
            await self.ctx.progress(progress)

    def _fail(self, make: Any, message: str, **kw: Any) -> Exception:
        exc: Exception = make(redact_text(message, self.secrets), **kw)
        return exc

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = _NO_JSON,
        content: str | bytes | None = None,
        timeout: float = 30.0,
        max_bytes: int = 1024 * 1024,
        follow_redirects: bool = True,
    ) -> Exchange:
        """Send a request and read its response within ``timeout`` seconds (connecting,
        every redirect hop and the body included) and ``max_bytes``."""
        policy = self.policy or current_policy()
        try:
            target = httpx.URL(url)
            if params:
                target = target.copy_merge_params(params)  # as httpx would, but logged whole
        except (httpx.InvalidURL, TypeError) as exc:
            raise self._fail(InvalidRequest, f"{method} {redact_url(url)}: {exc}") from None
        shown = redact_url(str(target))
        redirects: list[Mapping[str, Any]] = []
        await self._progress({"phase": "requesting", "method": method, "url": shown})

        async def redirected(status: int, to: httpx.URL) -> None:
            hop = {"status": status, "url": redact_url(str(to))}
            redirects.append(hop)
            await self._log("info", f"redirect {status} -> {hop['url']}", hop)

        started = time.monotonic()
        retry_unsent, retry_sent = True, method in IDEMPOTENT
        try:
            with anyio.fail_after(timeout):
                async with outbound_client(policy, timeout=timeout) as client:
                    request = client.build_request(
                        method,
                        target,
                        headers=headers,
                        content=content,
                        json=None if json is _NO_JSON else json,
                    )
                    response = await send(
                        client,
                        request,
                        policy,
                        follow_redirects=follow_redirects,
                        on_redirect=redirected,
                    )
                    try:
                        status = response.status_code

                        async def reading(n: int) -> None:
                            await self._progress(
                                {"phase": "reading", "url": shown, "status": status, "bytes": n}
                            )

                        body, truncated = await read_body(response, max_bytes, reading)
                    finally:
                        await response.aclose()
        except (TimeoutError, httpx.TimeoutException) as exc:
            unsent = isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise self._fail(
                request_timeout,
                f"{method} {shown}: no complete response within {timeout:g} s",
                retry=retry_unsent if unsent else retry_sent,
            ) from None
        except httpx.ConnectError as exc:
            raise self._fail(
                connection_failed, f"{method} {shown}: cannot connect: {exc}", retry=retry_unsent
            ) from None
        except (httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            raise self._fail(InvalidRequest, f"{method} {shown}: {exc}") from None
        except httpx.TransportError as exc:
            raise self._fail(
                connection_failed,
                f"{method} {shown}: {type(exc).__name__}: {exc}",
                retry=retry_sent,
            ) from None
        elapsed = round((time.monotonic() - started) * 1000)
        final_url = str(response.url)
        exchange = Exchange(
            method=method,
            url=str(target),
            final_url=final_url,
            status=status,
            headers=tuple(response.headers.multi_items()),
            body=body,
            truncated=truncated,
            elapsed_ms=elapsed,
            redirects=tuple(redirects),
        )
        cut = " (truncated)" if truncated else ""
        await self._log(
            "info",
            f"{method} {shown} -> {status}, {size(len(body))}{cut} in {elapsed} ms",
            {
                "method": method,
                "url": shown,
                "finalUrl": redact_url(final_url),
                "status": status,
                "bytes": len(body),
                "truncated": truncated,
                "elapsedMs": elapsed,
                "redirects": list(redirects),
            },
        )
        await self._progress({"phase": "done", "url": shown, "status": status, "bytes": len(body)})
        return exchange

    async def get_json(
        self,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 15.0,
        max_bytes: int = 2 * 1024 * 1024,
    ) -> Any:
        """GET ``url`` and parse its JSON body (any 2xx); ``BadResponse`` if it is none."""
        exchange = await self.request(
            "GET",
            url,
            params=params,
            headers={"Accept": "application/json", **(headers or {})},
            timeout=timeout,
            max_bytes=max_bytes,
        )
        check_status(exchange)
        if exchange.truncated:
            raise BadResponse(f"response from {redact_url(url)} is over {size(max_bytes)}")
        try:
            return jsonlib.loads(exchange.body)
        except ValueError as exc:
            raise BadResponse(f"response from {redact_url(url)} is not JSON: {exc}") from None
