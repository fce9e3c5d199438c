"""HTTP answers back into runkit's exceptions: the same tree the in-process API raises, so
``except runkit.RunNotFound`` works whichever side of the wire the runs are on.

================  =====================================================================
answer            raised
================  =====================================================================
401               :class:`AuthenticationError` (new here: the in-process API has no sign-in)
403               :class:`runkit.NotAllowed`
404 (a run)       :class:`runkit.RunNotFound`
409               :class:`runkit.IllegalTransition` (``status``, ``allowed`` as sent)
422               :class:`runkit.ValidationError`, or :class:`runkit.IdempotencyConflict`
                  when a detail's type is ``idempotency_conflict``; ``details`` keep the
                  server's ``loc`` (where in the request: ``("body", "idempotencyKey")``)
503               :class:`runkit.StorageUnavailable`
anything else     :class:`ClientError` with ``status``; no answer at all: ``status`` None
================  =====================================================================
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import attrs
import httpx

from runkit import (
    Action,
    ErrorDetail,
    IdempotencyConflict,
    IllegalTransition,
    NotAllowed,
    RunkitError,
    RunNotFound,
    Status,
    StorageUnavailable,
    ValidationError,
)


class ClientError(RunkitError):
    """The server could not be reached (``status`` None) or answered something runkit has
    no exception of its own for (429 after every retry, 413, 500, a proxy's 502...)."""

    def __init__(self, message: str, *, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class AuthenticationError(RunkitError):
    """401: no credential, or one the server refuses (unknown, revoked, an expired session)."""

    status = 401

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.detail = detail


@attrs.frozen
class Context:
    """What an answer's error needs from its request: the run it concerned, the state
    machine action it asked for, and the idempotency key it sent."""

    what: str  # for messages: "GET /api/v1/action-runs"
    run_id: UUID | None = None
    action: Action | None = None
    idempotency_key: str | None = None

    def keyed(self, key: str | None) -> Context:
        """This context for one item of a batch, which carries its own key."""
        return attrs.evolve(self, idempotency_key=key)


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:  # not JSON: a proxy's page, an empty body
        return None


def _detail_text(body: Any, response: httpx.Response) -> str:
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return str(body["detail"])
    text = response.text.strip()
    return text[:200] if text else response.reason_phrase


def error_for(response: httpx.Response, context: Context) -> RunkitError:
    """The exception an error answer (status >= 400) stands for."""
    status = response.status_code
    body = _body(response)
    detail = _detail_text(body, response)
    if status == 401:
        return AuthenticationError(f"not signed in: {detail}", detail=detail)
    if status == 403:
        return NotAllowed(detail)
    if status == 404 and context.run_id is not None:
        return RunNotFound(context.run_id)
    if status == 409 and context.run_id is not None and context.action is not None:
        conflict = _conflict(body, context.run_id, context.action)
        if conflict is not None:
            return conflict
    if status == 422:
        invalid = validation_error(body, context)
        if invalid is not None:
            return invalid
    if status == 503:
        return StorageUnavailable(detail)
    return ClientError(
        f"{context.what} answered {status} {response.reason_phrase}: {detail}",
        status=status,
        detail=body if body is not None else detail,
    )


def _conflict(body: Any, run_id: UUID, action: Action) -> IllegalTransition | None:
    if not isinstance(body, dict):
        return None
    try:
        status = Status(body["status"])
        allowed = [Action(a) for a in body.get("allowed", [])]
    except (KeyError, TypeError, ValueError):
        return None
    exc = IllegalTransition(run_id, status, action, allowed)
    if isinstance(body.get("detail"), str):
        exc.args = (body["detail"],)  # the server's sentence, word for word
    return exc


_RUN_IN_MESSAGE = re.compile(r"\brun ([0-9a-fA-F-]{36})\b")


def validation_error(body: Any, context: Context) -> ValidationError | None:
    """A 422's body (``{"detail": [{loc, msg, type}]}``, as a create answers it or a batch
    answers an item) as the exception it stands for; None when it is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("detail"), list):
        return None
    details = []
    for item in body["detail"]:
        if not isinstance(item, dict):
            return None
        loc = item.get("loc")
        details.append(
            ErrorDetail(
                tuple(loc) if isinstance(loc, list) else (),
                str(item.get("msg", "")),
                str(item.get("type", "value_error")),
            )
        )
    conflict = next((d for d in details if d.type == "idempotency_conflict"), None)
    if conflict is None:
        return ValidationError(details)
    # Built around the constructor, which would restate the details as the Python API
    # names them: these keep the server's locations, like every other 422.
    exc = IdempotencyConflict.__new__(IdempotencyConflict)
    ValidationError.__init__(exc, details)
    exc.key = context.idempotency_key or ""
    found = _RUN_IN_MESSAGE.search(conflict.msg)
    exc.existing_run_id = UUID(found[1]) if found else None  # type: ignore[assignment]
    return exc


def transport_error(exc: httpx.TransportError, url: str) -> ClientError:
    """A one-line error for an answer that never came."""
    reason = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip() or type(exc).__name__
    if isinstance(exc, httpx.ConnectError):
        message = f"cannot connect to {url}: {reason[:1].lower()}{reason[1:]}"
    elif isinstance(exc, httpx.TimeoutException):
        message = f"no answer from {url} in time ({type(exc).__name__})"
    else:
        message = f"the connection to {url} failed: {reason}"
    return ClientError(message, status=None, detail=reason)
