"""runkit's exceptions: one root, a few leaves, translated to HTTP at the boundary.

::

    RunkitError
    ├── RunNotFound              the run does not exist (HTTP 404)
    ├── IllegalTransition        the state machine has no such move (HTTP 409)
    ├── ValidationError          bad input, with the path to the field (HTTP 422)
    │   └── IdempotencyConflict  same key, different request (HTTP 422 on idempotencyKey)
    ├── NotAllowed               the principal may not do this (HTTP 403)
    ├── ConfigurationError       bad plugins, kinds or storage URLs, raised at start-up
    ├── LeaseLost                a worker's fenced write changed nothing
    └── StorageUnavailable       the database cannot be reached (HTTP 503)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from .states import CLIENT_ACTIONS, Action, Status


class RunkitError(Exception):
    """Root of every error runkit raises on purpose."""


class RunNotFound(RunkitError):
    def __init__(self, run_id: UUID | str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} not found")


class IllegalTransition(RunkitError):
    """``allowed`` keeps only what a client may ask for now (the engine's own steps, such as
    claim or park, are never offered); the message says what to do instead."""

    def __init__(
        self, run_id: UUID, status: Status, action: Action, allowed: Sequence[Action]
    ) -> None:
        self.run_id = run_id
        self.status = status
        self.action = action
        self.allowed = tuple(a for a in allowed if a in CLIENT_ACTIONS)
        super().__init__(
            f"cannot {action.value} run {run_id}: it is {status.value}; "
            f"{_advice(status, action, self.allowed)}"
        )


def _advice(status: Status, action: Action, allowed: Sequence[Action]) -> str:
    if not allowed:
        return "its worker is stopping it"  # pausing or cancelling, with nothing to ask
    if action is Action.DELETE and Action.CANCEL in allowed:
        return "cancel it first"
    if action is Action.EXECUTE and Action.RETRY in allowed:
        return "retry it to run it again"
    if action is Action.EXECUTE and Action.RESUME in allowed:
        return "resume it instead"
    return "you can " + ", ".join(a.value for a in allowed)


class ErrorDetail:
    """One problem with the input: where (``loc``), what (``msg``), and a machine ``type``.

    ``loc`` starts with the name of the argument at fault, as the Python API spells it
    (``("definition", "url")``, ``("limit",)``, ``("idempotency_key",)``); inside a
    ``definition`` it follows the definition's own (camelCase) keys. The HTTP layer
    translates the first element to where the value came from (``["body", "idempotencyKey"]``,
    ``["query", "limit"]``); the core speaks no HTTP.
    """

    __slots__ = ("loc", "msg", "type")

    def __init__(self, loc: Sequence[str | int], msg: str, type: str = "value_error") -> None:
        self.loc = tuple(loc)
        self.msg = msg
        self.type = type

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}

    def __repr__(self) -> str:
        return f"ErrorDetail({self.loc!r}, {self.msg!r}, {self.type!r})"


#: How many problems a ValidationError's message names; the rest are counted.
MESSAGE_DETAILS = 50


class ValidationError(RunkitError):
    def __init__(self, details: Sequence[ErrorDetail]) -> None:
        self.details = tuple(details)
        shown = self.details[:MESSAGE_DETAILS]
        message = "; ".join(f"{'.'.join(map(str, d.loc))}: {d.msg}" for d in shown)
        if len(self.details) > len(shown):
            message += f"; and {len(self.details) - len(shown)} more"
        super().__init__(message)

    @classmethod
    def at(cls, loc: Sequence[str | int], msg: str, type: str = "value_error") -> ValidationError:
        return cls([ErrorDetail(loc, msg, type)])


class IdempotencyConflict(ValidationError):
    def __init__(self, key: str, existing_run_id: UUID) -> None:
        self.key = key
        self.existing_run_id = existing_run_id
        super().__init__(
            [
                ErrorDetail(
                    ("idempotency_key",),
                    f"idempotency key {key!r} was already used by run {existing_run_id} "
                    "with a different request",
                    "idempotency_conflict",
                )
            ]
        )


class NotAllowed(RunkitError):
    pass


class ConfigurationError(RunkitError):
    pass


class LeaseLost(RunkitError):
    def __init__(self, run_id: UUID, attempt: int) -> None:
        self.run_id = run_id
        self.attempt = attempt
        super().__init__(f"lease on run {run_id} attempt {attempt} is no longer held")


class StorageUnavailable(RunkitError):
    pass
