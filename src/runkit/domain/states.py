"""The run state machine: one table decides every move.

Every change of a run's status, whether asked for by a client (execute, pause, ...) or made by
a worker or the rescuer (claim, complete, interrupt, ...), is a lookup of ``(status, action)``
in :data:`TRANSITIONS`. A missing row is an illegal move and raises
:class:`~runkit.IllegalTransition`; nothing else in runkit compares statuses to decide a
move. The docs' table and diagram are generated from this module (``docs/state-machine.md``,
``python docs/generate.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Final


class Status(enum.StrEnum):
    """The canonical status of a run. Clients may branch on it; never on ``displayStatus``."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    PAUSING = "pausing"
    CANCELLING = "cancelling"
    PAUSED = "paused"
    AWAITING_APPROVAL = "awaiting_approval"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def holds_slot(self) -> bool:
        """Whether a run in this status occupies a slot of its concurrency key."""
        return self in LEASED


class Action(enum.StrEnum):
    """Everything that can move a run. The first group is the HTTP API's; the rest are the
    worker's and the rescuer's."""

    EXECUTE = "execute"
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"
    APPROVE = "approve"
    REJECT = "reject"
    RETRY = "retry"
    DELETE = "delete"
    # worker and rescuer
    CLAIM = "claim"
    COMPLETE = "complete"
    FAIL = "fail"
    REQUEUE = "requeue"  # a retryable failure with retries left: back to the queue
    PARK = "park"  # an executor waits for a human (approval gate)
    STOPPED = "stopped"  # the worker stopped its executor after a cancel or pause request
    INTERRUPT = "interrupt"  # lease expired, interrupt budget left
    CRASH = "crash"  # lease expired, interrupt budget spent
    RELEASE = "release"  # graceful shutdown hands the run back, not an interrupt
    TIME_OUT = "time_out"  # a deadline other than a lease passed (approval timeout)
    WAIT = "wait"  # an executor waits for its children or a time: its attempt ends
    WAKE = "wake"  # what a waiting run waited for is done: back to the queue


S, A = Status, Action

#: The actions a client asks for (the HTTP API's); the rest are the engine's own steps, which
#: an error message never offers a user.
CLIENT_ACTIONS: Final = frozenset(
    {A.EXECUTE, A.PAUSE, A.RESUME, A.CANCEL, A.APPROVE, A.REJECT, A.RETRY, A.DELETE}
)

#: Statuses in which a worker holds a lease on the run (and the run holds a concurrency slot).
LEASED: Final = frozenset({S.RUNNING, S.PAUSING, S.CANCELLING})
TERMINAL: Final = frozenset({S.SUCCEEDED, S.FAILED, S.CANCELLED, S.REJECTED})

#: Marker target of DELETE: the run is removed.
DELETED: Final = None

#: (status, action) -> next status (None: the run is deleted). The whole machine.
TRANSITIONS: Final[dict[tuple[Status, Action], Status | None]] = {
    (S.PENDING, A.EXECUTE): S.QUEUED,
    (S.PENDING, A.CANCEL): S.CANCELLED,
    (S.PENDING, A.DELETE): DELETED,
    (S.QUEUED, A.CLAIM): S.RUNNING,
    (S.QUEUED, A.PAUSE): S.PAUSED,
    (S.QUEUED, A.CANCEL): S.CANCELLED,
    (S.RUNNING, A.COMPLETE): S.SUCCEEDED,
    (S.RUNNING, A.FAIL): S.FAILED,
    (S.RUNNING, A.REQUEUE): S.QUEUED,
    (S.RUNNING, A.PARK): S.AWAITING_APPROVAL,
    (S.RUNNING, A.PAUSE): S.PAUSING,
    (S.RUNNING, A.CANCEL): S.CANCELLING,
    (S.RUNNING, A.INTERRUPT): S.QUEUED,
    (S.RUNNING, A.CRASH): S.FAILED,
    (S.RUNNING, A.RELEASE): S.QUEUED,
    (S.RUNNING, A.WAIT): S.WAITING,
    # Pausing: the executor stops at its next checkpoint; work that finishes first stands.
    (S.PAUSING, A.COMPLETE): S.SUCCEEDED,
    (S.PAUSING, A.FAIL): S.FAILED,
    (S.PAUSING, A.REQUEUE): S.PAUSED,
    (S.PAUSING, A.PARK): S.PAUSED,
    (S.PAUSING, A.STOPPED): S.PAUSED,
    (S.PAUSING, A.RESUME): S.RUNNING,
    (S.PAUSING, A.CANCEL): S.CANCELLING,
    (S.PAUSING, A.INTERRUPT): S.PAUSED,
    (S.PAUSING, A.CRASH): S.PAUSED,
    (S.PAUSING, A.RELEASE): S.PAUSED,
    (S.PAUSING, A.WAIT): S.PAUSED,
    # Cancelling: like Temporal, a result reported before the executor stopped stands.
    (S.CANCELLING, A.COMPLETE): S.SUCCEEDED,
    (S.CANCELLING, A.FAIL): S.FAILED,
    (S.CANCELLING, A.REQUEUE): S.CANCELLED,
    (S.CANCELLING, A.PARK): S.CANCELLED,
    (S.CANCELLING, A.STOPPED): S.CANCELLED,
    (S.CANCELLING, A.INTERRUPT): S.CANCELLED,
    (S.CANCELLING, A.CRASH): S.CANCELLED,
    (S.CANCELLING, A.RELEASE): S.CANCELLED,
    (S.CANCELLING, A.WAIT): S.CANCELLED,
    (S.PAUSED, A.RESUME): S.QUEUED,
    (S.PAUSED, A.CANCEL): S.CANCELLED,
    (S.AWAITING_APPROVAL, A.APPROVE): S.SUCCEEDED,
    (S.AWAITING_APPROVAL, A.REJECT): S.REJECTED,
    (S.AWAITING_APPROVAL, A.TIME_OUT): S.FAILED,
    (S.AWAITING_APPROVAL, A.PAUSE): S.PAUSED,
    (S.AWAITING_APPROVAL, A.CANCEL): S.CANCELLED,
    # Waiting: the attempt ended while its children run (or a timer runs); no worker, no
    # slot. A pause holds it (children go on) and its resume runs the executor again, which
    # re-checks; a cancel cancels its children too.
    (S.WAITING, A.WAKE): S.QUEUED,
    (S.WAITING, A.PAUSE): S.PAUSED,
    (S.WAITING, A.CANCEL): S.CANCELLED,
    (S.SUCCEEDED, A.DELETE): DELETED,
    (S.FAILED, A.RETRY): S.QUEUED,
    (S.FAILED, A.DELETE): DELETED,
    (S.CANCELLED, A.RETRY): S.QUEUED,
    (S.CANCELLED, A.DELETE): DELETED,
    (S.REJECTED, A.RETRY): S.QUEUED,
    (S.REJECTED, A.DELETE): DELETED,
}


class _NoTransition(LookupError):
    """Raised by :func:`next_status` for a missing row; the core re-raises it as
    :class:`~runkit.IllegalTransition` with the run attached."""


def next_status(status: Status, action: Action) -> Status | None:
    """The status after ``action`` from ``status`` (None: deleted). Raises LookupError."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise _NoTransition(status, action) from None


def allowed_actions(status: Status) -> tuple[Action, ...]:
    """Actions legal from ``status``, in the table's order."""
    return tuple(a for (s, a) in TRANSITIONS if s is status)


def sources(action: Action) -> frozenset[Status]:
    """Statuses from which ``action`` is legal: the compare-and-set guard of a store update."""
    return frozenset(s for (s, a) in TRANSITIONS if a is action)


def edges() -> Iterator[tuple[Status, Action, Status | None]]:
    for (status, action), target in TRANSITIONS.items():
        yield status, action, target


def mermaid() -> str:
    """The state diagram, drawn from the table (docs/state-machine.md embeds it)."""
    lines = ["stateDiagram-v2", "    [*] --> pending: create"]
    for status, action, target in edges():
        lines.append(f"    {status.value} --> {target.value if target else '[*]'}: {action.value}")
    return "\n".join(lines)


def markdown_table() -> str:
    header = "| from | action | to |\n|---|---|---|"
    rows = [
        f"| `{s.value}` | {a.value} | {'(deleted)' if t is None else f'`{t.value}`'} |"
        for s, a, t in edges()
    ]
    return "\n".join([header, *rows])


def render_docs(template: str) -> str:
    """``template`` with the generated table and diagram between their markers."""
    for name, body in (("table", markdown_table()), ("diagram", f"```mermaid\n{mermaid()}\n```")):
        start, end = f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"
        head, _, rest = template.partition(start)
        _, _, tail = rest.partition(end)
        template = f"{head}{start}\n{body}\n{end}{tail}"
    return template
