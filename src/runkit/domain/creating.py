"""A new run from a create request: its inputs checked, its keys scoped, its first moves
made; and what an idempotency key that is already held answers. Pure: the caller supplies the
time and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from . import inputs, moves
from .errors import IdempotencyConflict, ValidationError
from .idempotency import IdempotencyPolicy, fingerprint, scope_key
from .kind import Kind, KindChecks
from .models import Created, NewLogEntry, Principal, Run, replace
from .states import Status


def new_run(
    spec: Kind,
    definition: Mapping[str, Any] | None,
    *,
    now: datetime,
    idempotency: IdempotencyPolicy,
    limits: Mapping[str, int],
    idempotency_key: str | None = None,
    concurrency_key: str | None = None,
    concurrency_limit: int | None = None,
    parent_action_run_id: UUID | str | None = None,
    action_id: str | None = None,
    principal: Principal | None = None,
    execute: bool = False,
    checks: KindChecks | None = None,
    bounds_checked: bool = False,
) -> tuple[Run, list[NewLogEntry]]:
    """The run a create makes (in ``pending``, or ``queued`` with ``execute``), validated,
    and its first audit entries. ``limits`` are the per-key concurrency limits (default 1);
    ``checks`` serve the kind's own create-time ``check``, if it has one;
    ``bounds_checked``: the caller checked ``inputs.definition`` already (off the loop)."""
    if definition is None:
        definition = {}
    elif not bounds_checked:
        definition = inputs.definition(definition)
    config = spec.validate(definition)
    if spec.check is not None:
        if checks is None:
            raise ValueError(f"kind {spec.name!r} checks its runs at create; pass checks=")
        spec.check(config, checks)
    idem = inputs.key(idempotency_key, ("idempotency_key",))
    ckey = inputs.key(concurrency_key, ("concurrency_key",))
    action_id = inputs.optional_str(action_id, ("action_id",))
    parent = inputs.optional_uuid(parent_action_run_id, ("parent_action_run_id",))
    limit = concurrency_limit
    if limit is None:
        limit = limits.get(ckey, 1) if ckey else 1
    limit = inputs.bounded_int(limit, ("concurrency_limit",), 1, 10_000)
    definition = dict(definition)
    run = Run(
        id=uuid4(),
        kind=spec.name,
        status=Status.PENDING,
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
        tenant=principal.tenant if principal else None,
        idempotency_scope=scope_key(idempotency, idem, spec.name, principal) if idem else None,
        fingerprint=fingerprint(spec.name, definition, parent, action_id) if idem else None,
    )
    actor = principal.id if principal else None
    return moves.created(run, execute=execute, actor=actor, now=now)


def under(run: Run, parent: Run | None) -> Run:
    """``run`` as a child of ``parent`` (None: not found), which must exist and, for a run
    of a tenant, be that tenant's (another tenant's run is as good as missing to it). A run
    of no tenant joins its parent's."""
    if parent is None or (run.tenant is not None and parent.tenant != run.tenant):
        raise ValidationError.at(
            ("parent_action_run_id",),
            f"parent run {run.parent_action_run_id} not found",
            "not_found",
        )
    return replace(run, tenant=parent.tenant) if run.tenant is None else run


def replay(existing: Run, request: Run) -> Created:
    """The answer when ``request``'s idempotency key is held by ``existing``: the existing
    run as it is for the same request; IdempotencyConflict for a different one."""
    if existing.fingerprint != request.fingerprint:
        assert request.idempotency_key is not None
        raise IdempotencyConflict(request.idempotency_key, existing.id)
    return Created(existing, False)


def expired(run: Run, policy: IdempotencyPolicy, now: datetime) -> bool:
    """Whether ``run``'s idempotency key has outlived the policy's TTL at ``now``."""
    return policy.ttl is not None and run.created_at + policy.ttl <= now
