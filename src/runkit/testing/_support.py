"""What the conformance suite's cases share: a fixed clock, valid runs and entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from ..domain.models import Lease, NewLogEntry, Run
from ..domain.states import Status
from ..storage.base import Store

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def make_run(**overrides: Any) -> Run:
    """A valid run in ``pending`` (or as ``overrides`` say), not yet stored."""
    fields: dict[str, Any] = {
        "id": uuid4(),
        "kind": "noop",
        "status": Status.PENDING,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return Run(**fields)


def entry(message: str, **kw: Any) -> NewLogEntry:
    return NewLogEntry(message=message, occurred_at=kw.pop("occurred_at", T0), **kw)


async def _queued(store: Store, n: int = 1, **overrides: Any) -> list[Run]:
    out = []
    for _ in range(n):
        run, created = await store.insert(make_run(status=Status.QUEUED, **overrides), [])
        assert created
        out.append(run)
    return out


def _lease(run: Run) -> Lease:
    assert run.lease_token is not None
    return Lease(run.id, run.attempt, run.lease_token)
