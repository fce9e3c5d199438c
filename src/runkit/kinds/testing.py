"""Test kinds, registered only with ``RUNKIT_ENABLE_TEST_KINDS=1``: ``noop``, ``sleep``,
``fail_n_times`` and ``emit_logs``. They exercise the engine's paths (checkpoints, retries,
log buffering) and back ``runkit demo``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import attrs

from ..authoring import Kind, Retryable, RetryPolicy, RunContext, hookimpl

_non_negative_int = attrs.validators.ge(0)
_non_negative = attrs.validators.ge(0.0)


@attrs.frozen
class NoopConfig:
    pass


async def noop(ctx: RunContext) -> dict[str, Any]:
    return {}


@attrs.frozen
class SleepConfig:
    seconds: float = attrs.field(validator=_non_negative)


#: How often ``sleep`` checkpoints: the latency of a pause, and the work lost to a crash.
SLEEP_STEP = 0.25


async def sleep(ctx: RunContext) -> dict[str, Any]:
    """Sleeps ``seconds`` in steps, checkpointing the elapsed time: paused and resumed (or
    crashed and reclaimed), it sleeps only what is left."""
    config: SleepConfig = ctx.definition
    elapsed = float((ctx.saved_checkpoint or {}).get("elapsed", 0.0))
    if elapsed:
        await ctx.log("info", f"resuming after {elapsed:.2f} s", data={"elapsed": elapsed})
    while elapsed < config.seconds:
        step = min(SLEEP_STEP, config.seconds - elapsed)
        await anyio.sleep(step)
        elapsed += step
        await ctx.checkpoint(
            {"elapsed": elapsed}, progress={"elapsed": elapsed, "seconds": config.seconds}
        )
    return {"slept": config.seconds}


@attrs.frozen
class FailNTimesConfig:
    times: int = attrs.field(validator=_non_negative_int)
    #: Attempts in all; default ``times + 1`` (so the run succeeds on the last one).
    max_attempts: int | None = None
    backoff_seconds: float = attrs.field(default=0.1, validator=_non_negative)

    def retry_policy(self, base: RetryPolicy) -> RetryPolicy:
        """The engine asks a config for the run's policy when it has this method."""
        attempts = self.max_attempts if self.max_attempts is not None else self.times + 1
        return attrs.evolve(base, max_attempts=attempts, backoff_base=self.backoff_seconds)


async def fail_n_times(ctx: RunContext) -> dict[str, Any]:
    config: FailNTimesConfig = ctx.definition
    done = ctx.run.retry_count
    if done < config.times:
        raise Retryable(f"failure {done + 1} of {config.times}")
    return {"attempts": done + 1}


@attrs.frozen
class EmitLogsConfig:
    count: int = attrs.field(validator=_non_negative_int)
    interval_seconds: float = attrs.field(default=0.0, validator=_non_negative)


async def emit_logs(ctx: RunContext) -> dict[str, Any]:
    config: EmitLogsConfig = ctx.definition
    for i in range(config.count):
        await ctx.log("info", f"entry {i}", data={"i": i})
        if config.interval_seconds:
            await anyio.sleep(config.interval_seconds)
    return {"count": config.count}


KINDS = (
    Kind("noop", noop, NoopConfig, display_name="No-op", description="Does nothing."),
    Kind(
        "sleep",
        sleep,
        SleepConfig,
        display_name="Sleep",
        description="Sleeps; pausable (resumes where it stopped).",
        pausable=True,
    ),
    Kind(
        "fail_n_times",
        fail_n_times,
        FailNTimesConfig,
        display_name="Fail n times",
        description="Fails with a retryable error on its first `times` attempts.",
        retry=RetryPolicy(max_attempts=1, backoff_base=0.1, backoff_max=5.0),
    ),
    Kind(
        "emit_logs",
        emit_logs,
        EmitLogsConfig,
        display_name="Emit logs",
        description="Writes `count` info entries with data {i}.",
    ),
)


@hookimpl
def runkit_register_kinds(register: Callable[[Kind], None]) -> None:
    for kind in KINDS:
        register(kind)
