"""Exceptions an executor raises to steer the engine (they never leave the worker).

::

    Exception
    ├── Retryable          retry this attempt after backoff (within the kind's budget)
    ├── Fatal              fail now, whatever the kind's retry policy says
    └── ParkForApproval    an approval gate: park the run, freeing the worker and its slot
    BaseException
    └── Suspend            ctx.wait_for / ctx.sleep: the run waits, freeing the worker

``Suspend`` is a BaseException so that an executor's own ``except Exception`` cannot swallow
it: it must reach the worker, which ends the attempt and parks the run in ``waiting``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .waits import Wait


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


class Suspend(BaseException):
    """Raised by ``ctx.wait_for`` and ``ctx.sleep`` (never by kind code directly): the
    attempt ends and the run waits for ``wait`` in ``waiting``, holding no worker."""

    def __init__(self, wait: Wait) -> None:
        super().__init__("suspend until the wait is over")
        self.wait = wait
