"""``http_request``: one HTTP request through the outbound guard; the response as the result.

A status outside ``expectStatus`` (default: any 2xx) fails the run with ``UnexpectedStatus``;
429 and 5xx are retried (after ``Retry-After`` when the server sends one), others are not.
Secret header values (by name: Authorization, Cookie, ``*token*``, ``*key*``, ``*secret*``,
...) never appear in the logs, the result or the error, even when the server echoes them.
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ...authoring import Kind, RetryPolicy, RunContext
from .common import (
    HTTP_MODULES,
    MAX_TIMEOUT_SECONDS,
    check_max_bytes,
    check_timeout,
    check_url,
    field_error,
    require_extra,
)

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: Headers the guard sets itself: Host from the URL (a caller's Host would reach one
#: address while naming another), the body's framing, and the encodings it can bound.
SET_BY_RUNKIT = frozenset({"host", "content-length", "transfer-encoding", "accept-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SCALAR = (str, int, float, bool)


def _check_headers(_: Any, attribute: attrs.Attribute[Any], value: Mapping[str, str]) -> None:
    for name, text in value.items():
        if not _TOKEN.fullmatch(name):
            raise ValueError(f"{name!r} is not a valid header name")
        if name.lower() in SET_BY_RUNKIT:
            raise ValueError(f"{name} is set by runkit and cannot be given")
        if any(c in text for c in "\r\n\0"):
            raise ValueError(f"the value of {name} has a line break or NUL")


def _check_query(_: Any, attribute: attrs.Attribute[Any], value: Mapping[str, Any]) -> None:
    for name, item in value.items():
        items = item if isinstance(item, list) else [item]
        if not all(isinstance(i, _SCALAR) for i in items):
            raise ValueError(f"{name}: a value is a string, number, boolean or a list of them")


def _check_statuses(_: Any, attribute: attrs.Attribute[Any], value: tuple[int, ...] | None) -> None:
    if value is None:
        return
    if not value:
        raise ValueError("give at least one status, or null for any 2xx")
    bad = [s for s in value if not 100 <= s <= 599]
    if bad:
        raise ValueError(f"statuses are 100 to 599, not {bad[0]}")


@attrs.frozen
class HttpRequestConfig:
    """``{method, url, headers, query, json | body, timeoutSeconds, expectStatus,
    maxResponseBytes, followRedirects}``; only ``url`` is required.

    ``json`` sends a JSON body (and ``Content-Type: application/json``), ``body`` a text
    body (set its ``Content-Type`` in ``headers``); not both. ``expectStatus``: the statuses
    that succeed (null: any 2xx). ``timeoutSeconds`` bounds the whole exchange (connecting,
    redirects, reading the body); ``maxResponseBytes`` the body read (the rest is not
    downloaded, and the result says ``truncated``)."""

    url: str = attrs.field(validator=check_url)
    method: str = attrs.field(default="GET", validator=attrs.validators.in_(METHODS))
    headers: dict[str, str] = attrs.field(factory=dict, validator=_check_headers)
    query: dict[str, Any] = attrs.field(factory=dict, validator=_check_query)
    json: Any = None
    body: str | None = None
    timeout_seconds: float = attrs.field(default=30.0, validator=check_timeout)
    expect_status: tuple[int, ...] | None = attrs.field(default=None, validator=_check_statuses)
    max_response_bytes: int = attrs.field(default=1024 * 1024, validator=check_max_bytes)
    follow_redirects: bool = True

    def __attrs_post_init__(self) -> None:
        if self.json is not None and self.body is not None:
            raise field_error(type(self), "body", "give json or body, not both")
        require_extra("http_request", HTTP_MODULES)


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _scrub(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with the request's secret values removed wherever a server echoed them."""
    from .display import redact_text

    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, dict):
        return {k: _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, secrets) for v in value]
    return value


async def execute(ctx: RunContext) -> dict[str, Any]:
    from .display import redact_headers, redact_url, secret_values
    from .exchange import Outbound, check_status

    config: HttpRequestConfig = ctx.definition
    secrets = tuple(secret_values(config.headers))
    extra: dict[str, Any] = {}
    if config.json is not None:
        extra["json"] = config.json
    exchange = await Outbound(ctx, secrets=secrets).request(
        config.method,
        config.url,
        headers=config.headers,
        params=config.query or None,
        content=config.body,
        timeout=config.timeout_seconds,
        max_bytes=config.max_response_bytes,
        follow_redirects=config.follow_redirects,
        **extra,
    )
    check_status(exchange, config.expect_status)
    content_type = exchange.content_type
    text = _decode(exchange.body, exchange.charset)
    body: Any = text
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if is_json and not exchange.truncated and text.strip():
        try:
            body = jsonlib.loads(text)
        except ValueError:
            body = text  # said JSON, is not: give what came
    return {
        "status": exchange.status,
        "headers": redact_headers(exchange.headers),
        "url": redact_url(exchange.final_url),
        "body": _scrub(body, secrets),
        "truncated": exchange.truncated,
        "elapsedMs": exchange.elapsed_ms,
    }


def describe(progress: Mapping[str, Any]) -> str | None:
    phase, url = progress.get("phase"), progress.get("url")
    if phase == "reading":
        return f"reading {url} ({progress.get('bytes', 0)} bytes)"
    if phase == "requesting":
        return f"requesting {url}"
    return None


KIND = Kind(
    name="http_request",
    executor=execute,
    config=HttpRequestConfig,
    display_name="HTTP request",
    description="Sends one HTTP request through the outbound guard and returns the response.",
    pausable=False,
    cancellable=True,
    retry=RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=60.0),
    # A net under the definition's own timeoutSeconds, which bounds the request itself.
    timeout_seconds=MAX_TIMEOUT_SECONDS + 60,
    describe_progress=describe,
    example={
        "method": "POST",
        "url": "https://api.example.com/v1/orders",
        "headers": {"Authorization": "Bearer <token>", "Idempotency-Key": "order-1042"},
        "json": {"sku": "A-1042", "quantity": 2},
        "timeoutSeconds": 15,
        "expectStatus": [200, 201],
    },
)
