"""Which failed requests are sent again, and how long to wait first.

A request is sent again only when a repeat cannot do what the first did not mean to:

* **Safe** requests: every GET, ``DELETE``, ``execute``, ``pause``, ``resume``, ``cancel``,
  a create that carries an idempotency key, and a batch create whose every item carries
  one. A repeat changes nothing the first did not (the key returns the same run; the state
  machine moves a run to where the first request asked, or answers 409 because it is
  already there; a second delete finds it gone, which is what was asked). They are retried
  on a connection that failed or broke, a timeout, and 429, 502, 503 and 504.
* **Unsafe** requests: ``retry`` (a repeat after the run failed again would start another
  attempt), ``approve`` and ``reject`` (each a decision on the record), and a create without
  an idempotency key (a second run), or a batch with an item without one. They are retried
  only when the server certainly did not act: the connection could not be made, or it
  answered 429 (refused before acting).
  After a 503 or a broken connection the run may or may not have moved: the error is
  raised, and ``get`` tells.

Waits grow exponentially from ``backoff`` (x2 each retry, at most :data:`MAX_DELAY`), each
drawn between half and all of that (jitter, so clients refused together do not come back
together), and never shorter than the server's ``Retry-After``. A ``Retry-After`` beyond
:data:`MAX_RETRY_AFTER` is not waited for: the error is raised.
"""

from __future__ import annotations

import enum
import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import attrs
import httpx

MAX_DELAY = 30.0
MAX_RETRY_AFTER = 120.0
#: Answers that say "not now": every one for safe requests, only 429 for unsafe ones (a 503
#: can come from a commit whose outcome the server does not know).
SAFE_STATUSES = frozenset({429, 502, 503, 504})
UNSAFE_STATUSES = frozenset({429})


class Safety(enum.Enum):
    SAFE = "safe"
    UNSAFE = "unsafe"


def never_sent(exc: httpx.TransportError) -> bool:
    """Whether the request certainly did not reach the server: no connection was made."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def retry_after(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date); None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@attrs.frozen
class Retries:
    """``retries`` more sends at most, waiting from ``backoff`` seconds."""

    retries: int
    backoff: float
    rng: random.Random = attrs.field(factory=random.Random, eq=False)

    def delay(self, retry: int, server_asked: float | None = None) -> float:
        """The wait before the ``retry``-th repeat (1-based)."""
        exponential = min(MAX_DELAY, self.backoff * 2.0 ** (retry - 1))
        jittered = exponential * (0.5 + 0.5 * self.rng.random())
        return max(jittered, server_asked or 0.0)

    def after_answer(self, safety: Safety, response: httpx.Response, retry: int) -> float | None:
        """The wait before sending again after ``response``; None: do not."""
        statuses = SAFE_STATUSES if safety is Safety.SAFE else UNSAFE_STATUSES
        if retry > self.retries or response.status_code not in statuses:
            return None
        asked = retry_after(response.headers)
        if asked is not None and asked > MAX_RETRY_AFTER:
            return None
        return self.delay(retry, asked)

    def after_failure(self, safety: Safety, exc: httpx.TransportError, retry: int) -> float | None:
        """The wait before sending again after ``exc``; None: do not."""
        if retry > self.retries:
            return None
        if safety is Safety.UNSAFE and not never_sent(exc):
            return None
        return self.delay(retry)
