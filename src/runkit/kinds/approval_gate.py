"""``approval_gate``: parks its run in ``awaiting_approval`` until enough people approve,
someone rejects, or the timeout passes. A parked run holds no worker and no slot; the
decisions (who, what, why, when) are stored on the run by ``Runkit.approve``/``reject``,
which check them against the policy below."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs

from ..authoring import ApprovalPolicy, Kind, ParkForApproval, RunContext, hookimpl

ON_TIMEOUT = ("reject", "fail", "approve")


def _positive(_: Any, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and value <= 0:
        raise ValueError(f"{attribute.name} must be positive")


@attrs.frozen
class ApprovalGateConfig:
    """``{title, message, approvers, groups, requiredApprovals, allowSelfApproval,
    timeoutSeconds, onTimeout}``.

    No approvers and no groups: anyone authenticated may decide, the run's creator
    included. ``allowSelfApproval: false`` turns on the four-eyes rule (the creator may not
    decide). Each person decides once; ``requiredApprovals`` approvals succeed the run, one
    rejection rejects it."""

    title: str = "Approval required"
    message: str = ""
    approvers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    required_approvals: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    allow_self_approval: bool = True
    timeout_seconds: float | None = attrs.field(default=None, validator=_positive)
    on_timeout: str = attrs.field(default="reject", validator=attrs.validators.in_(ON_TIMEOUT))


def policy(config: ApprovalGateConfig) -> ApprovalPolicy:
    return ApprovalPolicy(
        required=config.required_approvals,
        approvers=frozenset(config.approvers),
        groups=frozenset(config.groups),
        allow_self_approval=config.allow_self_approval,
        timeout_seconds=config.timeout_seconds,
        on_timeout=config.on_timeout,
    )


async def execute(ctx: RunContext) -> None:
    config: ApprovalGateConfig = ctx.definition
    await ctx.log(
        "info",
        f"awaiting approval: {config.title}",
        event="approval.requested",
        data={
            "title": config.title,
            "message": config.message,
            "approvers": list(config.approvers),
            "groups": list(config.groups),
            "requiredApprovals": config.required_approvals,
            "timeoutSeconds": config.timeout_seconds,
            "onTimeout": config.on_timeout,
        },
    )
    timeout = None if config.timeout_seconds is None else timedelta(seconds=config.timeout_seconds)
    raise ParkForApproval(timeout)


KIND = Kind(
    name="approval_gate",
    executor=execute,
    config=ApprovalGateConfig,
    display_name="Approval gate",
    description="Waits for people to approve or reject, holding no worker meanwhile.",
    pausable=False,  # paused while awaiting approval is a table move; no executor runs
    cancellable=True,
    approval=policy,
    example={
        "title": "Deploy to production",
        "message": "Release 2.4.1: 14 changes, migrations included.",
        "groups": ["release-managers"],
        "requiredApprovals": 1,
        "allowSelfApproval": False,
        "timeoutSeconds": 86400,
        "onTimeout": "reject",
    },
)


@hookimpl
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    register(KIND)
