"""What every move of a run changes: one module owns the effects of each move.

:data:`~runkit.domain.states.TRANSITIONS` says *where* a move goes; this module says *what else*
it sets (leases, deadlines, counters, timestamps) and which audit entry it writes. Every move
is computed here, whoever makes it: a client's action, a worker's claim or report, the
rescuer, and a create that queues at once. Storage backends apply what these functions return;
they never restate a move's effects.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import attrs

from .errors import IllegalTransition
from .kind import ApprovalPolicy
from .models import Lease, NewLogEntry, Run, replace
from .states import LEASED, TERMINAL, Action, Status, _NoTransition, allowed_actions, next_status


def target(run: Run, action: Action) -> Status | None:
    """Where ``action`` takes ``run`` (None: deleted); IllegalTransition if nowhere."""
    try:
        return next_status(run.status, action)
    except _NoTransition:
        raise IllegalTransition(run.id, run.status, action, allowed_actions(run.status)) from None


def changes(
    run: Run,
    action: Action,
    to: Status | None,
    now: datetime,
    *,
    worker_id: str | None = None,
    lease: timedelta | None = None,
    deadline: datetime | None = None,
) -> dict[str, Any]:
    """The fields a move of ``run`` by ``action`` to ``to`` sets, the status included.

    A claim takes the claiming ``worker_id`` and the ``lease`` it holds the run for; a move
    into a status that times out (an approval gate parking) takes its ``deadline``.
    """
    out: dict[str, Any] = {"status": to, "updated_at": now}
    if to in TERMINAL:
        out["completed_at"] = now
    if to not in LEASED:
        out.update(lease_token=None, worker_id=None, deadline_at=None)
    if action is Action.CLAIM:
        if worker_id is None or lease is None:
            raise ValueError("a claim needs the worker and its lease")
        out.update(
            attempt=run.attempt + 1,
            lease_token=uuid.uuid4().hex,
            worker_id=worker_id,
            deadline_at=now + lease,
            not_before=None,
            started_at=run.started_at or now,
            status_reason=None,
        )
    elif action is Action.RETRY:
        out.update(
            retry_count=run.retry_count + 1,
            result=None,
            error=None,
            completed_at=None,
            not_before=None,
            checkpoint=None,
            approvals=(),
        )
    elif action in (Action.INTERRUPT, Action.CRASH):
        out["interrupt_count"] = run.interrupt_count + 1
    elif action is Action.REQUEUE:
        out["retry_count"] = run.retry_count + 1
    elif action is Action.COMPLETE:
        # A success is the outcome; earlier attempts' errors stay in the log only.
        out["error"] = None
    if to is Status.QUEUED and action is not Action.REQUEUE:
        out["not_before"] = None
    if deadline is not None and to in (Status.AWAITING_APPROVAL, Status.WAITING):
        # Only a gate's or a wait's deadline counts; one parked while pausing is just paused.
        out["deadline_at"] = deadline
    if run.wait is not None and to is not Status.WAITING:
        out["wait"] = None  # a wait lives as long as the waiting status
    return out


def status_entry(
    before: Status | None,
    after: Status | None,
    reason: str | None,
    actor: str | None,
    now: datetime,
    attempt: int | None = None,
    worker_id: str | None = None,
) -> NewLogEntry:
    """The audit entry every move writes (event ``status.changed``)."""
    to = after.value if after is not None else "deleted"
    frm = before.value if before is not None else None
    return NewLogEntry(
        message=f"status {frm or 'new'} -> {to}" + (f" ({reason})" if reason else ""),
        level="info",
        event="status.changed",
        data={"from": frm, "to": to, "reason": reason, "actor": actor},
        occurred_at=now,
        attempt=attempt,
        worker_id=worker_id,
    )


def claim(
    run: Run, worker_id: str, now: datetime, lease: timedelta
) -> tuple[dict[str, Any], NewLogEntry]:
    """What a claim of ``run`` by ``worker_id`` sets, and the audit entry it writes."""
    to = target(run, Action.CLAIM)
    fields = changes(run, Action.CLAIM, to, now, worker_id=worker_id, lease=lease)
    entry = status_entry(run.status, to, "claimed", worker_id, now, fields["attempt"], worker_id)
    return fields, entry


def claimed(run: Run, worker_id: str, now: datetime, lease: timedelta) -> tuple[Run, NewLogEntry]:
    """The run as a claim leaves it, and the audit entry the claim writes."""
    fields, entry = claim(run, worker_id, now, lease)
    return replace(run, **fields), entry


def created(
    run: Run, *, execute: bool, actor: str | None, now: datetime
) -> tuple[Run, list[NewLogEntry]]:
    """A new run (given in ``pending``) and its first audit entries; with ``execute`` it
    has already made the execute move, in the same insert."""
    entries = [status_entry(None, run.status, "created", actor, now)]
    if execute:
        to = target(run, Action.EXECUTE)
        run = replace(run, **changes(run, Action.EXECUTE, to, now))
        entries.append(status_entry(Status.PENDING, to, "execute", actor, now))
    return run, entries


def rescue(
    run: Run, *, interrupt_budget: int, policy: ApprovalPolicy | None
) -> tuple[Action, str, dict[str, Any]] | None:
    """What the rescuer does with ``run``, whose deadline passed: the action, its reason and
    the extra fields it sets; None if the deadline is stale (nothing times out there)."""
    if run.status in LEASED:
        spent = run.interrupt_count + 1 > interrupt_budget
        if spent and run.status is Status.RUNNING:
            error = {
                "type": "WorkerLost",
                "message": f"worker lost {run.interrupt_count + 1} times",
                "reason": "crashed",
            }
            return Action.CRASH, "crashed", {"error": error}
        return Action.INTERRUPT, "lease expired", {}
    if run.status is Status.WAITING:
        raise ValueError("a waiting run is re-checked by the service, which reads its children")
    if run.status is Status.AWAITING_APPROVAL:
        outcome = policy.on_timeout if policy else "reject"
        if outcome == "approve":
            return Action.APPROVE, "approval_timeout", {}
        if outcome == "fail":
            error = {"type": "ApprovalTimeout", "message": "approval timed out"}
            return Action.TIME_OUT, "approval_timeout", {"error": error}
        return Action.REJECT, "approval_timeout", {}
    return None


def refuses_pause(run: Run, pausable: bool) -> bool:
    """Whether a pause must be refused although the table has the move: a running run of a
    kind that cannot stop at a checkpoint (it would restart from scratch on resume)."""
    return run.status is Status.RUNNING and not pausable


@attrs.frozen
class Report:
    """How an attempt ended, for :meth:`WorkerOps.report`. Build one with
    ``completion()`` or ``failure()``. ``logs`` are the attempt's last log entries, written
    in the same transaction; ``known`` is the run as the worker holds it (saves a read)."""

    lease: Lease
    action: Action
    reason: str | None
    extra: Mapping[str, Any] = attrs.field(factory=dict)
    logs: tuple[NewLogEntry, ...] = ()
    known: Run | None = None
