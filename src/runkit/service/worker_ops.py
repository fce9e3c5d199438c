"""``WorkerOps`` (``runkit.ops``): what workers and the rescuer ask of runkit: claim runs,
keep their leases, report logs, progress and outcomes, register themselves. Every report is
fenced by the worker's lease (attempt and token): a worker that lost its lease gets
:class:`~runkit.LeaseLost` and changes nothing. Moves go through the shared
:class:`~runkit.service.mover.Mover`."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from ..domain import moves, waits
from ..domain.errors import IllegalTransition, LeaseLost
from ..domain.models import SYSTEM, Expect, Lease, LogEntry, NewLogEntry, Run, WorkerInfo
from ..domain.moves import Report
from ..domain.redact import clean_all, mask_values, redact_value
from ..domain.states import LEASED, Action, Status
from ..domain.waits import Wait
from ..storage.base import Update, fence_expect
from .mover import CAS_ATTEMPTS, Mover, iso

#: Claimed runs whose secret values are remembered at most (a bound against leaks).
_MAX_REMEMBERED = 10_000


class WorkerOps:
    """The worker side of a :class:`~runkit.Runkit`, reached as ``runkit.ops``."""

    def __init__(self, mover: Mover) -> None:
        self.mover = mover
        self.store = mover.store
        self.clock = mover.clock
        self.kinds = mover.kinds
        self.settings = mover.settings
        self.wakeups = mover.wakeups
        #: The values of each claimed run's secret definition fields, redacted from what its
        #: executor reports; dropped when the attempt ends here.
        self._secrets: dict[UUID, tuple[str, ...]] = {}

    def _secret_values(self, run_id: UUID) -> tuple[str, ...]:
        return self._secrets.get(run_id, ())

    def _clean(self, run_id: UUID, entries: Iterable[NewLogEntry]) -> builtins.list[NewLogEntry]:
        return clean_all(entries, self._secret_values(run_id))

    def _done(self, run_id: UUID) -> None:
        self._secrets.pop(run_id, None)

    async def claim(
        self, worker_id: str, limit: int, *, kinds: Iterable[str] | None = None
    ) -> builtins.list[Run]:
        """Lease up to ``limit`` due runs of ``kinds`` (default: every kind registered here).
        A worker never takes a run it cannot execute: the store filters inside the claim, and
        a run of a kind nobody here serves stays queued (blocking only its own key)."""
        runs = await self.store.claim(
            worker_id,
            limit,
            now=self.clock.now(),
            lease=self.settings.lease,
            kinds=frozenset(self.kinds.names() if kinds is None else kinds),
        )
        if len(self._secrets) > _MAX_REMEMBERED:  # attempts that vanished without a report
            self._secrets.clear()
        for run in runs:
            self.wakeups.logs_appended(run.id, local_only=True)
            values = self.kinds.secret_values(run)
            if values:
                self._secrets[run.id] = values
        return runs

    # ---------------------------------------------------------------- worker registry -----
    async def register_worker(self, worker: WorkerInfo) -> None:
        """Register ``worker`` or renew its registration (the worker's heartbeat does)."""
        await self.store.save_worker(worker)

    async def unregister_worker(self, worker_id: str) -> None:
        await self.store.delete_workers(ids=[worker_id])

    async def heartbeat(self, leases: Sequence[Lease]) -> dict[UUID, Status | None]:
        if not leases:
            return {}
        return await self.store.heartbeat(leases, now=self.clock.now(), lease=self.settings.lease)

    async def _report(
        self,
        lease: Lease,
        action: Action,
        *,
        reason: str | None,
        extra: Mapping[str, Any] | None = None,
        notes: Sequence[NewLogEntry] = (),
        deadline: datetime | None = None,
    ) -> Run:
        """A fenced worker move read from the store: raises LeaseLost if the worker no
        longer holds the run. ``notes`` are already cleaned (``redact``)."""
        for _ in range(CAS_ATTEMPTS):
            run = await self.store.get(lease.run_id)
            if run is None or not fence_expect(lease).matches(run):
                raise LeaseLost(lease.run_id, lease.attempt)
            new = await self.mover.move(
                run,
                action,
                None,
                reason=reason,
                extra=extra,
                fence=lease,
                notes=notes,
                deadline=deadline,
            )
            if new is not None:
                return new
        raise LeaseLost(lease.run_id, lease.attempt)

    async def report(
        self, reports: Sequence[Report]
    ) -> builtins.list[Run | LeaseLost | IllegalTransition]:
        """Write how several attempts ended, in one storage transaction where the store can
        (:meth:`~runkit.storage.base.Store.update_many`). One result per report, in order:
        the run as it is now, or the error that report met (LeaseLost: the worker no longer
        holds the run, and nothing of that report was written).

        A report whose ``known`` snapshot still matches the store costs no read; one whose
        run moved meanwhile (a cancel or pause arrived) is re-read and moved from there.
        """
        planned: builtins.list[tuple[int, Run, Status | None]] = []
        updates: builtins.list[Update] = []
        results: builtins.list[Run | LeaseLost | IllegalTransition | None] = [None] * len(reports)
        for i, r in enumerate(reports):
            known = r.known
            if known is None or (known.id, known.attempt) != (r.lease.run_id, r.lease.attempt):
                continue  # no usable snapshot: read below
            try:
                update, target = self.mover.plan(
                    known,
                    r.action,
                    None,
                    reason=r.reason,
                    extra=r.extra,
                    fence=r.lease,
                    notes=r.logs,
                )
            except IllegalTransition:
                continue
            planned.append((i, known, target))
            updates.append(update)
        if updates:
            for (i, known, target), new in zip(
                planned, await self.store.update_many(updates), strict=True
            ):
                if new is not None:
                    self.mover.moved(known, target)
                    results[i] = new
            await self.mover.settled([r for r in results if isinstance(r, Run)])
        for i, r in enumerate(reports):
            if results[i] is not None:
                continue
            try:
                results[i] = await self._report(
                    r.lease, r.action, reason=r.reason, extra=r.extra, notes=r.logs
                )
            except (LeaseLost, IllegalTransition) as exc:
                results[i] = exc
        for r in reports:
            self._done(r.lease.run_id)
        return [r for r in results if r is not None]

    async def _report_one(self, report: Report) -> Run:
        (result,) = await self.report([report])
        if isinstance(result, Exception):
            raise result
        return result

    def completion(
        self,
        lease: Lease,
        result: Mapping[str, Any] | None,
        *,
        logs: Sequence[NewLogEntry] = (),
        known: Run | None = None,
    ) -> Report:
        secrets = self._secret_values(lease.run_id)
        shown = mask_values(dict(result or {}), secrets)
        return Report(
            lease,
            Action.COMPLETE,
            "completed",
            {"result": shown},
            tuple(self._clean(lease.run_id, logs)),
            known,
        )

    def failure(
        self,
        lease: Lease,
        error: Mapping[str, Any],
        *,
        retry_at: datetime | None = None,
        reason: str = "error",
        logs: Sequence[NewLogEntry] = (),
        known: Run | None = None,
    ) -> Report:
        """A failed attempt: back to the queue until ``retry_at`` if given (the engine decides
        from the kind's retry policy; ``retryCount + 1``), else ``failed`` with ``reason``.
        Either way an ``attempt.failed`` entry records the error in the run's log."""
        error = redact_value(dict(error), self._secret_values(lease.run_id))
        note = NewLogEntry(
            f"attempt {lease.attempt} failed: {str(error.get('message', ''))[:200]}",
            level="error",
            event="attempt.failed",
            data={"error": error, "retryAt": iso(retry_at) if retry_at else None},
            occurred_at=self.clock.now(),
            attempt=lease.attempt,
        )
        notes = (*self._clean(lease.run_id, logs), note)
        if retry_at is not None:
            extra = {"error": error, "not_before": retry_at}
            return Report(lease, Action.REQUEUE, "retrying", extra, notes, known)
        return Report(lease, Action.FAIL, reason, {"error": error}, notes, known)

    async def complete(
        self,
        lease: Lease,
        result: Mapping[str, Any] | None,
        *,
        logs: Sequence[NewLogEntry] = (),
        known: Run | None = None,
    ) -> Run:
        return await self._report_one(self.completion(lease, result, logs=logs, known=known))

    async def fail(
        self,
        lease: Lease,
        error: Mapping[str, Any],
        *,
        retry_at: datetime | None = None,
        reason: str = "error",
        logs: Sequence[NewLogEntry] = (),
        known: Run | None = None,
    ) -> Run:
        return await self._report_one(
            self.failure(lease, error, retry_at=retry_at, reason=reason, logs=logs, known=known)
        )

    async def park(self, lease: Lease, *, timeout: timedelta | None) -> Run:
        """Park an approval gate: no worker, no slot, and the policy's deadline if it has one,
        set by the same move."""
        deadline = self.clock.now() + timeout if timeout is not None else None
        return await self._report(lease, Action.PARK, reason="awaiting approval", deadline=deadline)

    async def suspend(self, lease: Lease, wait: Wait, *, logs: Sequence[NewLogEntry] = ()) -> Run:
        """End the attempt of an executor that waits (``ctx.wait_for``, ``ctx.sleep``): the
        run moves to ``waiting`` with ``wait`` stored on it, holding no worker and no slot,
        until its children's moves or the rescuer wake it (:mod:`runkit.service.waits`)."""
        now = self.clock.now()
        new = await self._report(
            lease,
            Action.WAIT,
            reason="waiting",
            extra={"wait": wait.to_json()},
            notes=self._clean(lease.run_id, logs),
            deadline=waits.deadline(wait, now, self.settings.wait_recheck),
        )
        # A child that finished after the executor looked, but before this move committed,
        # saw its parent still running and woke nobody: look once more, now.
        woken = await self.mover.waits.check(new) if new.status is Status.WAITING else None
        return woken or new

    async def stopped(self, lease: Lease, *, logs: Sequence[NewLogEntry] = ()) -> Run:
        """The executor stopped after a cancel or pause request."""
        notes = self._clean(lease.run_id, logs)
        self._done(lease.run_id)
        return await self._report(lease, Action.STOPPED, reason="stopped", notes=notes)

    async def release(self, lease: Lease, *, logs: Sequence[NewLogEntry] = ()) -> Run:
        """Graceful shutdown: hand the run back without counting an interrupt."""
        notes = self._clean(lease.run_id, logs)
        self._done(lease.run_id)
        return await self._report(lease, Action.RELEASE, reason="worker shutdown", notes=notes)

    async def append_logs(
        self, lease: Lease, entries: Sequence[NewLogEntry]
    ) -> builtins.list[LogEntry]:
        cleaned = self._clean(lease.run_id, entries)
        stored = await self.store.append_logs(lease.run_id, cleaned, fence=lease)
        if stored is None:
            raise LeaseLost(lease.run_id, lease.attempt)
        self.wakeups.logs_appended(lease.run_id)
        return stored

    async def set_progress(
        self,
        lease: Lease,
        progress: Mapping[str, Any],
        *,
        checkpoint: Mapping[str, Any] | None = None,
        logs: Sequence[NewLogEntry] = (),
    ) -> Run:
        """Replace the run's progress (and checkpoint), with ``logs`` appended in the same
        transaction: one commit where a flush and an update would take two."""
        secrets = self._secret_values(lease.run_id)
        shown = mask_values(dict(progress), secrets)
        changes: dict[str, Any] = {"progress": shown, "updated_at": self.clock.now()}
        if checkpoint is not None:
            changes["checkpoint"] = dict(checkpoint)
        entries = self._clean(lease.run_id, logs)
        new = await self.store.update(lease.run_id, fence_expect(lease), changes, entries)
        if new is None:
            raise LeaseLost(lease.run_id, lease.attempt)
        if entries:
            self.wakeups.logs_appended(lease.run_id)
        return new

    async def rescue(self, limit: int = 500) -> int:
        """Act on every run whose deadline passed: expired leases are interrupted (or fail
        ``crashed`` when the budget is spent); approvals time out per their policy. Returns
        how many runs were moved. Pages through all due runs, so none is starved."""
        moved = 0
        await self.store.delete_workers(seen_before=self.clock.now() - self.settings.lease)
        while True:
            due = await self.store.due(now=self.clock.now(), limit=limit)
            progressed = 0
            for run in due:
                if await self._rescue_one(run):
                    progressed += 1
            moved += progressed
            if len(due) < limit or progressed == 0:
                return moved

    async def _rescue_one(self, run: Run) -> bool:
        if run.status is Status.WAITING:
            return await self.mover.waits.recheck(run)
        policy = self.kinds.approval_policy(run)
        plan = moves.rescue(run, interrupt_budget=self.settings.interrupt_budget, policy=policy)
        if plan is None:
            # A deadline where nothing times out is stale (left by a race): clear it.
            cleared = await self.store.update(
                run.id, Expect(frozenset({run.status})), {"deadline_at": None}
            )
            return cleared is not None
        action, reason, extra = plan
        fence = Lease(run.id, run.attempt, run.lease_token or "") if run.status in LEASED else None
        try:
            moved = await self.mover.move(
                run, action, SYSTEM, reason=reason, extra=extra, fence=fence
            )
        except IllegalTransition:
            return False
        return moved is not None
