"""``call_automation``: named steps, each a child run, one after another (``sequence``) or
all at once (``parallel``); the steps are the definition's own or, by ``automationId``, the
ones the host's ``runkit_resolve_automation`` hook gives (once per run, remembered).

In sequence a step's definition may use the earlier steps (``steps.<name>.result`` ...)
through ``{"$expr": ...}``; in parallel ``steps`` is empty. A step that does not succeed
fails the automation with ``StepFailed`` naming it, unless it has ``continueOnError``: no
later step starts, and in parallel the steps still running are cancelled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, Literal

import attrs
from attrs.validators import max_len, min_len, optional

from ...authoring import Kind, KindChecks, Run, RunContext
from ...domain.errors import ErrorDetail, ValidationError
from ...domain.states import Status
from . import (
    MAX_NAME_CHARS,
    MAX_STEPS,
    RETRY,
    AutomationNotFound,
    CompositionFailed,
    InvalidAutomation,
    StepFailed,
    StepSpec,
    cancel_quietly,
    check_child,
    collect,
    describe_progress,
    fill,
    outcome,
    parent_result,
    parse_steps,
    start,
    unsuccessful,
    wait_children,
)
from .expressions import Loc, child_markers, compile_expression, document


@attrs.frozen
class CallAutomationConfig:
    """``{steps, mode, inputs}`` or ``{automationId, mode, inputs}``: 1 to 100 steps, run
    in ``sequence`` (default) or in ``parallel``; ``inputs`` is what expressions read as
    ``inputs``."""

    steps: tuple[StepSpec, ...] = attrs.field(default=(), validator=max_len(MAX_STEPS))
    automation_id: str | None = attrs.field(
        default=None, validator=optional([min_len(1), max_len(255)])
    )
    mode: Literal["sequence", "parallel"] = "sequence"
    inputs: dict[str, Any] = attrs.field(factory=dict)


# ------------------------------------------------------------------ create time ------------
def check_steps(steps: Sequence[StepSpec], loc: Loc, checks: KindChecks | None) -> None:
    """Names unique, expressions compiling and, with ``checks`` (at create), every step's
    kind known and its definition fitting it unless expressions fill it at run time."""
    errors: list[ErrorDetail] = []
    first: dict[str, int] = {}
    for i, step in enumerate(steps):
        if not 1 <= len(step.name) <= MAX_NAME_CHARS:
            message = f"a step name has 1 to {MAX_NAME_CHARS} characters"
            errors.append(ErrorDetail((*loc, i, "name"), message, "value_error"))
        elif step.name in first:
            message = f"step name {step.name!r} is taken by step {first[step.name]}"
            errors.append(ErrorDetail((*loc, i, "name"), message, "duplicate"))
        first.setdefault(step.name, i)
        if checks is not None:
            collect(errors, partial(check_child, checks, step.kind, step.definition, (*loc, i)))
            continue
        for where, source in child_markers(step.kind, step.definition, (*loc, i, "definition")):
            collect(errors, partial(compile_expression, source, where))
    if errors:
        raise ValidationError(errors)


def check(config: CallAutomationConfig, checks: KindChecks) -> None:
    if config.automation_id is not None and config.steps:
        message = "give steps or an automationId, not both"
        raise ValidationError.at(("definition", "automationId"), message, "value_error")
    if config.automation_id is None:
        if not config.steps:
            message = f"give 1 to {MAX_STEPS} steps, or an automationId"
            raise ValidationError.at(("definition", "steps"), message, "missing")
        check_steps(config.steps, ("definition", "steps"), checks)
        return
    loc = ("definition", "automationId")
    check_steps(parse_steps(checks.automation(config.automation_id, loc), loc), loc, checks)


# ------------------------------------------------------------------ run time ---------------
async def steps_of(ctx: RunContext, config: CallAutomationConfig) -> tuple[StepSpec, ...]:
    """The definition's steps, or the automation's as the hook gave them the first time."""
    automation_id = config.automation_id
    if automation_id is None:
        return config.steps
    loc: Loc = ("definition", "automationId")

    async def resolve() -> list[Any]:
        raw = await ctx.resolve_automation(automation_id)
        if raw is None:
            raise AutomationNotFound(f"no host hook resolves automation {automation_id!r} now")
        try:
            check_steps(parse_steps(raw, loc), loc, None)
        except ValidationError as exc:
            raise InvalidAutomation(
                f"automation {automation_id!r}: {exc}", errors=[d.as_dict() for d in exc.details]
            ) from None
        await ctx.log(
            "info",
            f"automation {automation_id!r}: {len(raw)} step{'s' if len(raw) != 1 else ''}",
            event="automation.resolved",
            data={"automationId": automation_id, "steps": [s.get("name") for s in raw]},
        )
        return list(raw)

    return parse_steps(await ctx.step("automation", resolve), loc)


def progress(done: int, total: int, running: str | None = None) -> dict[str, Any]:
    message = f"{done} of {total} steps done" + (f"; running {running!r}" if running else "")
    now = {"step": running} if running else {}
    return {"stepsDone": done, "stepsTotal": total, "message": message, **now}


def failed(step: StepSpec, run: Run, **more: Any) -> CompositionFailed:
    status, label = run.status.value, f"step {step.name!r}"
    more.update(step=step.name, stepRunId=str(run.id), stepStatus=status, stepError=run.error)
    return unsuccessful(StepFailed, label, step.kind, run, **more)


def gone(steps: Sequence[StepSpec], ids: Sequence[str]) -> Callable[[str], Exception]:
    def failure(run_id: str) -> Exception:
        name = next((s.name for s, i in zip(steps, ids, strict=True) if i == run_id), "?")
        return StepFailed(f"step {name!r}: run {run_id} was deleted", step=name, stepRunId=run_id)

    return failure


async def launch(
    ctx: RunContext, step: StepSpec, definition: Any, note: dict[str, Any] | None
) -> str:
    """Start ``step``'s child (once: called through ``ctx.step``); its id."""
    label = f"step {step.name!r}"
    if note is not None:
        await ctx.progress(note)
    child = await start(ctx, step.kind, definition, step.name, label, step=step.name)
    await ctx.log(
        "info",
        f"{label}: started {step.kind} run {child.id}",
        event="step.started",
        data={"step": step.name, "kind": step.kind, "runId": str(child.id)},
    )
    return str(child.id)


async def sequence(
    ctx: RunContext, config: CallAutomationConfig, steps: Sequence[StepSpec], loc: Loc
) -> list[Run]:
    parent = await parent_result(ctx)
    seen: dict[str, Any] = {}
    runs: list[Run] = []
    for i, step in enumerate(steps):

        async def begin(i: int = i, step: StepSpec = step) -> str:
            doc = document(config.inputs, parent, seen)
            where = (*loc, i, "definition")
            label = f"step {step.name!r}"
            definition = await fill(step.kind, step.definition, doc, where, label, step=step.name)
            return await launch(ctx, step, definition, progress(i, len(steps), step.name))

        # Begun once: a re-execution (after the wait) passes here without filling again.
        child_id = await ctx.step(f"start:{step.name}", begin)
        [run] = await wait_children(ctx, [child_id], gone([step], [child_id]))
        if run.status is not Status.SUCCEEDED and not step.continue_on_error:
            raise failed(step, run)
        runs.append(run)
        seen[step.name] = outcome(run)
    return runs


async def parallel(
    ctx: RunContext, config: CallAutomationConfig, steps: Sequence[StepSpec], loc: Loc
) -> list[Run]:
    doc = document(config.inputs, await parent_result(ctx), {})
    # Every definition first: one that cannot be filled fails the run before any step runs.
    definitions = [
        await fill(
            s.kind, s.definition, doc, (*loc, i, "definition"), f"step {s.name!r}", step=s.name
        )
        for i, s in enumerate(steps)
    ]
    # No message while parallel steps run: displayStatus then counts the finished steps
    # itself, live ("Waiting · 2 of 5 steps done"); this run only hears of them at the end.
    first: dict[str, Any] | None = {"stepsDone": 0, "stepsTotal": len(steps)}
    first = None if "stepsTotal" in ctx.run.progress else first
    ids: list[str] = []
    try:
        for step, definition in zip(steps, definitions, strict=True):
            begin = partial(launch, ctx, step, definition, first)
            ids.append(await ctx.step(f"start:{step.name}", begin))
            first = None
    except CompositionFailed:
        for started in ids:  # a definition its kind refused: the steps begun stop too
            await cancel_quietly(ctx, started)
        raise
    runs: dict[str, Run] = {}
    pending = list(ids)
    while pending:
        # fail_fast: back here as soon as a step does not succeed, to cancel the others.
        for run in await wait_children(ctx, pending, gone(steps, ids), fail_fast=True):
            runs[str(run.id)] = run
        pending = [rid for rid in ids if not runs[rid].status.terminal]
        for step, rid in zip(steps, ids, strict=True):
            run = runs[rid]
            blocking = not step.continue_on_error and run.status is not Status.SUCCEEDED
            if blocking and run.status.terminal:
                running = [s.name for s, r in zip(steps, ids, strict=True) if r in pending]
                for other in pending:
                    await cancel_quietly(ctx, other)
                raise failed(step, run, cancelled=running)
        done = len(ids) - len(pending)
        if pending and ctx.run.progress.get("stepsDone") != done:
            await ctx.progress({"stepsDone": done, "stepsTotal": len(ids)})
    return [runs[rid] for rid in ids]


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: CallAutomationConfig = ctx.definition
    steps = await steps_of(ctx, config)
    loc: Loc = ("definition", "steps" if config.automation_id is None else "automationId")
    run_steps = parallel if config.mode == "parallel" else sequence
    runs = await run_steps(ctx, config, steps, loc)
    pairs = list(zip(steps, runs, strict=True))
    failing = [s.name for s, r in pairs if r.status is not Status.SUCCEEDED]
    await ctx.progress(progress(len(steps), len(steps)))
    await ctx.log(
        "info",
        f"{len(steps)} of {len(steps)} steps done"
        + (f"; allowed to fail and did: {', '.join(failing)}" if failing else ""),
        event="automation.done",
        data={"steps": len(steps), "unsuccessful": failing},
    )
    return {"steps": [{"name": step.name, **outcome(run)} for step, run in pairs]}


KIND = Kind(
    name="call_automation",
    executor=execute,
    config=CallAutomationConfig,
    display_name="Call automation",
    description=(
        "Runs named steps as child runs, in sequence (each may use the earlier ones' "
        "results) or in parallel, waiting for them without holding a worker."
    ),
    # Every execution before a wait is made once or remembered: a paused or interrupted
    # run continues with the step it was at.
    pausable=True,
    cancellable=True,
    retry=RETRY,
    describe_progress=describe_progress,
    check=check,
    example={
        "mode": "sequence",
        "inputs": {"service": "billing", "version": "2.4.1"},
        "steps": [
            {
                "name": "approve",
                "kind": "approval_gate",
                "definition": {
                    "title": {"$expr": "join(' ', ['Deploy', inputs.service, inputs.version])"},
                    "groups": ["release-managers"],
                },
            },
            {
                "name": "deploy",
                "kind": "http_request",
                "definition": {
                    "method": "POST",
                    "url": "https://deploy.example.com/api/deployments",
                    "json": {
                        "service": {"$expr": "inputs.service"},
                        "version": {"$expr": "inputs.version"},
                        "approvedBy": {"$expr": "steps.approve.result.approvals[0].by"},
                    },
                },
            },
        ],
    },
)
