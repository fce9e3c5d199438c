"""The worker: claims runs, executes them, keeps their leases, reports how they ended.

One anyio task group holds: the claim loop, one task per claimed run (executor + log
flusher), the heartbeat loop (which also carries cancel and pause requests back), the
completion buffer and the rescuer. Wake-ups from other processes reach it through
``runkit.wakeups``, which the open Runkit feeds (PostgreSQL LISTEN, SQLite data_version).
Everything it writes goes through the fenced worker operations of :class:`~runkit.Runkit`,
so a worker that lost a lease (paused process, partition) changes nothing; the state table
decides every move.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from anyio.abc import TaskGroup, TaskStatus

from ..domain.errors import (
    ConfigurationError,
    IllegalTransition,
    LeaseLost,
    ValidationError,
)
from ..domain.kind import Kind
from ..domain.models import Lease, NewLogEntry, Run, WorkerInfo
from ..domain.moves import Report
from ..domain.redact import redact_text
from ..domain.states import Status
from ._context import AttemptContext
from ._executors import Outcome, error_body, failure, retry_policy, run_attempt
from ._flusher import LogFlusher
from ._outbox import CompletionBuffer, persist
from ._pacing import ClaimPacer, waited
from ._wakeups import Signal

if TYPE_CHECKING:
    from ..service.runkit import Runkit

log = logging.getLogger("runkit.engine")


@attrs.define
class _Held:
    """A run this worker holds a lease on, and how it is being stopped (if it is)."""

    run: Run
    lease: Lease
    scope: anyio.CancelScope
    kind: Kind | None = None
    ctx: AttemptContext | None = None
    #: None, or why the worker stopped the executor: cancel, pause, lost, release.
    stop: str | None = None
    pause_deadline: float | None = None
    #: Whether the executor still runs (it takes a slot); after it, the outcome is written.
    executing: bool = True


class Worker:
    """Executes runs of one :class:`~runkit.Runkit`. ``await worker.run()`` until
    :meth:`stop` (graceful) or :meth:`abort`; or use :func:`runkit.engine.embedded_workers`.

    ``control_interval`` bounds how late a cancel or pause is noticed: the heartbeat (which
    carries them) runs every ``min(settings.heartbeat, control_interval)`` seconds.
    """

    def __init__(
        self,
        runkit: Runkit,
        *,
        concurrency: int = 10,
        worker_id: str | None = None,
        batch: int | None = None,
        kinds: Iterable[str] | None = None,
        poll_interval: float = 1.0,
        flush_interval: float = 0.02,
        control_interval: float = 1.0,
        pause_grace: float = 1.0,
        grace_period: float = 30.0,
        rescue: bool = True,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.runkit = runkit
        self.concurrency = concurrency
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.batch = batch or min(concurrency, 50)
        registered = frozenset(runkit.kinds.names())
        #: The kinds this worker claims: all the Runkit has, or the subset asked for.
        self.kinds = registered if kinds is None else frozenset(kinds)
        unknown = sorted(self.kinds - registered)
        if unknown:
            raise ConfigurationError(
                f"worker asked to serve kinds not registered in its Runkit: {', '.join(unknown)}"
            )
        self.poll_interval = poll_interval
        self.flush_interval = flush_interval
        self.control_interval = control_interval
        self.pause_grace = pause_grace
        self.grace_period = grace_period
        self.rescue = rescue
        # Keyed by (run, attempt): a run released or rescued from under an attempt that is
        # still unwinding may be claimed again by this very worker.
        self._held: dict[tuple[uuid.UUID, int], _Held] = {}
        self._executing = 0  # held runs whose executor still runs: the slots taken
        self._wake = Signal()
        self._dirty = True  # something may be claimable: claim before sleeping
        #: When to claim: gathering while busy, backing off after empty claims.
        self._pacer = ClaimPacer(flush_interval, min(poll_interval, 8 * flush_interval))
        self._hints = 0  # runkit.wakeups.remote_work when the last claim began
        self._stopping = False
        self._aborted = False
        self._tg: TaskGroup | None = None
        self._last_heartbeat = time.monotonic()
        self._started_at = runkit.clock.now()
        self._registered_at = float("-inf")  # monotonic time of the last registry write
        #: Outcomes waiting to be written together (the completion buffer).
        self._outbox = CompletionBuffer(
            runkit.ops.report,
            batch=self.batch,
            flush_interval=flush_interval,
            lease_seconds=lambda: runkit.settings.lease.total_seconds(),
            holding=lambda: len(self._held),
        )
        #: Running attempts' log entries, written from one task.
        self._flusher = LogFlusher(
            interval=flush_interval, retry_after=poll_interval, on_lost=self._lease_lost
        )

    # ---------------------------------------------------------------- lifecycle -----------
    @property
    def held(self) -> int:
        """How many runs this worker holds a lease on now."""
        return len(self._held)

    def holding(self) -> set[tuple[uuid.UUID, int]]:
        """The (run id, attempt) pairs this worker holds a lease on now: executing, or
        writing how the attempt ended."""
        return set(self._held)

    def stop(self) -> None:
        """Graceful: claim nothing more; running executors get ``grace_period`` seconds to
        finish, then their runs are released back to the queue (not counted as interrupts)."""
        self._stopping = True
        self._poke()

    def abort(self) -> None:
        """Stop at once, writing nothing more: leases expire and the rescuer requeues."""
        self._stopping = True
        self._aborted = True
        if self._tg is not None:
            self._tg.cancel_scope.cancel()

    def info(self) -> WorkerInfo:
        """This worker as the registry shows it, seen now."""
        host, pid = socket.gethostname(), os.getpid()
        return WorkerInfo(
            id=self.worker_id,
            host=host,
            pid=pid,
            kinds=tuple(sorted(self.kinds)),
            concurrency=self.concurrency,
            started_at=self._started_at,
            last_seen_at=self.runkit.clock.now(),
        )

    async def run(self, *, task_status: TaskStatus[Worker] = anyio.TASK_STATUS_IGNORED) -> None:
        self._started_at = self.runkit.clock.now()
        await self._register()
        log.info(
            "worker %s started: kinds %s, concurrency %d",
            self.worker_id,
            ", ".join(sorted(self.kinds)) or "(none)",
            self.concurrency,
        )
        try:
            await self._run(task_status)
        finally:
            if self._stopping and not self._aborted:
                # Graceful stop: leave the registry now (a crash or abort lets the row expire).
                with anyio.move_on_after(5, shield=True):
                    try:
                        await self.runkit.ops.unregister_worker(self.worker_id)
                    except Exception:
                        log.warning("could not unregister worker %s", self.worker_id)

    async def _register(self) -> None:
        """Write (or renew) this worker's registry row. Best effort: a worker that cannot
        reach the registry still works; clients see it again at its next heartbeat."""
        try:
            await self.runkit.ops.register_worker(self.info())
            self._registered_at = time.monotonic()
        except Exception:
            log.warning("could not register worker %s", self.worker_id, exc_info=True)

    async def _run(self, task_status: TaskStatus[Worker]) -> None:
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._forward_wakeups)
            tg.start_soon(self._heartbeat_loop)
            tg.start_soon(self._outbox.run)
            tg.start_soon(self._flusher.run, tg)
            if self.rescue:
                tg.start_soon(self._rescue_loop)
            task_status.started(self)
            try:
                await self._claim_loop(tg)
                await self._drain()
            finally:
                tg.cancel_scope.cancel()
        self._tg = None

    def _poke(self) -> None:
        self._dirty = True
        self._wake.fire()

    async def _forward_wakeups(self) -> None:
        while True:
            await self.runkit.wakeups.work.wait()
            self._poke()

    # ---------------------------------------------------------------- claiming ------------
    async def _claim_loop(self, tg: TaskGroup) -> None:
        while not self._stopping:
            # A slot frees when its executor returns, not when its outcome is written: a
            # worker waiting for its own commits ran at half speed (docs/benchmarks.md).
            # Outcomes being written hold leases too; at most one more slot's worth each.
            free = min(self.concurrency - self._executing, 2 * self.concurrency - len(self._held))
            if free > 0 and self._dirty:
                pause = self._pacer.pause(busy=bool(self._held))
                if pause:
                    await anyio.sleep(pause)
                    continue  # stopping, or slots taken meanwhile: look again
                self._dirty = False
                want = min(free, self.batch)
                hints, self._hints = self._hints, self.runkit.wakeups.remote_work
                try:
                    runs = await self.runkit.ops.claim(self.worker_id, want, kinds=self.kinds)
                except Exception:
                    log.exception("claim failed; retrying after %.1fs", self.poll_interval)
                    runs = []
                for run in runs:
                    log.info("claimed run %s (%s), attempt %d", run.id, run.kind, run.attempt)
                    tg.start_soon(self._execute, self._hold(run))
                longest = waited(runs, self.runkit.clock.now())
                self._pacer.claimed(len(runs), want, longest, contested=hints != self._hints)
                if self._pacer.backlog:
                    self._dirty = True  # there may be more
                    await anyio.lowlevel.checkpoint()
                    continue
            if free <= 0:
                await self._wake.wait(self.poll_interval)  # a slot frees: _execute pokes
            elif not self._dirty and not await self._wake.wait(self.poll_interval):
                self._dirty = True  # polling fallback: wake-ups are hints and may be lost

    def _hold(self, run: Run) -> _Held:
        lease = Lease(run.id, run.attempt, run.lease_token or "")
        held = self._held[(run.id, run.attempt)] = _Held(run, lease, anyio.CancelScope())
        self._executing += 1
        return held

    def _executed(self, held: _Held) -> None:
        """``held``'s executor is done (once): its slot is free for the next claim."""
        if held.executing:
            held.executing = False
            self._executing -= 1
            self._poke()

    async def _drain(self) -> None:
        """Graceful shutdown: wait up to the grace period, then release what is left."""
        with anyio.move_on_after(self.grace_period):
            while self._held:
                await self._wake.wait(0.1)
        for held in list(self._held.values()):
            if held.stop is None:
                held.stop = "release"
            held.scope.cancel()
        while self._held:
            await self._wake.wait(0.1)

    # ---------------------------------------------------------------- executing -----------
    async def _execute(self, held: _Held) -> None:
        try:
            await self._execute_held(held)
        except Exception:  # never let one run take the worker down
            log.exception("run %s: unexpected error in the worker", held.run.id)
        finally:
            self._executed(held)
            self._held.pop((held.run.id, held.lease.attempt), None)
            self._poke()

    async def _execute_held(self, held: _Held) -> None:
        run = held.run
        kind = held.kind = self.runkit.kinds.get(run.kind)
        if kind is None:
            # Claims take only this worker's kinds, so this is a store that ignored the
            # filter: hand the run back for a worker that has the kind, never fail it.
            log.warning("run %s: kind %r is not served here; releasing it", run.id, run.kind)
            await self._report(held, lambda: self.runkit.ops.release(held.lease))
            return
        try:
            definition = kind.validate(run.definition)
        except ValidationError as invalid:
            body = _fatal(invalid)
            await self._report(held, lambda: self.runkit.ops.fail(held.lease, body))
            return
        ctx = held.ctx = AttemptContext(
            self.runkit, run, held.lease, definition, self.worker_id, self._flusher.pending
        )
        ctx._scope = held.scope
        outcome = await run_attempt(kind, ctx, held.scope)
        logs = await ctx.close_logs()
        self._executed(held)
        if held.stop == "lost":
            return  # fenced out: write nothing more
        # The last entries go with the outcome, in its transaction.
        await self._finish(held, kind, outcome, logs)

    def _lease_lost(self, ctx: AttemptContext) -> None:
        """A log flush found the lease gone: stop the attempt, and write nothing more."""
        held = self._held.get((ctx.run_id, ctx.attempt))
        if held is not None:
            held.stop = "lost"
            held.scope.cancel()

    async def _finish(
        self, held: _Held, kind: Kind, outcome: Outcome, logs: list[NewLogEntry]
    ) -> None:
        rk, lease, run = self.runkit, held.lease, held.run
        if outcome.kind == "stopped":
            if held.stop == "release":
                await self._report(held, lambda: rk.ops.release(lease, logs=logs))
            elif held.stop in ("cancel", "pause"):
                await self._report(held, lambda: rk.ops.stopped(lease, logs=logs))
            return
        if outcome.kind == "result":
            await self._submit(held, rk.ops.completion(lease, outcome.result, logs=logs, known=run))
        elif outcome.kind == "wait":
            assert outcome.wait is not None
            wait = outcome.wait
            await self._report(held, lambda: rk.ops.suspend(lease, wait, logs=logs))
        elif outcome.kind == "park":
            if logs:
                await self._report(held, lambda: rk.ops.append_logs(lease, logs))
            await self._report(held, lambda: rk.ops.park(lease, timeout=outcome.park_timeout))
        elif outcome.kind == "timeout":
            body = {
                "type": "Timeout",
                "message": f"timed out after {kind.timeout_seconds} s",
                "retryable": False,
            }
            report = rk.ops.failure(lease, body, reason="timeout", logs=logs, known=run)
            await self._submit(held, report)
        else:
            exc = outcome.error
            assert exc is not None
            policy = retry_policy(kind, held.ctx.definition if held.ctx else None)
            failed = failure(exc, policy, run.retry_count, run.attempt, rk.clock.now())
            if failed.retry_at is None:
                # Redacted like the stored error: a message may hold a connection string.
                shown = redact_text(str(failed.body["message"]))[:200]
                log.info("run %s failed: %s: %s", run.id, failed.body["type"], shown)
            report = rk.ops.failure(
                lease,
                failed.body,
                retry_at=failed.retry_at,
                reason=failed.reason,
                logs=logs,
                known=run,
            )
            await self._submit(held, report)

    # ---------------------------------------------------------------- writing outcomes ----
    async def _submit(self, held: _Held, report: Report) -> None:
        """Write ``report`` with the next batch of outcomes (the completion buffer)."""
        result = await self._outbox.submit(report)
        if isinstance(result, (LeaseLost, IllegalTransition)):
            log.info(
                "run %s attempt %s: outcome dropped (%s)", held.run.id, held.lease.attempt, result
            )
        elif isinstance(result, BaseException):
            log.warning("run %s: outcome not written; the rescuer will requeue it", held.run.id)
        else:
            _log_outcome(result)

    async def _report(self, held: _Held, call: Callable[[], Awaitable[Any]]) -> None:
        """A fenced write of the attempt's outcome. A lost lease means another attempt owns
        the run now: drop the outcome silently (that is the fence working)."""
        try:
            _log_outcome(await persist(call, self.runkit.settings.lease.total_seconds()))
        except (LeaseLost, IllegalTransition) as exc:
            log.info(
                "run %s attempt %s: outcome dropped (%s)", held.run.id, held.lease.attempt, exc
            )
        except Exception:
            log.warning("run %s: outcome not written; the rescuer will requeue it", held.run.id)

    # ---------------------------------------------------------------- heartbeat -----------
    async def _heartbeat_loop(self) -> None:
        interval = min(self.runkit.settings.heartbeat.total_seconds(), self.control_interval)
        while True:
            await anyio.sleep(interval)
            await self._heartbeat_once()

    async def _heartbeat_once(self) -> None:
        if time.monotonic() - self._registered_at >= self.runkit.settings.heartbeat.total_seconds():
            await self._register()
        held = list(self._held.values())
        if not held:
            self._last_heartbeat = time.monotonic()
            return
        try:
            answers = await self.runkit.ops.heartbeat([h.lease for h in held])
        except Exception:
            log.warning("heartbeat failed", exc_info=True)
            # Self-fencing: past one lease without a heartbeat, others may own our runs.
            if time.monotonic() - self._last_heartbeat > self.runkit.settings.lease.total_seconds():
                for h in held:
                    self._stop(h, "lost")
            return
        self._last_heartbeat = time.monotonic()
        for h in held:
            # The store answers per run; a superseded attempt of ours sees the fence fail.
            self._react(h, answers.get(h.run.id) if _current(h, held) else None)

    def _react(self, h: _Held, status: Status | None) -> None:
        """Act on a heartbeat answer: the run's status as the store has it now."""
        if status is None:
            self._stop(h, "lost")
        elif status is Status.CANCELLING:
            if h.kind is None or h.kind.cancellable:
                self._stop(h, "cancel")
        elif status is Status.PAUSING:
            pausable = h.kind is not None and h.kind.pausable and h.ctx is not None
            if not pausable:
                self._stop(h, "pause")  # restarts from scratch on resume
            elif h.pause_deadline is None:
                assert h.ctx is not None
                h.ctx.pause_requested = True  # honoured at the next checkpoint
                h.stop = h.stop or "pause"
                h.pause_deadline = time.monotonic() + self.pause_grace
            elif time.monotonic() >= h.pause_deadline:
                h.scope.cancel()  # no checkpoint in time: stop anyway
        elif status is Status.RUNNING and h.stop == "pause" and not h.scope.cancel_called:
            # Resumed before the executor reached a checkpoint: carry on.
            h.stop, h.pause_deadline = None, None
            if h.ctx is not None:
                h.ctx.pause_requested = False

    @staticmethod
    def _stop(h: _Held, why: str) -> None:
        if h.stop in (None, "pause") or why == "lost":
            h.stop = why
        h.scope.cancel()

    # ---------------------------------------------------------------- rescuer -------------
    async def _rescue_loop(self) -> None:
        interval = self.runkit.settings.rescue_interval.total_seconds()
        while True:
            await anyio.sleep(interval)
            try:
                moved = await self.runkit.ops.rescue()
            except Exception:
                log.warning("rescue sweep failed", exc_info=True)
                continue
            if moved:
                log.info("rescuer moved %d run(s)", moved)


def _current(h: _Held, held: list[_Held]) -> bool:
    """Whether ``h`` is the newest attempt of its run among those this worker holds."""
    return all(o.run.id != h.run.id or o.lease.attempt <= h.lease.attempt for o in held)


def _log_outcome(written: Any) -> None:
    if isinstance(written, Run):
        log.info(
            "run %s (%s) attempt %d: %s%s",
            written.id,
            written.kind,
            written.attempt,
            written.status.value,
            f" ({written.status_reason})" if written.status_reason else "",
        )


def _fatal(exc: BaseException) -> dict[str, Any]:
    return error_body(exc, retryable=False)
