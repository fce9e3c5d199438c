"""``conditional_branch``: evaluates a JMESPath condition on ``{inputs, parent, steps}`` and
runs the ``then`` or the ``else`` child (either may be null: nothing to run), waiting for it
without holding a worker.

A chosen child that does not succeed (failed, cancelled, rejected) fails the branch run with
``ChildFailed``, naming the child and its status: the branch stands for its child, so a
caller (a ``call_automation`` step, a person) sees the failure where it looks.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import attrs

from ...authoring import Kind, KindChecks, RunContext
from ...domain.errors import ErrorDetail, ValidationError
from ...domain.states import Status
from . import (
    RETRY,
    ChildFailed,
    ChildSpec,
    check_child,
    collect,
    describe_progress,
    evaluate_in_thread,
    fill,
    parent_result,
    start,
    unsuccessful,
    wait_children,
)
from .expressions import compile_expression, document, truthy

BRANCHES = ("then", "else")


@attrs.frozen
class ConditionalBranchConfig:
    """``{condition, inputs, then, else}``: ``condition`` is JMESPath on ``{inputs, parent,
    steps}``; JMESPath-true (anything but false, null, "", [] and {}) runs ``then``,
    otherwise ``else``. A branch is ``{kind, definition}`` or null (nothing to run)."""

    condition: str = attrs.field(validator=attrs.validators.min_len(1))
    inputs: dict[str, Any] = attrs.field(factory=dict)
    then: ChildSpec | None = None
    else_: ChildSpec | None = None  # "else" on the wire; a keyword in Python

    def branch(self, name: str) -> ChildSpec | None:
        return self.then if name == "then" else self.else_


def check(config: ConditionalBranchConfig, checks: KindChecks) -> None:
    errors: list[ErrorDetail] = []
    collect(errors, lambda: compile_expression(config.condition, ("definition", "condition")))
    for name in BRANCHES:
        spec = config.branch(name)
        if spec is not None:
            where = ("definition", name)
            collect(errors, partial(check_child, checks, spec.kind, spec.definition, where))
    if errors:
        raise ValidationError(errors)


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: ConditionalBranchConfig = ctx.definition
    doc = document(config.inputs, await parent_result(ctx), {})

    async def decide() -> dict[str, Any]:
        value = await evaluate_in_thread(
            config.condition, doc, ("definition", "condition"), "the condition"
        )
        branch = "then" if truthy(value) else "else"
        shown = json.dumps(value, ensure_ascii=False)
        shown = shown if len(shown) <= 200 else shown[:199] + "…"
        await ctx.log(
            "info",
            f"condition {config.condition!r} is {shown}: {branch}",
            event="branch.chosen",
            data={"branch": branch, "condition": config.condition},
        )
        return {"branch": branch, "value": value}

    # Decided once: re-executions (after the wait below) take the same branch.
    decision = await ctx.step("condition", decide)
    branch, value = decision["branch"], decision["value"]
    spec = config.branch(branch)
    if spec is None:
        await ctx.log("info", f"no {branch} branch: nothing to run")
        return {"branch": branch, "value": value, "childRunId": None, "childResult": None}
    label = f"branch {branch!r}"

    async def begin() -> str:
        loc = ("definition", branch, "definition")
        definition = await fill(spec.kind, spec.definition, doc, loc, label, branch=branch)
        child = await start(ctx, spec.kind, definition, branch, label, branch=branch)
        await ctx.log(
            "info",
            f"{branch}: started {spec.kind} run {child.id}",
            event="child.started",
            data={"branch": branch, "kind": spec.kind, "runId": str(child.id)},
        )
        await ctx.progress({"branch": branch, "message": f"{branch} branch: {spec.kind}"})
        return str(child.id)

    child_id = await ctx.step(f"start:{branch}", begin)
    [child] = await wait_children(
        ctx, [child_id], lambda rid: ChildFailed(f"{label}: run {rid} was deleted", branch=branch)
    )
    if child.status is not Status.SUCCEEDED:
        raise unsuccessful(
            ChildFailed,
            label,
            spec.kind,
            child,
            branch=branch,
            childRunId=str(child.id),
            childStatus=child.status.value,
            childError=child.error,
        )
    return {
        "branch": branch,
        "value": value,
        "childRunId": str(child.id),
        "childResult": child.result,
    }


KIND = Kind(
    name="conditional_branch",
    executor=execute,
    config=ConditionalBranchConfig,
    display_name="Conditional branch",
    description=(
        "Evaluates a JMESPath condition and runs the then or the else child run, "
        "waiting for it without holding a worker."
    ),
    # Every execution before the wait is made once or remembered: a paused or interrupted
    # run continues where it was when it runs again.
    pausable=True,
    cancellable=True,
    retry=RETRY,
    describe_progress=describe_progress,
    check=check,
    example={
        "condition": "inputs.environment == 'production'",
        "inputs": {"environment": "production", "release": "2.4.1"},
        "then": {
            "kind": "approval_gate",
            "definition": {
                "title": {"$expr": "join(' ', ['Deploy', inputs.release, 'to production?'])"},
                "groups": ["release-managers"],
            },
        },
        "else": None,
    },
)
