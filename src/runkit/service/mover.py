"""The :class:`Mover`: every move of a run goes through here. It looks the action up in the
state table, takes the move's effects from :mod:`runkit.domain.moves`, compare-and-sets them
in the store with the audit entry, and wakes who cares. Client actions (``Runkit``) and
worker reports (``WorkerOps``) both move runs only through :meth:`Mover.move`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from ..domain import inputs as _inputs
from ..domain import moves
from ..domain.clock import Clock
from ..domain.errors import IllegalTransition, RunNotFound
from ..domain.kind import KindRegistry
from ..domain.models import Expect, Lease, NewLogEntry, Principal, Run
from ..domain.settings import Settings
from ..domain.states import LEASED, TERMINAL, Action, Status, allowed_actions
from ..engine._wakeups import Wakeups
from ..storage.base import Store, Update
from .waits import Waits

#: How often a compare-and-set that lost a race is re-evaluated before giving up.
CAS_ATTEMPTS = 20


class Mover:
    """Moves runs of one store; shared by a :class:`~runkit.Runkit` and its ``ops``."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        kinds: KindRegistry,
        settings: Settings,
        wakeups: Wakeups,
    ) -> None:
        self.store = store
        self.clock = clock
        self.kinds = kinds
        self.settings = settings
        self.wakeups = wakeups
        #: Wakes waiting parents when their children finish (:mod:`runkit.service.waits`).
        self.waits = Waits(self)

    def plan(
        self,
        run: Run,
        action: Action,
        actor: Principal | None,
        *,
        reason: str | None,
        extra: Mapping[str, Any] | None = None,
        fence: Lease | None = None,
        notes: Sequence[NewLogEntry] = (),
        deadline: datetime | None = None,
    ) -> tuple[Update, Status | None]:
        """The compare-and-set that moves ``run`` by ``action``, and the target status.
        ``notes`` are log entries written in the same transaction, before the audit entry.
        Raises IllegalTransition if the table has no such move from ``run.status``."""
        to = moves.target(run, action)
        now = self.clock.now()
        changes = moves.changes(run, action, to, now, deadline=deadline)
        changes["status_reason"] = reason
        if extra:
            changes.update(extra)
        expect = Expect(
            frozenset({run.status}),
            attempt=fence.attempt if fence else None,
            lease_token=fence.token if fence else None,
        )
        entry = moves.status_entry(
            run.status,
            to,
            reason,
            actor.id if actor else None,
            now,
            worker_id=run.worker_id if fence else None,
        )
        return Update(run.id, expect, changes, [*notes, entry]), to

    def moved(self, before: Run, to: Status | None) -> None:
        """Wake who may care that ``before`` moved to ``to``."""
        self.wakeups.logs_appended(before.id)
        if to is Status.QUEUED:
            self.wakeups.work_available()  # any worker anywhere may take it
        elif before.status in LEASED and to not in LEASED:
            # A slot was freed: the worker's own (its process wakes it), and, for a keyed run,
            # one of its key's, which a worker in another process may be waiting for. An
            # unkeyed run's end is news to no other process: telling them all would wake
            # every worker process for a claim that finds nothing (a NOTIFY herd).
            self.wakeups.work_available(local_only=before.concurrency_key is None)

    async def settled(self, moved: Sequence[Run]) -> None:
        """After moves committed: the children among ``moved`` that finished may end their
        parents' waits (:meth:`Waits.children_settled`)."""
        done = [r for r in moved if r.parent_action_run_id is not None and r.status in TERMINAL]
        if done:
            await self.waits.children_settled(done)

    async def move(
        self,
        run: Run,
        action: Action,
        actor: Principal | None,
        *,
        reason: str | None,
        extra: Mapping[str, Any] | None = None,
        fence: Lease | None = None,
        notes: Sequence[NewLogEntry] = (),
        deadline: datetime | None = None,
    ) -> Run | None:
        """One compare-and-set of ``run`` by ``action``; None if the row changed meanwhile."""
        update, to = self.plan(
            run,
            action,
            actor,
            reason=reason,
            extra=extra,
            fence=fence,
            notes=notes,
            deadline=deadline,
        )
        new = await self.store.update(update.run_id, update.expect, update.changes, update.entries)
        if new is not None:
            self.moved(run, to)
            await self.settled([new])
        return new

    async def require(self, run_id: UUID) -> Run:
        run = await self.store.get(run_id)
        if run is None:
            raise RunNotFound(run_id)
        return run

    async def act(
        self,
        run_id: UUID | str,
        action: Action,
        principal: Principal | None,
        *,
        reason: str | None,
        extra: Mapping[str, Any] | None = None,
    ) -> Run:
        """Move the run by ``action`` from wherever it is, re-reading it after a lost race."""
        rid = _inputs.run_id(run_id)
        for _ in range(CAS_ATTEMPTS):
            run = await self.require(rid)
            new = await self.move(run, action, principal, reason=reason, extra=extra)
            if new is not None:
                return new
        raise IllegalTransition(rid, run.status, action, allowed_actions(run.status))


def iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
