"""The failures of the web kinds. A run's ``error.type`` is the class name of what its executor
raised, so each failure a user may branch on has a class of that name.

A failure that is retried in one case and not in another (a 503 and a 404 are both an
``UnexpectedStatus``) has two classes with the same name: one a :class:`Retryable` (the
engine retries it, honouring ``retry_after``), the other a :class:`Fatal` (never retried).
Use the functions at the bottom to raise them.
"""

from __future__ import annotations

from ...authoring import Fatal, Retryable


class BlockedDestination(Fatal):
    """The outbound guard refused the destination (scheme, port, address class, policy)."""


class InvalidRequest(Fatal):
    """A request httpx refuses to build or send (a malformed URL or header)."""


class TooManyRedirects(Fatal):
    """More redirect hops than the guard follows."""


class UnsupportedContent(Fatal):
    """A response the kind cannot read (fetch_page: not HTML or text; an unknown encoding)."""


class BadResponse(Fatal):
    """A response that does not have the shape the kind needs (a search provider's JSON)."""


class UnexpectedStatus(Fatal):
    """A status the definition did not expect, that no retry can change."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status
        #: Merged into the run's ``error`` (``error.status``).
        self.details = {"status": status}


class RequestTimeout(Fatal):
    """The request did not complete in ``timeoutSeconds`` and is not safe to repeat."""


class ConnectionFailed(Fatal):
    """The connection failed after the request may have been sent; not safe to repeat."""


class _RetryableStatus(Retryable):
    def __init__(self, message: str, *, status: int, retry_after: float | None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.details = {"status": status}


class _RetryableTimeout(Retryable):
    pass


class _RetryableConnection(Retryable):
    pass


# Same names as their Fatal twins, so that error.type reads the same whichever was raised.
for _twin, _name in (
    (_RetryableStatus, "UnexpectedStatus"),
    (_RetryableTimeout, "RequestTimeout"),
    (_RetryableConnection, "ConnectionFailed"),
):
    _twin.__name__ = _twin.__qualname__ = _name


def unexpected_status(
    message: str, *, status: int, retry: bool, retry_after: float | None = None
) -> Exception:
    if retry:
        return _RetryableStatus(message, status=status, retry_after=retry_after)
    return UnexpectedStatus(message, status=status)


def request_timeout(message: str, *, retry: bool) -> Exception:
    return _RetryableTimeout(message) if retry else RequestTimeout(message)


def connection_failed(message: str, *, retry: bool) -> Exception:
    return _RetryableConnection(message) if retry else ConnectionFailed(message)
