"""Durable waits: what a ``waiting`` run waits for, and when that is done. Pure.

An executor that waits for its children (``ctx.wait_for``) or for a time (``ctx.sleep``)
ends its attempt with a :class:`Wait`; the run moves to ``waiting``, holding no worker and
no concurrency slot, with the wait stored on it (``Run.wait``). It is woken (moved back to
the queue) by the terminal move of its last awaited child, or by the rescuer once the time
is reached; the executor then runs again from the start, where the same call returns at
once (see ``docs/engine.md``, "Waiting without a worker").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import attrs

from .models import Run
from .states import Status

#: Outcomes that end a ``fail_fast`` wait before its other runs are done.
UNSUCCESSFUL = frozenset({Status.FAILED, Status.CANCELLED, Status.REJECTED})


@attrs.frozen
class Wait:
    """What a run waits for: every run of ``runs`` terminal (or, with ``fail_fast``, one of
    them unsuccessful), or the time ``until``; whichever comes first."""

    runs: tuple[UUID, ...] = ()
    fail_fast: bool = False
    until: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "runs": [str(r) for r in self.runs],
            "failFast": self.fail_fast,
            "until": self.until.isoformat() if self.until is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Wait:
        until = data.get("until")
        return cls(
            runs=tuple(UUID(r) for r in data.get("runs", ())),
            fail_fast=bool(data.get("failFast", False)),
            until=datetime.fromisoformat(until) if until else None,
        )


def of(run: Run) -> Wait | None:
    """The wait stored on ``run``, if it has one."""
    return Wait.from_json(run.wait) if run.wait is not None else None


def satisfied(wait: Wait, runs: Mapping[UUID, Run], now: datetime) -> bool:
    """Whether ``wait`` is over, given the awaited runs as they are now (a run missing from
    ``runs`` was deleted: it counts as done, and the executor finds out when it reads it)."""
    if wait.until is not None and now >= wait.until:
        return True
    if not wait.runs:
        return wait.until is None
    found = [runs.get(r) for r in wait.runs]
    if wait.fail_fast and any(r is not None and r.status in UNSUCCESSFUL for r in found):
        return True
    return all(r is None or r.status.terminal for r in found)


def done(wait: Wait, runs: Mapping[UUID, Run]) -> int:
    """How many of the awaited runs are done (terminal or gone)."""
    return sum(1 for r in wait.runs if r not in runs or runs[r].status.terminal)


def deadline(wait: Wait, now: datetime, recheck: timedelta) -> datetime:
    """When the rescuer looks at a waiting run: at its ``until``, and at the latest after
    ``recheck``, in case the wake-up by its children was lost (a process died between a
    child's last move and waking the parent)."""
    latest = now + recheck
    return min(wait.until, latest) if wait.until is not None else latest


def describe(wait: Wait, runs: Mapping[UUID, Run] | None) -> str:
    """The detail of ``displayStatus`` for a waiting run: ``2 of 3 steps done``."""
    parts = []
    if wait.runs:
        if runs is None:
            parts.append(f"{len(wait.runs)} step{'s' if len(wait.runs) != 1 else ''}")
        else:
            parts.append(f"{done(wait, runs)} of {len(wait.runs)} steps done")
    if wait.until is not None:
        parts.append(f"until {wait.until.strftime('%Y-%m-%dT%H:%M:%SZ')}")
    return ", ".join(parts) or "resuming"


def ordered(ids: Sequence[UUID], runs: Mapping[UUID, Run]) -> list[Run]:
    """The awaited runs in the order asked for (each must be in ``runs``)."""
    return [runs[r] for r in ids]
