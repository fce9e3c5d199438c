"""The machinery of a move: look the action up in the state table, compute what else the move
sets (leases, deadlines, counters, timestamps), and compare-and-set it in the store with its
audit entry. Client actions (``_service``) and worker reports (``_worker_ops``) both move runs
only through :meth:`Transitions._move`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from ..domain import inputs as _inputs
from ..domain.clock import Clock
from ..domain.errors import IllegalTransition, RunNotFound
from ..domain.kind import ApprovalPolicy, KindRegistry
from ..domain.models import Expect, Lease, NewLogEntry, Principal, Run
from ..domain.settings import Settings
from ..domain.states import (
    LEASED,
    TERMINAL,
    Action,
    Status,
    _NoTransition,
    allowed_actions,
    next_status,
)
from ..storage.base import Store, Update, status_entry
from .wakeups import Wakeups

#: How often a compare-and-set that lost a race is re-evaluated before giving up.
CAS_ATTEMPTS = 20


class Transitions:
    """Base of :class:`~runkit.Runkit`: what every move shares."""

    store: Store
    clock: Clock
    kinds: KindRegistry
    settings: Settings
    wakeups: Wakeups

    def approval_policy(self, run: Run) -> ApprovalPolicy | None:
        kind = self.kinds.get(run.kind)
        if kind is None or kind.approval is None:
            return None
        return kind.approval(kind.validate(run.definition))

    def _target(self, run: Run, action: Action) -> Status | None:
        try:
            return next_status(run.status, action)
        except _NoTransition:
            raise IllegalTransition(
                run.id, run.status, action, allowed_actions(run.status)
            ) from None

    def _changes(
        self, run: Run, action: Action, target: Status | None, now: datetime
    ) -> dict[str, Any]:
        """What a move sets besides the status: leases, deadlines, timestamps, counters."""
        changes: dict[str, Any] = {"status": target, "updated_at": now}
        if target in TERMINAL:
            changes["completed_at"] = now
        if target not in LEASED:
            changes.update(lease_token=None, worker_id=None, deadline_at=None)
        if action is Action.RETRY:
            changes.update(
                retry_count=run.retry_count + 1,
                result=None,
                error=None,
                completed_at=None,
                not_before=None,
                checkpoint=None,
                approvals=(),
            )
        if action in (Action.INTERRUPT, Action.CRASH):
            changes["interrupt_count"] = run.interrupt_count + 1
        if action is Action.REQUEUE:
            changes["retry_count"] = run.retry_count + 1
        if action is Action.COMPLETE:
            # A success is the outcome; earlier attempts' errors stay in the log only.
            changes["error"] = None
        if target is Status.QUEUED and action is not Action.REQUEUE:
            changes["not_before"] = None
        return changes

    def _plan(
        self,
        run: Run,
        action: Action,
        actor: Principal | None,
        *,
        reason: str | None,
        extra: Mapping[str, Any] | None = None,
        fence: Lease | None = None,
        notes: Sequence[NewLogEntry] = (),
    ) -> tuple[Update, Status | None]:
        """The compare-and-set that moves ``run`` by ``action``, and the target status.
        ``notes`` are log entries written in the same transaction, before the audit entry.
        Raises IllegalTransition if the table has no such move from ``run.status``."""
        target = self._target(run, action)
        now = self.clock.now()
        changes = self._changes(run, action, target, now)
        changes["status_reason"] = reason
        if extra:
            changes.update(extra)
        expect = Expect(
            frozenset({run.status}),
            attempt=fence.attempt if fence else None,
            lease_token=fence.token if fence else None,
        )
        entry = status_entry(
            run.status,
            target,
            reason,
            actor.id if actor else None,
            now,
            worker_id=run.worker_id if fence else None,
        )
        return Update(run.id, expect, changes, [*notes, entry]), target

    def _moved(self, before: Run, target: Status | None) -> None:
        """Wake who may care that ``before`` moved to ``target``."""
        self.wakeups.logs_appended(before.id)
        if before.status in LEASED and target not in LEASED:
            self.wakeups.work_available()  # a concurrency slot was freed

    async def _move(
        self,
        run: Run,
        action: Action,
        actor: Principal | None,
        *,
        reason: str | None,
        extra: Mapping[str, Any] | None = None,
        fence: Lease | None = None,
        notes: Sequence[NewLogEntry] = (),
    ) -> Run | None:
        """One compare-and-set of ``run`` by ``action``; None if the row changed meanwhile."""
        update, target = self._plan(
            run, action, actor, reason=reason, extra=extra, fence=fence, notes=notes
        )
        new = await self.store.update(update.run_id, update.expect, update.changes, update.entries)
        if new is not None:
            self._moved(run, target)
        return new

    async def _require(self, run_id: UUID) -> Run:
        run = await self.store.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def _act(
        self,
        run_id: UUID | str,
        action: Action,
        principal: Principal | None,
        *,
        reason: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> Run:
        rid = _inputs.run_id(run_id)
        for _ in range(CAS_ATTEMPTS):
            run = await self._require(rid)
            new = await self._move(run, action, principal, reason=reason, extra=extra)
            if new is not None:
                return new
        raise IllegalTransition(rid, run.status, action, allowed_actions(run.status))


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
