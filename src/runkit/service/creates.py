"""Creating runs, one (:meth:`Runkit.create`) or many (:meth:`Runkit.create_many`): the
request checked and built into a run, stored, and a key past its TTL reclaimed, written once
for both.

A batch goes to the store in one transaction (:meth:`Store.insert_many`). Why all-or-nothing
for validation but per item for idempotency: an invalid item is the caller's mistake and is
reported with its index (``loc`` starts ``("items", i)``), so the caller fixes the batch and
sends it again; an idempotency conflict depends on what other requests stored before, so the
other items must not be held hostage by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING
from uuid import UUID

import anyio.to_thread

from ..domain import creating
from ..domain import inputs as _inputs
from ..domain.errors import ErrorDetail, IdempotencyConflict, ValidationError
from ..domain.models import Created, Expect, NewLogEntry, NewRun, Principal, Run
from ..domain.states import Status
from .mover import CAS_ATTEMPTS

if TYPE_CHECKING:
    from .runkit import Runkit

#: Items one call may carry: a batch is one transaction, and one request body.
MAX_BATCH = 1000

Answer = Created | IdempotencyConflict
Built = tuple[Run, list[NewLogEntry]]


def new(
    rk: Runkit,
    item: NewRun,
    principal: Principal | None,
    *,
    bounds_checked: bool = False,
    now: datetime | None = None,
) -> Built:
    """The run ``item`` asks for, validated, with its first audit entries (no store read:
    :meth:`Runkit.create_in` calls it inside the host's transaction). ``now``: its creation
    time (default: the clock's)."""
    return creating.new_run(
        rk.kinds.require(item.kind),
        item.definition,
        now=rk.clock.now() if now is None else now,
        idempotency=rk.idempotency,
        limits=rk.settings.concurrency_limits,
        checks=rk.checks,
        idempotency_key=item.idempotency_key,
        concurrency_key=item.concurrency_key,
        concurrency_limit=item.concurrency_limit,
        parent_action_run_id=item.parent_action_run_id,
        action_id=item.action_id,
        principal=principal,
        execute=item.execute,
        bounds_checked=bounds_checked,
    )


async def build(
    rk: Runkit,
    item: NewRun,
    principal: Principal | None,
    parents: dict[UUID, Run | None] | None = None,
    now: datetime | None = None,
) -> Built:
    """The run ``item`` asks for, validated, placed under its parent, with its first audit
    entries. ``parents`` caches parent reads across a batch; ``now`` is its creation time
    (default: the clock's)."""
    large = _inputs.is_large(item.definition)
    if large:  # bounds checked off the event loop
        rk.kinds.require(item.kind)  # an unknown kind is still the first problem
        await anyio.to_thread.run_sync(_inputs.definition, item.definition)
    run, entries = new(rk, item, principal, bounds_checked=large, now=now)
    parent_id = run.parent_action_run_id
    if parent_id is not None:
        if parents is None or parent_id not in parents:
            parent = await rk.store.get(parent_id)
            if parents is not None:
                parents[parent_id] = parent
        else:
            parent = parents[parent_id]
        run = creating.under(run, parent)
    return run, entries


async def settle(
    rk: Runkit, run: Run, entries: list[NewLogEntry], first: tuple[Run, bool] | None = None
) -> Created:
    """Store ``run`` (``first``: the store's answer to an insert already made) and answer:
    created, or the replay of the run holding its key. A key held past its TTL is freed and
    the run inserted again. Raises IdempotencyConflict for a different request's key."""
    for _ in range(CAS_ATTEMPTS):
        stored, created = first if first is not None else await rk.store.insert(run, entries)
        first = None
        if created:
            return Created(stored, True)
        if not creating.expired(stored, rk.idempotency, run.created_at):
            return creating.replay(stored, run)
        await rk.store.update(stored.id, Expect(frozenset(Status)), {"idempotency_scope": None})
    raise RuntimeError("idempotency key kept changing hands")  # pragma: no cover


async def create_many(
    rk: Runkit, items: Sequence[NewRun], principal: Principal | None
) -> list[Answer]:
    built = await _build_all(rk, items, principal)
    stored = await rk.store.insert_many(built)
    answers: list[Answer] = []
    for (run, entries), pair in zip(built, stored, strict=True):
        try:
            answers.append(await settle(rk, run, entries, pair))
        except IdempotencyConflict as conflict:
            answers.append(conflict)
    if any(a.created and a.run.status is Status.QUEUED for a in answers if isinstance(a, Created)):
        rk.wakeups.work_available()
    return answers


async def _build_all(
    rk: Runkit, items: Sequence[NewRun], principal: Principal | None
) -> list[Built]:
    """Every item as a run and its first entries, or one ValidationError naming each bad
    item by its index."""
    given: object = items  # a host may pass anything
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise ValidationError.at(("items",), "expected a list of NewRun", "list_type")
    if len(items) > MAX_BATCH:
        raise ValidationError.at(("items",), f"at most {MAX_BATCH} items", "too_long")
    built: list[Built] = []
    errors: list[ErrorDetail] = []
    parents: dict[UUID, Run | None] = {}  # one read per parent
    # One creation time for the batch, as for one transaction: its columns are then one
    # value throughout, which the store writes once (``storage.sql.arrays``).
    now = rk.clock.now()
    for i, item in enumerate(items):
        try:
            if not isinstance(item, NewRun):
                raise ValidationError.at((), "expected a NewRun", "model_type")
            built.append(await build(rk, item, principal, parents, now))
        except ValidationError as err:
            errors.extend(ErrorDetail(("items", i, *d.loc), d.msg, d.type) for d in err.details)
    if errors:
        raise ValidationError(errors)
    return built
