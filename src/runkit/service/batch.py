"""Creating many runs in one call (:meth:`Runkit.create_many`): every item is validated
before anything is written, the valid batch goes to the store in one transaction
(:meth:`Store.insert_many`), and each item gets its own answer.

Why all-or-nothing for validation but per item for idempotency: an invalid item is the
caller's mistake and is reported with its index (``loc`` starts ``("items", i)``), so the
caller fixes the batch and sends it again; an idempotency conflict depends on what other
requests stored before, so the other items must not be held hostage by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

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


async def create_many(
    rk: Runkit, items: Sequence[NewRun], principal: Principal | None
) -> list[Answer]:
    built = await _build_all(rk, items, principal)
    stored = await rk.store.insert_many(built)
    answers: list[Answer] = []
    for (run, entries), (holder, created) in zip(built, stored, strict=True):
        if created:
            answers.append(Created(holder, True))
        elif creating.expired(holder, rk.idempotency, run.created_at):
            answers.append(await _reclaim(rk, holder, run, entries))
        else:
            answers.append(_replay(holder, run))
    if any(a.created and a.run.status is Status.QUEUED for a in answers if isinstance(a, Created)):
        rk.wakeups.work_available()
    return answers


async def _build_all(
    rk: Runkit, items: Sequence[NewRun], principal: Principal | None
) -> list[tuple[Run, list[NewLogEntry]]]:
    """Every item as a run and its first entries, or one ValidationError naming each bad
    item by its index."""
    given: object = items  # a host may pass anything
    if isinstance(given, str | bytes) or not isinstance(given, Sequence):
        raise ValidationError.at(("items",), "expected a list of NewRun", "list_type")
    if len(items) > MAX_BATCH:
        raise ValidationError.at(("items",), f"at most {MAX_BATCH} items", "too_long")
    built: list[tuple[Run, list[NewLogEntry]]] = []
    errors: list[ErrorDetail] = []
    parents: dict[object, Run | None] = {}
    for i, item in enumerate(items):
        try:
            if not isinstance(item, NewRun):
                raise ValidationError.at((), "expected a NewRun", "model_type")
            large = _inputs.is_large(item.definition)
            if large:  # bounds checked off the event loop, as create does
                rk.kinds.require(item.kind)
                await anyio.to_thread.run_sync(_inputs.definition, item.definition)
            run, entries = creating.new_run(
                rk.kinds.require(item.kind),
                item.definition,
                now=rk.clock.now(),
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
                bounds_checked=large,
            )
            if run.parent_action_run_id is not None:
                if run.parent_action_run_id not in parents:  # one read per parent
                    parents[run.parent_action_run_id] = await rk.store.get(run.parent_action_run_id)
                run = creating.under(run, parents[run.parent_action_run_id])
        except ValidationError as err:
            errors.extend(ErrorDetail(("items", i, *d.loc), d.msg, d.type) for d in err.details)
            continue
        built.append((run, entries))
    if errors:
        raise ValidationError(errors)
    return built


def _replay(holder: Run, run: Run) -> Answer:
    try:
        return creating.replay(holder, run)
    except IdempotencyConflict as conflict:
        return conflict


async def _reclaim(rk: Runkit, holder: Run, run: Run, entries: list[NewLogEntry]) -> Answer:
    """The item's key is held by a run past the key's TTL: free the key and insert the item
    on its own (the rare path; :meth:`Runkit.create` does the same)."""
    for _ in range(CAS_ATTEMPTS):
        await rk.store.update(holder.id, Expect(frozenset(Status)), {"idempotency_scope": None})
        holder, created = await rk.store.insert(run, entries)
        if created:
            return Created(holder, True)
        if not creating.expired(holder, rk.idempotency, run.created_at):
            return _replay(holder, run)
    raise RuntimeError("idempotency key kept changing hands")  # pragma: no cover
