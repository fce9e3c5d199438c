"""The in-memory store: the reference backend, for tests and embedding.

Every primitive runs without awaiting inside it, so on one event loop each is atomic by
construction (no lock needed). The store is not shared across processes or threads.
"""

from __future__ import annotations

import builtins
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from ..domain.keys import occupancy, pick_claimable
from ..domain.models import (
    Expect,
    Lease,
    LogEntry,
    NewLogEntry,
    Run,
    RunQuery,
    WorkerInfo,
    replace,
)
from ..domain.moves import claimed
from ..domain.states import TERMINAL, Status
from .base import LogHead, Store, check_changes, fence_expect, materialize


class MemoryStore(Store):
    def __init__(self) -> None:
        self._runs: dict[UUID, Run] = {}
        self._logs: dict[UUID, builtins.list[LogEntry]] = {}
        self._scopes: dict[str, UUID] = {}
        self._seq = 0
        self._workers: dict[str, WorkerInfo] = {}

    # -- helpers ---------------------------------------------------------------------------
    def _append(
        self, run: Run, entries: Sequence[NewLogEntry]
    ) -> tuple[Run, builtins.list[LogEntry]]:
        if not entries:
            return run, []
        now = datetime.now(UTC)
        stored = materialize(run, entries, run.log_seq, now)
        self._logs.setdefault(run.id, []).extend(stored)
        run = replace(run, log_seq=run.log_seq + len(stored))
        self._runs[run.id] = run
        return run, stored

    # -- primitives ------------------------------------------------------------------------
    async def insert(self, run: Run, entries: Sequence[NewLogEntry]) -> tuple[Run, bool]:
        if run.idempotency_scope is not None:
            holder = self._scopes.get(run.idempotency_scope)
            if holder is not None:
                return self._runs[holder], False
        if run.id in self._runs:
            raise ValueError(f"run {run.id} exists")
        self._seq += 1
        run = replace(run, seq=self._seq, log_seq=0)
        self._runs[run.id] = run
        self._logs[run.id] = []
        if run.idempotency_scope is not None:
            self._scopes[run.idempotency_scope] = run.id
        run, _ = self._append(run, entries)
        return run, True

    async def insert_many(
        self, items: Sequence[tuple[Run, Sequence[NewLogEntry]]]
    ) -> builtins.list[tuple[Run, bool]]:
        # Checked first, so a bad id writes nothing; no await in between: one critical section.
        ids = [run.id for run, _ in items]
        if len(set(ids)) != len(ids) or any(i in self._runs for i in ids):
            raise ValueError("insert_many: a run id exists or repeats within the batch")
        return [await self.insert(run, entries) for run, entries in items]

    async def get(self, run_id: UUID) -> Run | None:
        return self._runs.get(run_id)

    async def list(self, query: RunQuery) -> tuple[builtins.list[Run], int]:
        matching = [
            r
            for r in self._runs.values()
            if (query.action_id is None or r.action_id == query.action_id)
            and (query.kind is None or r.kind == query.kind)
            and (query.status is None or r.status is query.status)
            and (
                query.parent_action_run_id is None
                or r.parent_action_run_id == query.parent_action_run_id
            )
            and (query.tenant is None or r.tenant == query.tenant)
        ]
        matching.sort(key=lambda r: r.seq, reverse=not query.oldest_first)
        return matching[query.offset : query.offset + query.limit], len(matching)

    async def update(
        self,
        run_id: UUID,
        expect: Expect,
        changes: Mapping[str, Any],
        entries: Sequence[NewLogEntry] = (),
    ) -> Run | None:
        check_changes(changes)
        run = self._runs.get(run_id)
        if run is None or not expect.matches(run):
            return None
        new = replace(run, **changes)
        if new.idempotency_scope != run.idempotency_scope:
            if run.idempotency_scope is not None:
                self._scopes.pop(run.idempotency_scope, None)
            if new.idempotency_scope is not None:
                if new.idempotency_scope in self._scopes:
                    raise ValueError("idempotency scope already held")
                self._scopes[new.idempotency_scope] = run_id
        self._runs[run_id] = new
        new, _ = self._append(new, entries)
        return new

    async def delete(self, run_id: UUID, statuses: Collection[Status]) -> bool:
        run = self._runs.get(run_id)
        if run is None or run.status not in statuses:
            return False
        del self._runs[run_id]
        self._logs.pop(run_id, None)
        if run.idempotency_scope is not None:
            self._scopes.pop(run.idempotency_scope, None)
        return True

    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        now: datetime,
        lease: timedelta,
        kinds: Collection[str] | None = None,
    ) -> builtins.list[Run]:
        due = sorted(
            (
                r
                for r in self._runs.values()
                if r.status is Status.QUEUED and (r.not_before is None or r.not_before <= now)
            ),
            key=lambda r: r.seq,
        )
        held = occupancy(self._runs.values(), {r.concurrency_key for r in due if r.concurrency_key})
        out: builtins.list[Run] = []
        for run in pick_claimable(due, held, limit, kinds):
            new, entry = claimed(run, worker_id, now, lease)
            self._runs[run.id] = new
            new, _ = self._append(new, [entry])
            out.append(new)
        return out

    async def heartbeat(
        self, leases: Sequence[Lease], *, now: datetime, lease: timedelta
    ) -> dict[UUID, Status | None]:
        out: dict[UUID, Status | None] = {}
        for held in leases:
            run = self._runs.get(held.run_id)
            if run is None or not fence_expect(held).matches(run):
                out[held.run_id] = None
                continue
            self._runs[run.id] = replace(run, deadline_at=now + lease)
            out[held.run_id] = run.status
        return out

    async def append_logs(
        self, run_id: UUID, entries: Sequence[NewLogEntry], *, fence: Lease | None = None
    ) -> builtins.list[LogEntry] | None:
        run = self._runs.get(run_id)
        if run is None or (fence is not None and not fence_expect(fence).matches(run)):
            return None
        _, stored = self._append(run, entries)
        return stored

    async def read_logs(self, run_id: UUID, *, after: int, limit: int) -> builtins.list[LogEntry]:
        logs = self._logs.get(run_id, [])
        # ids are 1..n in list order, so the entry with id `after` sits at index after - 1.
        start = max(0, after)
        return logs[start : start + limit]

    async def log_heads(self, run_ids: Collection[UUID]) -> dict[UUID, LogHead]:
        runs = (self._runs.get(run_id) for run_id in run_ids)
        return {r.id: LogHead(r.log_seq, r.status) for r in runs if r is not None}

    async def due(self, *, now: datetime, limit: int) -> builtins.list[Run]:
        found = [
            r
            for r in self._runs.values()
            if r.deadline_at is not None and r.deadline_at <= now and r.status not in TERMINAL
        ]
        found.sort(key=lambda r: (r.deadline_at, r.seq))
        return found[:limit]

    async def occupancy(self, keys: Collection[str]) -> dict[str, int]:
        return occupancy(self._runs.values(), keys)

    async def save_worker(self, worker: WorkerInfo) -> None:
        self._workers[worker.id] = worker

    async def delete_workers(
        self, *, ids: Collection[str] = (), seen_before: datetime | None = None
    ) -> int:
        gone = [
            w.id
            for w in self._workers.values()
            if w.id in ids or (seen_before is not None and w.last_seen_at < seen_before)
        ]
        for worker_id in gone:
            del self._workers[worker_id]
        return len(gone)

    async def list_workers(self, *, seen_since: datetime) -> builtins.list[WorkerInfo]:
        live = [w for w in self._workers.values() if w.last_seen_at >= seen_since]
        return sorted(live, key=lambda w: (w.started_at, w.id))
