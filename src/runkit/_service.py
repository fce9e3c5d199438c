"""``Runkit``: the in-process API. Clients' actions and workers' reports both go through here,
and every move of a run is a lookup in the state table followed by a compare-and-set."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self
from uuid import UUID, uuid4

import attrs
import pluggy

from . import _inputs
from ._clock import Clock, SystemClock
from ._display import display_status
from ._errors import (
    IdempotencyConflict,
    IllegalTransition,
    LeaseLost,
    NotAllowed,
    RunNotFound,
    ValidationError,
)
from ._idempotency import IdempotencyPolicy, fingerprint, scope_key
from ._kinds import ApprovalPolicy, Kind, KindRegistry
from ._models import (
    SYSTEM,
    Created,
    Expect,
    Lease,
    LogEntry,
    LogPage,
    NewLogEntry,
    Principal,
    Run,
    RunPage,
    RunQuery,
    UserProfile,
)
from ._plugins import collect_kinds, make_plugin_manager
from ._states import LEASED, TERMINAL, Action, Status, _NoTransition, allowed_actions, next_status
from ._storage_urls import open_store
from ._wakeups import Wakeups
from .storage.base import Store, fence_expect, status_entry

#: How often a compare-and-set that lost a race is re-evaluated before giving up.
_CAS_ATTEMPTS = 20


@attrs.frozen
class Settings:
    """Engine timing and budgets. Tests shrink them; see docs/configuration.md."""

    lease: timedelta = timedelta(seconds=30)
    heartbeat: timedelta = timedelta(seconds=10)
    rescue_interval: timedelta = timedelta(seconds=2)
    #: Lease losses a run survives; the next one fails it with reason ``crashed``.
    interrupt_budget: int = 5
    #: Per-key concurrency limits; a key not listed has limit 1.
    concurrency_limits: Mapping[str, int] = attrs.field(factory=dict)


class Runkit:
    """runkit in-process. ``async with Runkit("sqlite:///runs.db") as rk: ...``

    ``store`` is a :class:`~runkit.storage.base.Store` or a URL: ``memory://``,
    ``sqlite:///path.db`` (the embedded default, created and migrated on open),
    ``postgresql+psycopg://...``, or a scheme a plugin registered.
    """

    def __init__(
        self,
        store: Store | str = "sqlite:///runkit.db",
        *,
        plugins: Iterable[object] = (),
        kinds: Iterable[Kind] = (),
        autoload_plugins: bool | None = None,
        clock: Clock | None = None,
        idempotency: IdempotencyPolicy | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.plugins: pluggy.PluginManager = make_plugin_manager(plugins, autoload=autoload_plugins)
        self.kinds: KindRegistry = collect_kinds(self.plugins)
        for kind in kinds:
            self.kinds.register(kind, owner="Runkit(kinds=...)")
        self.store: Store = open_store(store, self.plugins) if isinstance(store, str) else store
        self.clock: Clock = clock or SystemClock()
        self.idempotency = idempotency or IdempotencyPolicy()
        self.settings = settings or Settings()
        self.wakeups = Wakeups()

    async def __aenter__(self) -> Self:
        await self.store.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.store.close()

    # ---------------------------------------------------------------- reading -------------
    async def get(self, run_id: UUID | str) -> Run:
        rid = _inputs.run_id(run_id)
        run = await self.store.get(rid)
        if run is None:
            raise RunNotFound(rid)
        return run

    async def list(
        self,
        *,
        action_id: str | None = None,
        kind: str | None = None,
        status: Status | str | None = None,
        parent_action_run_id: UUID | str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> RunPage:
        query = RunQuery(
            action_id=_inputs.optional_str(action_id, ("query", "action_id")),
            kind=_inputs.optional_str(kind, ("query", "kind")),
            status=_inputs.status(status),
            parent_action_run_id=_inputs.optional_uuid(
                parent_action_run_id, ("query", "parent_action_run_id")
            ),
            limit=_inputs.bounded_int(limit, ("query", "limit"), 1, 100),
            offset=_inputs.bounded_int(offset, ("query", "offset"), 0),
        )
        runs, total = await self.store.list(query)
        users = await self.resolve_users(runs)
        return RunPage(tuple(runs), total, query.limit, query.offset, users)

    async def resolve_users(self, runs: Sequence[Run]) -> dict[str, UserProfile]:
        ids = sorted(
            {
                r.trigger_source_id
                for r in runs
                if r.trigger_source_type == "user" and r.trigger_source_id
            }
        )
        if not ids:
            return {}
        users: dict[str, UserProfile] = {}
        for answer in self.plugins.hook.runkit_resolve_users(user_ids=ids):
            if inspect.isawaitable(answer):
                answer = await answer
            for uid, profile in (answer or {}).items():
                if uid in ids:
                    users[uid] = profile
        return users

    async def logs(
        self, run_id: UUID | str, *, after: str | None = None, limit: int = 100
    ) -> LogPage:
        rid = _inputs.run_id(run_id)
        limit = _inputs.bounded_int(limit, ("query", "limit"), 1, 500)
        after_seq = _inputs.cursor(after, rid)
        if await self.store.get(rid) is None:
            raise RunNotFound(rid)
        entries = await self.store.read_logs(rid, after=after_seq, limit=limit + 1)
        has_more = len(entries) > limit
        entries = entries[:limit]
        next_cursor = entries[-1].cursor if entries else (after or None)
        return LogPage(tuple(entries), has_more, next_cursor)

    async def read_log_entries(
        self, run_id: UUID, after: int, limit: int
    ) -> builtins.list[LogEntry]:
        """Raw keyset read for streams (no validation; ``after`` is a log id)."""
        return await self.store.read_logs(run_id, after=after, limit=limit)

    async def display_status(self, run: Run) -> str:
        occupancy = None
        if run.status is Status.QUEUED and run.concurrency_key is not None:
            occupancy = await self.store.occupancy([run.concurrency_key])
        return self.display_status_with(run, occupancy)

    def display_status_with(self, run: Run, occupancy: Mapping[str, int] | None) -> str:
        kind = self.kinds.get(run.kind)
        policy = self.approval_policy(run) if run.status is Status.AWAITING_APPROVAL else None
        return display_status(
            run,
            now=self.clock.now(),
            occupancy=occupancy,
            kind=kind,
            required_approvals=policy.required if policy else None,
        )

    async def display_statuses(self, runs: Sequence[Run]) -> builtins.list[str]:
        """Display statuses for a page of runs with one occupancy query for all keys."""
        keys = {r.concurrency_key for r in runs if r.status is Status.QUEUED and r.concurrency_key}
        occupancy = await self.store.occupancy(keys) if keys else {}
        return [self.display_status_with(r, occupancy) for r in runs]

    # ---------------------------------------------------------------- creating ------------
    async def create(
        self,
        kind: str,
        definition: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
        parent_action_run_id: UUID | str | None = None,
        action_id: str | None = None,
        principal: Principal | None = None,
        execute: bool = False,
    ) -> Created:
        """Create a run in ``pending`` (``execute=True``: straight to ``queued``, one commit).

        With an ``idempotency_key`` already used in its scope: the same request returns the
        existing run (``created`` False); a different one raises IdempotencyConflict.
        """
        spec = self.kinds.require(kind)
        definition = {} if definition is None else definition
        spec.validate(definition)
        idem = _inputs.key(idempotency_key, ("body", "idempotencyKey"))
        ckey = _inputs.key(concurrency_key, ("body", "concurrencyKey"))
        action_id = _inputs.optional_str(action_id, ("body", "actionId"))
        parent = _inputs.optional_uuid(parent_action_run_id, ("body", "parentActionRunId"))
        if parent is not None and await self.store.get(parent) is None:
            raise ValidationError.at(
                ("body", "parentActionRunId"), f"parent run {parent} not found", "not_found"
            )
        limit = concurrency_limit
        if limit is None:
            limit = self.settings.concurrency_limits.get(ckey, 1) if ckey else 1
        limit = _inputs.bounded_int(limit, ("body", "concurrencyLimit"), 1, 10_000)
        now = self.clock.now()
        definition = dict(definition)
        fp = fingerprint(spec.name, definition, parent, action_id) if idem else None
        run = Run(
            id=uuid4(),
            kind=spec.name,
            status=Status.QUEUED if execute else Status.PENDING,
            created_at=now,
            updated_at=now,
            definition=definition,
            action_id=action_id,
            idempotency_key=idem,
            concurrency_key=ckey,
            concurrency_limit=limit,
            parent_action_run_id=parent,
            trigger_method=principal.trigger_method if principal else "api",
            trigger_source_type=principal.trigger_source_type if principal else None,
            trigger_source_id=principal.id if principal else None,
            idempotency_scope=scope_key(self.idempotency, idem, spec.name, principal)
            if idem
            else None,
            fingerprint=fp,
        )
        actor = principal.id if principal else None
        entries = [status_entry(None, Status.PENDING, "created", actor, now)]
        if execute:
            entries.append(status_entry(Status.PENDING, Status.QUEUED, "execute", actor, now))
        for _ in range(_CAS_ATTEMPTS):
            stored, created = await self.store.insert(run, entries)
            if created:
                if execute:
                    self.wakeups.work_available()
                return Created(stored, True)
            assert idem is not None
            if self._idempotency_expired(stored, now):
                await self.store.update(
                    stored.id,
                    Expect(frozenset(Status), lease_token=None),
                    {"idempotency_scope": None},
                )
                continue  # the key is free again: insert anew
            if stored.fingerprint != fp:
                raise IdempotencyConflict(idem, stored.id)
            return Created(stored, False)
        raise RuntimeError("idempotency key kept changing hands")  # pragma: no cover

    def _idempotency_expired(self, run: Run, now: datetime) -> bool:
        ttl = self.idempotency.ttl
        return ttl is not None and run.created_at + ttl <= now

    # ---------------------------------------------------------------- client actions ------
    async def execute(self, run_id: UUID | str, *, principal: Principal | None = None) -> Run:
        run = await self._act(run_id, Action.EXECUTE, principal, reason="execute")
        self.wakeups.work_available()
        return run

    async def pause(self, run_id: UUID | str, *, principal: Principal | None = None) -> Run:
        rid = _inputs.run_id(run_id)
        current = await self.get(rid)
        kind = self.kinds.get(current.kind)
        if current.status is Status.RUNNING and kind is not None and not kind.pausable:
            raise IllegalTransition(
                rid,
                current.status,
                Action.PAUSE,
                [a for a in allowed_actions(current.status) if a is not Action.PAUSE],
            )
        return await self._act(rid, Action.PAUSE, principal, reason="user")

    async def resume(self, run_id: UUID | str, *, principal: Principal | None = None) -> Run:
        run = await self._act(run_id, Action.RESUME, principal, reason="user")
        self.wakeups.work_available()
        return run

    async def cancel(
        self, run_id: UUID | str, *, principal: Principal | None = None, reason: str = "user"
    ) -> Run:
        run = await self._act(run_id, Action.CANCEL, principal, reason=reason)
        await self._cascade_cancel(run.id, principal)
        return run

    async def _cascade_cancel(self, parent: UUID, principal: Principal | None) -> None:
        offset = 0
        while True:
            children, total = await self.store.list(
                RunQuery(parent_action_run_id=parent, limit=100, offset=offset)
            )
            for child in children:
                if child.status in TERMINAL or child.status is Status.CANCELLING:
                    continue
                try:
                    await self._act(child.id, Action.CANCEL, principal, reason="parent_cancelled")
                except (IllegalTransition, RunNotFound):
                    continue  # it finished or vanished meanwhile
                await self._cascade_cancel(child.id, principal)
            offset += len(children)
            if offset >= total or not children:
                return

    async def retry(self, run_id: UUID | str, *, principal: Principal | None = None) -> Run:
        run = await self._act(run_id, Action.RETRY, principal, reason="manual retry")
        self.wakeups.work_available()
        return run

    async def delete(self, run_id: UUID | str, *, principal: Principal | None = None) -> None:
        rid = _inputs.run_id(run_id)
        for _ in range(_CAS_ATTEMPTS):
            run = await self.get(rid)
            self._target(run, Action.DELETE)
            if await self.store.delete(rid, {run.status}):
                self.wakeups.logs_appended(rid)
                self.wakeups.forget_logs(rid)
                return
        raise IllegalTransition(rid, run.status, Action.DELETE, allowed_actions(run.status))

    def approval_policy(self, run: Run) -> ApprovalPolicy | None:
        kind = self.kinds.get(run.kind)
        if kind is None or kind.approval is None:
            return None
        return kind.approval(kind.validate(run.definition))

    async def approve(
        self, run_id: UUID | str, *, principal: Principal | None = None, reason: str | None = None
    ) -> Run:
        return await self._decide(run_id, "approve", principal, reason)

    async def reject(
        self, run_id: UUID | str, *, principal: Principal | None = None, reason: str | None = None
    ) -> Run:
        return await self._decide(run_id, "reject", principal, reason)

    async def _decide(
        self, run_id: UUID | str, decision: str, principal: Principal | None, reason: str | None
    ) -> Run:
        rid = _inputs.run_id(run_id)
        reason = _inputs.optional_str(reason, ("body", "reason"))
        action = Action.APPROVE if decision == "approve" else Action.REJECT
        for _ in range(_CAS_ATTEMPTS):
            run = await self.get(rid)
            policy = self.approval_policy(run)
            if policy is None:
                raise IllegalTransition(rid, run.status, action, allowed_actions(run.status))
            self._target(run, action)  # 409 unless awaiting approval
            who = principal or SYSTEM
            if principal is not None and principal.kind != "system":
                if not policy.may_decide(principal.id, principal.groups):
                    raise NotAllowed(f"{principal.id} may not {decision} run {rid}")
                if not policy.allow_self_approval and principal.id == run.trigger_source_id:
                    raise NotAllowed(f"{principal.id} created run {rid} and may not decide it")
                if any(d.get("by") == principal.id for d in run.approvals):
                    raise NotAllowed(f"{principal.id} has already decided run {rid}")
            now = self.clock.now()
            record = {"by": who.id, "decision": decision, "reason": reason, "at": _iso(now)}
            approvals = (*run.approvals, record)
            approved = sum(1 for d in approvals if d["decision"] == "approve")
            if decision == "approve" and approved < policy.required:
                new = await self.store.update(
                    rid,
                    Expect(frozenset({run.status})),
                    {"approvals": approvals, "updated_at": now},
                    [
                        NewLogEntry(
                            f"approval {approved} of {policy.required} by {who.id}",
                            event="approval.recorded",
                            data=record,
                            occurred_at=now,
                        )
                    ],
                )
            else:
                extra: dict[str, Any] = {"approvals": approvals}
                if decision == "approve":
                    extra["result"] = {"approved": True, "approvals": list(approvals)}
                new = await self._move(run, action, who, reason=decision, extra=extra)
            if new is not None:
                self.wakeups.logs_appended(rid)
                return new
        raise IllegalTransition(rid, run.status, action, allowed_actions(run.status))

    # ---------------------------------------------------------------- the machinery -------
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
        if action is Action.COMPLETE:
            # A success is the outcome; earlier attempts' errors stay in the log only.
            changes["error"] = None
        if target is Status.QUEUED and action is not Action.REQUEUE:
            changes["not_before"] = None
        return changes

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
        """One compare-and-set of ``run`` by ``action``; None if the row changed meanwhile.
        ``notes`` are log entries written in the same transaction, before the audit entry."""
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
        new = await self.store.update(run.id, expect, changes, [*notes, entry])
        if new is not None:
            self.wakeups.logs_appended(run.id)
            if run.status in LEASED and target not in LEASED:
                self.wakeups.work_available()  # a concurrency slot was freed
        return new

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
        for _ in range(_CAS_ATTEMPTS):
            run = await self.get(rid)
            new = await self._move(run, action, principal, reason=reason, extra=extra)
            if new is not None:
                return new
        raise IllegalTransition(rid, run.status, action, allowed_actions(run.status))

    # ---------------------------------------------------------------- worker operations ---
    async def claim(
        self, worker_id: str, limit: int, *, kinds: Iterable[str] | None = None
    ) -> builtins.list[Run]:
        runs = await self.store.claim(
            worker_id,
            limit,
            now=self.clock.now(),
            lease=self.settings.lease,
            kinds=None if kinds is None else frozenset(kinds),
        )
        for run in runs:
            self.wakeups.logs_appended(run.id, local_only=True)
        return runs

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
    ) -> Run:
        """A fenced worker move: raises LeaseLost if the worker no longer holds the run."""
        for _ in range(_CAS_ATTEMPTS):
            run = await self.store.get(lease.run_id)
            if run is None or not fence_expect(lease).matches(run):
                raise LeaseLost(lease.run_id, lease.attempt)
            new = await self._move(
                run, action, None, reason=reason, extra=extra, fence=lease, notes=notes
            )
            if new is not None:
                return new
        raise LeaseLost(lease.run_id, lease.attempt)

    async def complete(self, lease: Lease, result: Mapping[str, Any] | None) -> Run:
        return await self._report(
            lease, Action.COMPLETE, reason="completed", extra={"result": dict(result or {})}
        )

    async def fail(
        self,
        lease: Lease,
        error: Mapping[str, Any],
        *,
        retry_at: datetime | None = None,
        reason: str = "error",
    ) -> Run:
        """A failed attempt: back to the queue until ``retry_at`` if given (the engine decides
        from the kind's retry policy), else ``failed`` with ``reason``."""
        note = NewLogEntry(
            f"attempt {lease.attempt} failed: {str(error.get('message', ''))[:200]}",
            level="error",
            event="attempt.failed",
            data={"error": dict(error), "retryAt": _iso(retry_at) if retry_at else None},
            occurred_at=self.clock.now(),
            attempt=lease.attempt,
        )
        if retry_at is not None:
            run = await self.store.get(lease.run_id)
            retries = (run.retry_count if run else 0) + 1
            return await self._report(
                lease,
                Action.REQUEUE,
                reason="retrying",
                extra={"error": dict(error), "not_before": retry_at, "retry_count": retries},
                notes=[note],
            )
        return await self._report(
            lease, Action.FAIL, reason=reason, extra={"error": dict(error)}, notes=[note]
        )

    async def park(self, lease: Lease, *, timeout: timedelta | None) -> Run:
        """Park an approval gate: no worker, no slot, a deadline if the policy has one."""
        deadline = self.clock.now() + timeout if timeout is not None else None
        run = await self._report(lease, Action.PARK, reason="awaiting approval")
        if deadline is not None and run.status is Status.AWAITING_APPROVAL:
            updated = await self.store.update(
                run.id, Expect(frozenset({Status.AWAITING_APPROVAL})), {"deadline_at": deadline}
            )
            run = updated or run
        return run

    async def stopped(self, lease: Lease) -> Run:
        """The executor stopped after a cancel or pause request."""
        return await self._report(lease, Action.STOPPED, reason="stopped")

    async def release(self, lease: Lease) -> Run:
        """Graceful shutdown: hand the run back without counting an interrupt."""
        return await self._report(lease, Action.RELEASE, reason="worker shutdown")

    async def append_logs(
        self, lease: Lease, entries: Sequence[NewLogEntry]
    ) -> builtins.list[LogEntry]:
        stored = await self.store.append_logs(lease.run_id, entries, fence=lease)
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
    ) -> Run:
        changes: dict[str, Any] = {"progress": dict(progress), "updated_at": self.clock.now()}
        if checkpoint is not None:
            changes["checkpoint"] = dict(checkpoint)
        new = await self.store.update(lease.run_id, fence_expect(lease), changes)
        if new is None:
            raise LeaseLost(lease.run_id, lease.attempt)
        return new

    async def rescue(self, limit: int = 500) -> int:
        """Act on every run whose deadline passed: expired leases are interrupted (or fail
        ``crashed`` when the budget is spent); approvals time out per their policy. Returns
        how many runs were moved. Pages through all due runs, so none is starved."""
        moved = 0
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
        if run.status in LEASED:
            lease = Lease(run.id, run.attempt, run.lease_token or "")
            spent = run.interrupt_count + 1 > self.settings.interrupt_budget
            action = Action.CRASH if spent and run.status is Status.RUNNING else Action.INTERRUPT
            extra: dict[str, Any] = {}
            if action is Action.CRASH:
                extra["error"] = {
                    "type": "WorkerLost",
                    "message": f"worker lost {run.interrupt_count + 1} times",
                    "reason": "crashed",
                }
            reason = "crashed" if action is Action.CRASH else "lease expired"
            try:
                return (
                    await self._move(run, action, SYSTEM, reason=reason, extra=extra, fence=lease)
                    is not None
                )
            except IllegalTransition:
                return False
        if run.status is Status.AWAITING_APPROVAL:
            policy = self.approval_policy(run)
            outcome = policy.on_timeout if policy else "reject"
            action = {"approve": Action.APPROVE, "fail": Action.TIME_OUT}.get(
                outcome, Action.REJECT
            )
            extra = {}
            if action is Action.TIME_OUT:
                extra["error"] = {"type": "ApprovalTimeout", "message": "approval timed out"}
            return (
                await self._move(run, action, SYSTEM, reason="approval_timeout", extra=extra)
                is not None
            )
        # A deadline on any other status is stale (left by a race); clear it.
        return (
            await self.store.update(run.id, Expect(frozenset({run.status})), {"deadline_at": None})
            is not None
        )


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
