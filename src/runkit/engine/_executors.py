"""Calling an executor and turning what it did into an outcome the worker reports.

Executors are ``async def executor(ctx) -> dict | None`` or plain functions, which run in a
worker thread (``anyio.to_thread.run_sync``) and reach their context through ``ctx.sync``.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import attrs

from ..domain.kind import Kind, RetryPolicy
from ..domain.signals import Fatal, ParkForApproval, Retryable, Suspend
from ..domain.waits import Wait
from ._context import AttemptContext


@attrs.frozen
class Outcome:
    """What one attempt came to. ``kind`` is one of: ``result``, ``error``, ``timeout``,
    ``park``, ``wait`` (a durable wait), ``stopped`` (cancelled by the worker: cancel,
    pause, lost lease, shutdown)."""

    kind: str
    result: Mapping[str, Any] | None = None
    error: BaseException | None = None
    park_timeout: timedelta | None = None
    wait: Wait | None = None


async def call_executor(executor: Callable[..., Any], ctx: AttemptContext) -> Any:
    if inspect.iscoroutinefunction(executor):
        return await executor(ctx)
    # Not abandoned on cancel: the thread unwinds at its next ctx.sync call, so a stopped
    # run never has a thread still writing side effects behind the worker's back.
    result = await anyio.to_thread.run_sync(executor, ctx)
    if inspect.isawaitable(result):  # a callable object with an async __call__
        result = await result
    return result


async def run_attempt(kind: Kind, ctx: AttemptContext, scope: anyio.CancelScope) -> Outcome:
    """Run ``kind``'s executor inside ``scope`` (which the worker cancels to stop it) with
    the kind's timeout."""
    assert kind.executor is not None  # KindRegistry refuses kinds without one
    timeout = kind.timeout_seconds
    with scope:
        if timeout is None:  # no second cancel scope: one less per run on the hot path
            return await _outcome(kind.executor, ctx)
        with anyio.move_on_after(timeout) as limit:
            return await _outcome(kind.executor, ctx)
        if limit.cancelled_caught:
            return Outcome("timeout")
    return Outcome("stopped")


async def _outcome(executor: Callable[..., Any], ctx: AttemptContext) -> Outcome:
    """What the executor's call comes to; a cancellation passes through."""
    try:
        value = await call_executor(executor, ctx)
    except Suspend as suspend:
        return Outcome("wait", wait=suspend.wait)
    except ParkForApproval as park:
        return Outcome("park", park_timeout=park.timeout)
    except Exception as exc:
        return Outcome("error", error=exc)
    except BaseExceptionGroup as group:
        # A wait raised inside the executor's own task group arrives wrapped.
        match, rest = group.split(Suspend)
        if match is None or rest is not None:
            raise
        first = match.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        assert isinstance(first, Suspend)
        return Outcome("wait", wait=first.wait)
    if value is not None and not isinstance(value, Mapping):
        return Outcome(
            "error",
            error=Fatal(f"executor returned {type(value).__name__}, not a dict or None"),
        )
    return Outcome("result", result=dict(value or {}))


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Retryable raised: yes; Fatal: no; anything else: when the kind allows retries."""
    if isinstance(exc, Retryable):
        return True
    if isinstance(exc, Fatal):
        return False
    return policy.max_attempts > 1


def backoff(policy: RetryPolicy, retry_count: int, rng: random.Random | None = None) -> float:
    """Seconds before the attempt after ``retry_count`` earlier retries: exponential with
    jitter, ``min(base * 2**retry_count, max) * (1 ± jitter)``."""
    delay = min(policy.backoff_base * (2.0**retry_count), policy.backoff_max)
    spread: float = (rng or random).uniform(-policy.jitter, policy.jitter)
    return max(0.0, delay * (1 + spread))


def error_body(
    exc: BaseException | None, *, retryable: bool, next_attempt_at: datetime | None = None
) -> dict[str, Any]:
    """The run's ``error`` object: ``{type, message, retryable, nextAttemptAt?}``, plus the
    exception's own ``details`` (a mapping of JSON values, e.g. an HTTP ``status``), which
    never override those four."""
    body: dict[str, Any] = {
        "type": type(exc).__name__ if exc is not None else "Error",
        "message": str(exc) if exc is not None else "",
        "retryable": retryable,
    }
    details = getattr(exc, "details", None)
    if isinstance(details, Mapping):
        for key, value in details.items():
            if key not in ("nextAttemptAt",):
                body.setdefault(str(key), value)
    if next_attempt_at is not None:
        body["nextAttemptAt"] = next_attempt_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return body


def retry_policy(kind: Kind, definition: Any) -> RetryPolicy:
    """The kind's policy, or the one a run's config derives from it (``retry_policy``)."""
    derive = getattr(definition, "retry_policy", None)
    if callable(derive):
        policy = derive(kind.retry)
        if isinstance(policy, RetryPolicy):
            return policy
    return kind.retry


@attrs.frozen
class Failure:
    """How a failed attempt is reported: its ``error`` body, and either when it is retried
    (``retry_at``) or why it failed for good (``reason``)."""

    body: dict[str, Any]
    reason: str = "error"
    retry_at: datetime | None = None


def failure(
    exc: BaseException, policy: RetryPolicy, retry_count: int, attempt: int, now: datetime
) -> Failure:
    """What an attempt that raised ``exc`` comes to under ``policy``: retried after the
    backoff (or the exception's own ``retry_after``), or failed with the reason."""
    retryable = is_retryable(exc, policy)
    if retryable and retry_count < policy.max_attempts - 1:
        after = getattr(exc, "retry_after", None)
        delay = after if after is not None else backoff(policy, retry_count)
        retry_at = now + timedelta(seconds=delay)
        return Failure(error_body(exc, retryable=True, next_attempt_at=retry_at), retry_at=retry_at)
    body = error_body(exc, retryable=False)
    if not retryable:
        return Failure(body)
    # Name what happened (it gave up), and keep the last error as the cause.
    given_up = {
        "type": "RetriesExhausted",
        "message": f"gave up after {attempt} attempt{'s' if attempt != 1 else ''}: "
        f"{body['message']}",
        "retryable": False,
        "attempts": attempt,
        "cause": {k: v for k, v in body.items() if k != "retryable"},
    }
    return Failure(given_up, "retries_exhausted")
