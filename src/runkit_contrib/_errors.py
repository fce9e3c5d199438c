"""runkit errors to HTTP answers, through one table.

Validation problems answer 422 ``{"detail": [{"loc", "msg", "type"}]}``; everything else
answers ``{"detail": "<sentence>"}``, and a 409 adds the run's ``status`` and the API actions
``allowed`` from it. Nothing unexpected ever leaves with a stack trace: the
catch-all logs it (with the trace, server side) and answers a generic 500.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from runkit import (
    ErrorDetail,
    IllegalTransition,
    NotAllowed,
    RunkitError,
    RunNotFound,
    StorageUnavailable,
    ValidationError,
    camel,
)

from ._json import JSONResponse
from ._wire import Conflict, Error, HTTPValidationError, ValidationDetail, to_json

logger = logging.getLogger("runkit_contrib.http")

#: How long a client should wait before retrying after a 503.
RETRY_AFTER_SECONDS = "5"

#: The one table: runkit error class -> HTTP status (most specific first).
STATUS_BY_ERROR: tuple[tuple[type[RunkitError], int], ...] = (
    (ValidationError, 422),  # IdempotencyConflict included
    (RunNotFound, 404),
    (IllegalTransition, 409),
    (NotAllowed, 403),
    (StorageUnavailable, 503),
)


class HttpError(Exception):
    """An HTTP-layer refusal (401, 403, 413, 415...) raised from inside a handler."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def problem(status: int, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(to_json(Error(detail=detail)), status_code=status, headers=headers)


#: The most problems a 422 lists; one more entry says how many were left out, so an input
#: with thousands of faults answers a small body.
MAX_DETAILS = 50


def validation_problem(details: Sequence[ErrorDetail], source: str = "query") -> JSONResponse:
    located = [locate(d, source) for d in details[:MAX_DETAILS]]
    if len(details) > MAX_DETAILS:
        rest = len(details) - MAX_DETAILS
        where = located[0].loc[:1] if located[0].loc else ()
        located.append(ErrorDetail(where, f"and {rest} more problems", "too_many_errors"))
    body = HTTPValidationError(
        detail=[ValidationDetail(loc=list(d.loc), msg=d.msg, type=d.type) for d in located]
    )
    return JSONResponse(to_json(body), status_code=422)


#: Where a request carries values; a ``loc`` that starts with one is already HTTP's.
LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def locate(detail: ErrorDetail, source: str) -> ErrorDetail:
    """The core names the argument at fault (``("idempotency_key",)``); a client needs
    where it sent it: ``("body", "idempotencyKey")`` on a JSON body, ``("query", "limit")``
    in a query string, ``("path", "run_id")`` for the run in the URL."""
    loc = detail.loc
    if not loc or loc[0] in LOCATIONS:
        return detail
    head, rest = str(loc[0]), loc[1:]
    if head == "run_id":
        where: tuple[str | int, ...] = ("path", head)
    elif source == "body":
        where = ("body", camel(head))
    else:
        where = (source, head)
    return ErrorDetail((*where, *rest), detail.msg, detail.type)


def invalid(loc: Sequence[str | int], msg: str, type: str) -> ValidationError:
    """A 422 for a problem the HTTP layer finds itself (bad JSON, bad integer, ...)."""
    return ValidationError.at(loc, msg, type)


def to_response(exc: BaseException, source: str = "query") -> Response:
    """The answer for any exception a handler raised; logs what it does not expect.
    ``source`` is where the endpoint takes its values (``body`` or ``query``): a
    validation error's ``loc`` is translated to it (:func:`locate`)."""
    if isinstance(exc, HttpError):
        return problem(exc.status, exc.detail, exc.headers)
    if isinstance(exc, ValidationError):
        return validation_problem(exc.details, source)
    if isinstance(exc, RunkitError):
        for cls, status in STATUS_BY_ERROR:
            if isinstance(exc, cls):
                return _answer(exc, status)
    logger.exception("unhandled error in runkit HTTP API", exc_info=exc)
    return problem(500, "internal server error")


def _answer(exc: RunkitError, status: int) -> JSONResponse:
    if isinstance(exc, IllegalTransition):
        # What a client needs to recover from a 409 without parsing the sentence.
        allowed = [a.value for a in exc.allowed]
        body = Conflict(detail=str(exc), status=exc.status, allowed=allowed)
        return JSONResponse(to_json(body), status_code=status)
    if status == 503:
        # Storage messages may carry connection details: keep them server side.
        logger.warning("storage unavailable: %s", exc)
        return problem(status, "storage unavailable", {"Retry-After": RETRY_AFTER_SECONDS})
    return problem(status, str(exc))


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 (unknown path) and 405 (wrong method) as JSON, headers kept."""
    assert isinstance(exc, HTTPException)
    headers: dict[str, Any] = dict(exc.headers or {})
    return problem(exc.status_code, str(exc.detail), headers)


async def catch_all_handler(request: Request, exc: Exception) -> Response:
    return to_response(exc)
