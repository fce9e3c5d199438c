"""Kinds that compose runs: ``conditional_branch`` (a condition picks one child run, or
none) and ``call_automation`` (named steps, each a child run, in sequence or in parallel).

Both evaluate JMESPath (:mod:`.expressions`) on a document ``{"inputs", "parent",
"steps"}``, fill the ``{"$expr": ...}`` markers of their children's definitions with it, and
start the children with ``ctx.start_child(step=...)``. They wait with ``ctx.wait_for``,
holding no worker: the executor runs again from the start once the children are done, so
what comes before a wait is either made once (children, by step name) or remembered
(``ctx.step``), and every re-execution takes the same path to the same children.

This module registers them and holds what both share: child specs and their create-time
checks, filling markers, starting children, and the failures (``Fatal`` with ``details``,
which the run's ``error`` object carries).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio.to_thread
import attrs

from ...authoring import Fatal, Kind, KindChecks, RetryPolicy, Run, RunContext, hookimpl
from ...domain.errors import (
    ErrorDetail,
    IdempotencyConflict,
    IllegalTransition,
    RunNotFound,
    ValidationError,
)
from ...domain.kind import structure_config
from .expressions import (
    ExpressionError,
    Loc,
    child_markers,
    compile_expression,
    evaluate,
    fill_child,
)


@attrs.frozen
class ChildSpec:
    """``{kind, definition}``: a child run; ``{"$expr": ...}`` anywhere in ``definition``
    is replaced by the expression's value before the child is created."""

    kind: str  # an unknown kind (the empty one too) is refused by name at create
    definition: dict[str, Any] = attrs.field(factory=dict)


MAX_STEPS = 100
#: Both kinds retry only what is not the definition's fault (the database, a lost worker): a
#: failed child or step, or a bad definition, fails at once (Fatal).
RETRY = RetryPolicy(max_attempts=3, backoff_base=1.0, backoff_max=30.0)
MAX_NAME_CHARS = 100


@attrs.frozen
class StepSpec:
    """``{name, kind, definition, continueOnError}``: a step of an automation, a child run;
    its name (unique in the automation) is how expressions reach it (``steps.fetch``)."""

    # Names are checked with the steps (check_steps): runkit reports an attrs validator of a
    # list item at the item, and a name's error belongs at the name.
    name: str
    kind: str
    definition: dict[str, Any] = attrs.field(factory=dict)
    continue_on_error: bool = False


def parse_steps(raw: Any, loc: Loc) -> tuple[StepSpec, ...]:
    """Steps from a host's hook, checked as a definition's own are (errors under ``loc``)."""
    if not isinstance(raw, Sequence) or not 1 <= len(raw) <= MAX_STEPS:
        raise ValidationError.at(loc, f"an automation has 1 to {MAX_STEPS} steps", "value_error")
    errors: list[ErrorDetail] = []
    steps = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            errors.append(ErrorDetail((*loc, i), "a step must be an object", "dict_type"))
            continue
        try:
            steps.append(structure_config(StepSpec, item, (*loc, i)))
        except ValidationError as exc:
            errors.extend(exc.details)
    if errors:
        raise ValidationError(errors)
    return tuple(steps)


# ------------------------------------------------------------------ failures ---------------
class CompositionFailed(Fatal):
    """A composing run failed for a reason no retry fixes; ``details`` go into its
    ``error`` object beside ``type`` and ``message``."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.details = details


class ChildFailed(CompositionFailed):
    """conditional_branch: the chosen branch's child did not succeed."""


class StepFailed(CompositionFailed):
    """call_automation: a step did not succeed (and may not fail on its own)."""


class AutomationNotFound(CompositionFailed):
    """call_automation: the automation id resolved at create time no longer does."""


class InvalidAutomation(CompositionFailed):
    """call_automation: the hook's steps for the automation id are not valid steps."""


class ExpressionFailed(CompositionFailed):
    """An expression compiled at create time could not be evaluated at run time."""


class InvalidChildDefinition(CompositionFailed):
    """A child's definition, its expressions evaluated, does not fit its kind."""


# ------------------------------------------------------------------ create time ------------
def check_child(checks: KindChecks, kind: str, definition: Any, loc: Loc) -> None:
    """Create-time checks of the child ``{kind, definition}`` at ``loc``: its expressions
    compile, its kind exists, and a definition without expressions fits its kind now (one
    with expressions is checked once they are evaluated, when the child is created)."""
    found = child_markers(kind, definition, (*loc, "definition"))
    errors: list[ErrorDetail] = []
    for where, source in found:
        collect(errors, functools.partial(compile_expression, source, where))
    if found:
        collect(errors, lambda: _require_kind(checks, kind, loc))
    else:
        collect(errors, lambda: checks.validate(kind, definition, loc))
    if errors:
        raise ValidationError(errors)


def _require_kind(checks: KindChecks, kind: str, loc: Loc) -> None:
    """The error ``validate`` gives an unknown ``kind``, and no other: the definition is not
    judged yet (its expressions are evaluated first)."""
    try:
        checks.validate(kind, {}, loc)
    except ValidationError as exc:
        unknown = [d for d in exc.details if tuple(d.loc) == (*loc, "kind")]
        if unknown:
            raise ValidationError(unknown) from None


def collect(errors: list[ErrorDetail], check: Callable[[], object]) -> None:
    """Run ``check``, adding its ValidationError's details to ``errors``: a create reports
    every problem of every child at once."""
    try:
        check()
    except ValidationError as exc:
        errors.extend(exc.details)


# ------------------------------------------------------------------ run time ---------------
async def parent_result(ctx: RunContext) -> Any:
    """The result of this run's parent (null without one, or before it has one), read once
    per run so that every execution fills the same definitions."""

    async def read() -> Any:
        parent_id = ctx.run.parent_action_run_id
        if parent_id is None:
            return None
        try:
            return (await ctx.get_run(parent_id)).result
        except RunNotFound:
            return None

    return await ctx.step("parent", read)


async def fill(kind: str, definition: Any, doc: Any, loc: Loc, label: str, **details: Any) -> Any:
    """The child's definition with the parent's markers evaluated on ``doc``. In a thread:
    a heavy expression (bounded, but up to a second) must not hold up the worker's loop and
    its heartbeats. ExpressionFailed, saying ``label`` ("step 'deploy'"), if one fails."""

    try:
        run = functools.partial(fill_child, kind, definition, doc, loc)
        return await anyio.to_thread.run_sync(run)
    except ExpressionError as exc:
        where = ".".join(map(str, exc.loc))
        raise ExpressionFailed(
            f"{label}: the expression at {where} failed: {exc}", loc=list(exc.loc), **details
        ) from None


async def evaluate_in_thread(source: str, doc: Any, loc: Loc, label: str, **details: Any) -> Any:
    """``evaluate`` in a thread (see :func:`fill`); ExpressionFailed if it fails."""
    try:
        return await anyio.to_thread.run_sync(functools.partial(evaluate, source, doc, loc))
    except ExpressionError as exc:
        raise ExpressionFailed(f"{label} failed: {exc}", loc=list(loc), **details) from None


async def start(
    ctx: RunContext, kind: str, definition: Any, key: str, label: str, **details: Any
) -> Run:
    """The child of this run made for step ``key`` (created now, or the one made before).
    InvalidChildDefinition if its kind refuses the definition."""
    try:
        return await ctx.start_child(kind, definition, step=key)
    except IdempotencyConflict:
        raise  # the same step with another definition: a bug, not the author's mistake
    except ValidationError as exc:
        raise InvalidChildDefinition(
            f"{label}: {kind} refused the definition: {exc}",
            errors=[d.as_dict() for d in exc.details],
            **details,
        ) from None


async def wait_children(
    ctx: RunContext, ids: list[str], gone: Callable[[str], Exception], fail_fast: bool = False
) -> list[Run]:
    """``ctx.wait_for``; a child deleted meanwhile (nothing to read any more) is the kind's
    own failure, ``gone(its id)``, rather than an error retried to no end."""
    try:
        return await ctx.wait_for(ids, fail_fast=fail_fast)
    except RunNotFound as exc:
        raise gone(str(exc.run_id)) from None


async def cancel_quietly(ctx: RunContext, run_id: Any) -> None:
    """Cancel a child unless it has finished (or is gone) already."""
    with contextlib.suppress(IllegalTransition, RunNotFound):
        await ctx.cancel_child(run_id)


def unsuccessful(
    failure: type[CompositionFailed], label: str, kind: str, run: Run, **details: Any
) -> CompositionFailed:
    """The failure of a composing run whose child ``run`` did not succeed, naming it and
    saying why when the run says: its error, or who rejected it and why."""
    why = (run.error or {}).get("message")
    rejections = [d for d in run.approvals if d.get("decision") == "reject"]
    if why:
        why = f": {why}"
    elif rejections:
        last = rejections[-1]
        why = f" by {last.get('by')}" + (f": {last['reason']}" if last.get("reason") else "")
    else:
        why = ""  # cancelled: its status_reason is the engine's step ("stopped"), not a why
    return failure(f"{label}: {kind} run {run.id} {run.status.value}{why}", **details)


def outcome(run: Run) -> dict[str, Any]:
    """A finished child as expressions and results show it."""
    return {
        "status": run.status.value,
        "result": run.result,
        "error": run.error,
        "runId": str(run.id),
    }


def describe_progress(progress: Mapping[str, Any]) -> str | None:
    """displayStatus's detail while running or waiting: the progress's ``message``."""
    message = progress.get("message")
    return message if isinstance(message, str) else None


@hookimpl
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    # Imported here: the kind modules import this one for what they share.
    from . import call_automation, conditional_branch

    register(conditional_branch.KIND)
    register(call_automation.KIND)
