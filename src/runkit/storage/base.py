"""The storage contract: eleven atomic primitives for runs and logs (and three batched ones
with a default: an insert, an update, and a read of log heads), three for the worker
registry, and helpers every backend shares.

A backend stores runs and their log entries and performs each primitive below atomically.
It decides nothing: which transition is legal, which idempotency key wins, what a claimed run
looks like are decided by the core (``runkit.domain``) and by the helpers at the bottom of
this module, which every backend calls so that they agree to the letter.

Guarantees every backend gives (the conformance suite in ``runkit.testing`` checks them):

* **Atomic.** Each primitive commits entirely or not at all, including the log entries it
  appends.
* **Compare-and-set.** :meth:`Store.update` changes a row only if :class:`~runkit.Expect`
  matches it at the moment of writing, so a late worker (stale attempt or lease token) or a
  racing API call changes zero rows.
* **Keys in the database.** At most one run holds an ``idempotency_scope``; two concurrent
  inserts with the same scope yield one row and one ``(existing, False)``.
* **Concurrency slots from rows.** :meth:`Store.claim` counts the key's leased runs in the
  same transaction as the claim, so no interleaving of claimers (tasks, processes, machines)
  lets more than ``concurrency_limit`` runs of a key hold a lease at once.
* **Monotonic log ids.** Entry ids of a run are 1, 2, 3, ... in commit order, never reused
  (``log_seq`` on the run row), and :meth:`Store.read_logs` is a keyset read.
"""

from __future__ import annotations

import abc
import builtins
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import attrs

from ..domain.models import Expect, Lease, LogEntry, NewLogEntry, Run, RunQuery, WorkerInfo
from ..domain.states import LEASED, Status

#: Run fields a store may be asked to change through :meth:`Store.update`.
MUTABLE_FIELDS = frozenset(
    {
        "status",
        "updated_at",
        "progress",
        "result",
        "error",
        "retry_count",
        "interrupt_count",
        "started_at",
        "completed_at",
        "status_reason",
        "attempt",
        "lease_token",
        "worker_id",
        "deadline_at",
        "not_before",
        "idempotency_scope",
        "checkpoint",
        "approvals",
        "wait",
    }
)


@attrs.frozen
class Update:
    """One compare-and-set of :meth:`Store.update_many`."""

    run_id: UUID
    expect: Expect
    changes: Mapping[str, Any]
    entries: Sequence[NewLogEntry] = ()


@attrs.frozen
class LogHead:
    """Where a run's log ends and what status the run has, as :meth:`Store.log_heads` reads
    them: what a log stream compares to decide whether there is anything new to read."""

    log_seq: int
    status: Status


class Store(abc.ABC):
    """A storage backend. Use it as ``async with store:``; the primitives are valid inside."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Acquire resources (connections, schema checks). Called once before use."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what :meth:`open` acquired. Never disposes an engine the host handed in."""

    @abc.abstractmethod
    async def insert(self, run: Run, entries: Sequence[NewLogEntry]) -> tuple[Run, bool]:
        """Insert ``run`` (its ``seq`` is assigned here) with ``entries`` as its first log
        entries and return ``(stored, True)``.

        If ``run.idempotency_scope`` is set and another run holds it, insert nothing and
        return ``(that_run, False)``. Races between concurrent inserts are settled by a unique
        index (or an equivalent single critical section), never by check-then-insert.
        Raises ValueError if a run with ``run.id`` exists (ids are the core's uuid4s).
        """

    async def insert_many(
        self, items: Sequence[tuple[Run, Sequence[NewLogEntry]]]
    ) -> builtins.list[tuple[Run, bool]]:
        """:meth:`insert` for each ``(run, entries)`` of ``items``, one result each, in
        order. An item whose idempotency scope is held (by a stored run or by an earlier
        item of the batch) inserts nothing and answers ``(holder, False)``.

        Backends should override this to write the batch in one transaction (a crash then
        leaves all of it or none); this default inserts one item after another. Raises
        ValueError if a run id exists or repeats, before writing anything.
        """
        ids = [run.id for run, _ in items]
        if len(set(ids)) != len(ids):
            raise ValueError("insert_many: a run id repeats within the batch")
        return [await self.insert(run, entries) for run, entries in items]

    @abc.abstractmethod
    async def get(self, run_id: UUID) -> Run | None:
        """The run, or None."""

    @abc.abstractmethod
    async def list(self, query: RunQuery) -> tuple[builtins.list[Run], int]:
        """Runs matching every filter of ``query``, newest first (``seq`` descending; in
        ``seq`` order with ``query.oldest_first``), the page ``query.offset`` ..
        ``+query.limit``, and the total number matching."""

    @abc.abstractmethod
    async def update(
        self,
        run_id: UUID,
        expect: Expect,
        changes: Mapping[str, Any],
        entries: Sequence[NewLogEntry] = (),
    ) -> Run | None:
        """Compare-and-set: if the run exists and ``expect`` matches it, apply ``changes``
        (keys from :data:`MUTABLE_FIELDS`), append ``entries`` and return the new run;
        otherwise change nothing and return None. Raises ValueError for an unknown field, or
        for an ``idempotency_scope`` another run holds (the core only ever clears one)."""

    async def update_many(self, updates: Sequence[Update]) -> builtins.list[Run | None]:
        """Several :meth:`update` calls, one result each, in order. Each item is its own
        compare-and-set: one failing changes nothing of that item and nothing of the others.

        Backends should override this to write the batch in one transaction (it is how
        workers save commits); this default calls :meth:`update` for each item.
        """
        return [await self.update(u.run_id, u.expect, u.changes, u.entries) for u in updates]

    @abc.abstractmethod
    async def delete(self, run_id: UUID, statuses: Collection[Status]) -> bool:
        """Delete the run and its log entries if its status is in ``statuses``. Returns
        whether a row was deleted. Deleting frees its idempotency key."""

    @abc.abstractmethod
    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        now: datetime,
        lease: timedelta,
        kinds: Collection[str] | None = None,
    ) -> builtins.list[Run]:
        """Move up to ``limit`` queued runs whose ``not_before`` has passed (and whose kind is
        in ``kinds``, if given) to running, in ``seq`` order, and return them as claimed.

        A run with a concurrency key is claimed only while fewer than its
        ``concurrency_limit`` runs of that key are leased (status in ``LEASED``), counted in
        the same transaction, and only if no earlier due queued run of its key is left
        behind (FIFO within a key). Each claimed run is transformed by :func:`claimed`.
        """

    @abc.abstractmethod
    async def heartbeat(
        self, leases: Sequence[Lease], *, now: datetime, lease: timedelta
    ) -> dict[UUID, Status | None]:
        """Extend every lease still held (status leased, attempt and token matching) to
        ``now + lease`` and return, for each lease given, the run's status, or None if the
        lease is lost (other attempt or token, no longer leased, or deleted)."""

    @abc.abstractmethod
    async def append_logs(
        self, run_id: UUID, entries: Sequence[NewLogEntry], *, fence: Lease | None = None
    ) -> builtins.list[LogEntry] | None:
        """Append ``entries`` with the next ids of the run and return them as stored. With a
        ``fence``, append only while that lease is held (status leased, attempt and token
        match). None if the run is gone or the fence failed: nothing was written."""

    @abc.abstractmethod
    async def read_logs(self, run_id: UUID, *, after: int, limit: int) -> builtins.list[LogEntry]:
        """Up to ``limit`` entries with id > ``after``, in id order (a keyset read)."""

    async def log_heads(self, run_ids: Collection[UUID]) -> dict[UUID, LogHead]:
        """The :class:`LogHead` of each run of ``run_ids`` that exists; a run that does not
        is left out. Each head is read atomically (``log_seq`` and ``status`` of one row
        version), the heads of different runs need not be one snapshot.

        Log streams ask this once an interval for every run they follow, so backends should
        override it to read many runs in one query (in chunks, for large sets); this default
        calls :meth:`get` for each run.
        """
        heads: dict[UUID, LogHead] = {}
        for run_id in set(run_ids):
            run = await self.get(run_id)
            if run is not None:
                heads[run_id] = LogHead(run.log_seq, run.status)
        return heads

    @abc.abstractmethod
    async def due(self, *, now: datetime, limit: int) -> builtins.list[Run]:
        """Non-terminal runs whose ``deadline_at`` <= ``now``, earliest deadline first."""

    @abc.abstractmethod
    async def occupancy(self, keys: Collection[str]) -> dict[str, int]:
        """For each key, how many runs with that concurrency key are leased now."""

    # -- the worker registry: who can execute what (display and operations, not claims) ----
    @abc.abstractmethod
    async def save_worker(self, worker: WorkerInfo) -> None:
        """Insert the registry row of ``worker.id``, or replace it whole (a heartbeat)."""

    @abc.abstractmethod
    async def delete_workers(
        self, *, ids: Collection[str] = (), seen_before: datetime | None = None
    ) -> int:
        """Delete the rows whose id is in ``ids`` and, if given, those whose
        ``last_seen_at`` < ``seen_before`` (expired). Returns how many rows went."""

    @abc.abstractmethod
    async def list_workers(self, *, seen_since: datetime) -> builtins.list[WorkerInfo]:
        """Workers whose ``last_seen_at`` >= ``seen_since``, in ``started_at`` then ``id``
        order."""


# --- helpers every backend uses, so that they agree ----------------------------------------


def fence_expect(lease: Lease) -> Expect:
    return Expect(statuses=LEASED, attempt=lease.attempt, lease_token=lease.token)


def materialize(
    run: Run, entries: Sequence[NewLogEntry], start_seq: int, now: datetime
) -> builtins.list[LogEntry]:
    """Give ``entries`` the ids ``start_seq + 1 ...`` and fill in defaults from ``run``."""
    return materialize_for(run.id, run.attempt, entries, start_seq, now)


def materialize_for(
    run_id: UUID, attempt: int, entries: Sequence[NewLogEntry], start_seq: int, now: datetime
) -> builtins.list[LogEntry]:
    """:func:`materialize` from the two values it reads of the run (its id, and the attempt
    for entries without one), for stores that append without reading the whole row."""
    return [
        LogEntry(
            run_id=run_id,
            seq=start_seq + i,
            attempt=e.attempt if e.attempt is not None else attempt,
            level=e.level,
            message=e.message,
            occurred_at=e.occurred_at or now,
            event=e.event,
            data=dict(e.data),
            worker_id=e.worker_id,
        )
        for i, e in enumerate(entries, start=1)
    ]


def check_changes(changes: Mapping[str, Any]) -> None:
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(f"fields not changeable through update(): {sorted(unknown)}")
