"""``Waits``: waking runs that wait for their children or a time (status ``waiting``).

A waiting run holds no worker and no slot, and nothing polls it. It is woken by:

1. **its children's moves**: every terminal move of a run with a parent (and every delete)
   is followed, in the same call, by :meth:`Waits.children_settled`, which reads the parent
   and, if it waits and its wait is now over, moves it ``wake`` (back to the queue);
2. **the worker that parked it**, which checks once more right after the ``wait`` move
   committed. A child that finished between the executor's last look and that commit saw
   its parent still running; this check sees the child finished. One of the two always
   sees the other (each reads after its own commit), so no wake-up falls between them;
3. **the rescuer**, at the wait's ``until`` and every :attr:`Settings.wait_recheck`: it
   repairs a wake-up lost to a process that died between a child's commit and step 1.

Waking is a compare-and-set from ``waiting``, so two of these racing wake the run once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING
from uuid import UUID

from ..domain import waits
from ..domain.models import SYSTEM, Expect, Run, RunQuery
from ..domain.states import Action, Status

if TYPE_CHECKING:
    from .mover import Mover

log = logging.getLogger("runkit.waits")

#: Up to this many awaited runs are read one by one; more, by paging the parent's children.
_GET_EACH = 20


class Waits:
    """The wake-ups of one :class:`~runkit.service.mover.Mover`'s store."""

    def __init__(self, mover: Mover) -> None:
        self.mover = mover
        self.store = mover.store
        self.clock = mover.clock
        self.settings = mover.settings

    async def awaited(self, run: Run, ids: Iterable[UUID]) -> dict[UUID, Run]:
        """The runs of ``ids`` as they are now (a deleted one is absent)."""
        wanted = set(ids)
        found: dict[UUID, Run] = {}
        if len(wanted) <= _GET_EACH:
            for rid in wanted:
                child = await self.store.get(rid)
                if child is not None:
                    found[rid] = child
            return found
        offset = 0
        while True:
            page, total = await self.store.list(
                RunQuery(parent_action_run_id=run.id, limit=100, offset=offset, oldest_first=True)
            )
            found.update({c.id: c for c in page if c.id in wanted})
            offset += len(page)
            if not page or offset >= total:
                return found

    async def check(self, run: Run | UUID) -> Run | None:
        """Wake ``run`` if it waits and its wait is over; the run as woken, else None."""
        if isinstance(run, UUID):
            found = await self.store.get(run)
            if found is None:
                return None
            run = found
        wait = waits.of(run)
        if run.status is not Status.WAITING or wait is None:
            return None
        awaited = await self.awaited(run, wait.runs)
        if not waits.satisfied(wait, awaited, self.clock.now()):
            return None
        return await self.mover.move(run, Action.WAKE, SYSTEM, reason=_why(wait, awaited))

    async def children_settled(self, runs: Iterable[Run]) -> None:
        """Follow-up of terminal moves (and deletes) of ``runs``: wake their parents whose
        wait is over. Never raises: the child's move stands, and the rescuer's re-check
        repairs a wake-up that failed here."""
        parents = {r.parent_action_run_id for r in runs if r.parent_action_run_id is not None}
        for parent in parents:
            assert parent is not None
            try:
                await self.check(parent)
            except Exception:
                log.warning("could not wake run %s; the rescuer will", parent, exc_info=True)

    async def recheck(self, run: Run) -> bool:
        """The rescuer's look at a waiting run whose deadline passed: wake it if its wait is
        over, else set its next re-check. Whether the run was changed."""
        if await self.check(run) is not None:
            return True
        wait = waits.of(run)
        if wait is None:
            return False
        nxt = waits.deadline(wait, self.clock.now(), self.settings.wait_recheck)
        again = await self.store.update(
            run.id, Expect(frozenset({run.status})), {"deadline_at": nxt}
        )
        return again is not None

    async def progress(self, runs: Iterable[Run]) -> dict[UUID, dict[UUID, Run]]:
        """For each waiting run of ``runs``, its awaited runs now (for ``displayStatus``)."""
        out: dict[UUID, dict[UUID, Run]] = {}
        for run in runs:
            wait = waits.of(run)
            if run.status is Status.WAITING and wait is not None and wait.runs:
                out[run.id] = await self.awaited(run, wait.runs)
        return out


def _why(wait: waits.Wait, awaited: dict[UUID, Run]) -> str:
    if wait.runs and waits.done(wait, awaited) == len(wait.runs):
        return "children done"
    if wait.fail_fast and any(r.status in waits.UNSUCCESSFUL for r in awaited.values()):
        return "a child did not succeed"
    return "time reached"
