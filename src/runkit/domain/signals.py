"""Exceptions an executor raises to steer the engine (they never leave the worker).

::

    Exception
    ├── Retryable          retry this attempt after backoff (within the kind's budget)
    ├── Fatal              fail now, whatever the kind's retry policy says
    └── ParkForApproval    an approval gate: park the run, freeing the worker and its slot
"""

from __future__ import annotations

from datetime import timedelta


class Retryable(Exception):
    """A transient failure. ``retry_after`` (seconds) overrides the policy's backoff."""

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Fatal(Exception):
    """A failure no retry can fix: the run fails after this attempt."""


class ParkForApproval(Exception):
    """Raised by an approval executor: the worker parks the run (``awaiting_approval``) with
    ``timeout`` as its deadline and lets go of it."""

    def __init__(self, timeout: timedelta | None = None) -> None:
        super().__init__("park for approval")
        self.timeout = timeout
