"""Approving and rejecting a run waiting for approval: who may decide (the gate's
:class:`~runkit.domain.kind.ApprovalPolicy`), the decisions recorded on the run, and the
move once enough approvals (or one rejection) are in."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from ..domain import inputs as _inputs
from ..domain import moves
from ..domain.errors import IllegalTransition, NotAllowed
from ..domain.models import SYSTEM, Expect, NewLogEntry, Principal, Run
from ..domain.states import Action, allowed_actions
from .mover import CAS_ATTEMPTS, iso

if TYPE_CHECKING:
    from .runkit import Runkit


async def decide(
    rk: Runkit, run_id: UUID | str, decision: str, principal: Principal | None, reason: str | None
) -> Run:
    rid = _inputs.run_id(run_id)
    reason = _inputs.optional_str(reason, ("reason",), _inputs.MAX_REASON_LENGTH)
    action = Action.APPROVE if decision == "approve" else Action.REJECT
    for _ in range(CAS_ATTEMPTS):
        run = await rk.get(rid)
        policy = rk.kinds.approval_policy(run)
        if policy is None:
            raise IllegalTransition(rid, run.status, action, allowed_actions(run.status))
        moves.target(run, action)  # 409 unless awaiting approval
        who = principal or SYSTEM
        if principal is not None and principal.kind != "system":
            if not policy.may_decide(principal.id, principal.groups):
                raise NotAllowed(f"{principal.id} may not {decision} run {rid}")
            if not policy.allow_self_approval and principal.id == run.trigger_source_id:
                raise NotAllowed(f"{principal.id} created run {rid} and may not decide it")
            if any(d.get("by") == principal.id for d in run.approvals):
                raise NotAllowed(f"{principal.id} has already decided run {rid}")
        now = rk.clock.now()
        record = {"by": who.id, "decision": decision, "reason": reason, "at": iso(now)}
        approvals = (*run.approvals, record)
        approved = sum(1 for d in approvals if d["decision"] == "approve")
        if decision == "approve" and approved < policy.required:
            new = await rk.store.update(
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
            new = await rk.mover.move(run, action, who, reason=decision, extra=extra)
        if new is not None:
            rk.wakeups.logs_appended(rid)
            return new
    raise IllegalTransition(rid, run.status, action, allowed_actions(run.status))
