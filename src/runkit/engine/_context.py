"""``AttemptContext``: what an executor sees of its run, and its only way to write to it.

Log entries are buffered and flushed by the worker every few milliseconds (and always
before the attempt's outcome is reported), so a chatty executor costs a commit per flush,
not per line. Every write is fenced by the attempt's lease: after the lease is lost the
context raises :class:`~runkit.LeaseLost` and the worker cancels the executor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import anyio.from_thread
import anyio.lowlevel

from ..domain.context import RunContext
from ..domain.models import Lease, NewLogEntry, Run

if TYPE_CHECKING:
    from ..service.runkit import Runkit

_LEVELS = frozenset({"debug", "info", "warning", "error"})


class AttemptContext:
    """The engine's :class:`runkit.RunContext`: handed to ``executor(ctx)``, one per attempt."""

    def __init__(
        self,
        runkit: Runkit,
        run: Run,
        lease: Lease,
        definition: Any,
        worker_id: str,
    ) -> None:
        self.runkit = runkit
        self.run = run
        self.lease = lease
        #: The run's definition structured into the kind's config class.
        self.definition = definition
        self.worker_id = worker_id
        #: What a previous attempt saved with :meth:`checkpoint` (None: start afresh).
        self.saved_checkpoint: dict[str, Any] | None = (
            dict(run.checkpoint) if run.checkpoint is not None else None
        )
        self._progress: dict[str, Any] = dict(run.progress)
        self._buffer: list[NewLogEntry] = []
        self._pending = anyio.Event()
        self._lock = anyio.Lock()  # one flush at a time keeps entries in order
        # Set by the worker: a pause was asked; honoured at the next checkpoint.
        self.pause_requested = False
        self._scope: anyio.CancelScope | None = None
        self.stopped_at_checkpoint = False

    @property
    def run_id(self) -> UUID:
        return self.run.id

    @property
    def attempt(self) -> int:
        return self.lease.attempt

    # ---------------------------------------------------------------- logs ----------------
    async def log(
        self,
        level: str,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Buffer a log entry; it is written within a few ms, tagged with attempt and worker."""
        if level not in _LEVELS:
            raise ValueError(f"log level must be one of {sorted(_LEVELS)}, not {level!r}")
        self._buffer.append(
            NewLogEntry(
                str(message),
                level=level,
                event=event,
                data=dict(data or {}),
                occurred_at=self.runkit.clock.now(),
                attempt=self.attempt,
                worker_id=self.worker_id,
            )
        )
        self._pending.set()
        await anyio.lowlevel.checkpoint()

    async def flush(self) -> None:
        """Write buffered entries now. Raises LeaseLost if the lease is gone."""
        async with self._lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            self._pending = anyio.Event()
            # Shielded: a cancel arriving mid-write must not drop entries already taken.
            with anyio.CancelScope(shield=True):
                await self.runkit.ops.append_logs(self.lease, batch)

    def take_logs(self) -> list[NewLogEntry]:
        """Hand over the unwritten entries (the worker writes them with the attempt's
        outcome, in one transaction). Only once the attempt's flusher has stopped."""
        batch, self._buffer = self._buffer, []
        return batch

    async def wait_pending(self) -> None:
        await self._pending.wait()

    # ---------------------------------------------------------------- progress ------------
    async def progress(self, progress: Mapping[str, Any]) -> None:
        """Replace the run's ``progress`` object (written at once, after buffered logs)."""
        self._progress = dict(progress)
        await self.flush()
        await self.runkit.ops.set_progress(self.lease, self._progress)

    async def checkpoint(
        self, state: Mapping[str, Any], *, progress: Mapping[str, Any] | None = None
    ) -> None:
        """Save ``state`` for the next attempt (after a pause, retry or crash), and
        ``progress`` if given, in one write. If a pause was asked for, the executor stops
        here: this call does not return."""
        if progress is not None:
            self._progress = dict(progress)
        await self.flush()
        await self.runkit.ops.set_progress(self.lease, self._progress, checkpoint=state)
        self.saved_checkpoint = dict(state)
        if self.pause_requested and self._scope is not None:
            self.stopped_at_checkpoint = True
            self._scope.cancel()
            await anyio.lowlevel.checkpoint()  # raises the cancellation here

    # ---------------------------------------------------------------- children ------------
    async def start_child(
        self, kind: str, definition: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Run:
        """Create and execute a child run (``parentActionRunId`` = this run)."""
        created = await self.runkit.create(
            kind, definition, parent_action_run_id=self.run_id, execute=True, **kwargs
        )
        return created.run

    async def wait_for(self, run_ids: Iterable[UUID], *, poll: float = 1.0) -> list[Run]:
        """Wait until every run in ``run_ids`` is terminal and return them. This attempt
        keeps its worker slot meanwhile, so children need another free slot."""
        ids = list(run_ids)
        done: dict[UUID, Run] = {}
        while True:
            for rid in ids:
                if rid not in done:
                    run = await self.runkit.get(rid)
                    if run.status.terminal:
                        done[rid] = run
            pending = [rid for rid in ids if rid not in done]
            if not pending:
                return [done[rid] for rid in ids]
            # Every transition fires the run's log signal; poll covers other processes.
            await self.runkit.wakeups.logs(pending[0]).wait(poll)

    # ---------------------------------------------------------------- sync executors ------
    @property
    def sync(self) -> SyncAttemptContext:
        """Blocking helpers for executors that are plain functions (run in a thread)."""
        return SyncAttemptContext(self)


class SyncAttemptContext:
    """``ctx.sync.log(...)`` from a worker thread. Each call is also a cancellation point:
    after a cancel, pause or timeout it raises, so the thread unwinds."""

    def __init__(self, ctx: AttemptContext) -> None:
        self._ctx = ctx

    def log(
        self,
        level: str,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        anyio.from_thread.check_cancelled()
        anyio.from_thread.run(lambda: self._ctx.log(level, message, event=event, data=data))

    def progress(self, progress: Mapping[str, Any]) -> None:
        anyio.from_thread.check_cancelled()
        anyio.from_thread.run(self._ctx.progress, progress)

    def checkpoint(
        self, state: Mapping[str, Any], *, progress: Mapping[str, Any] | None = None
    ) -> None:
        anyio.from_thread.check_cancelled()
        anyio.from_thread.run(lambda: self._ctx.checkpoint(state, progress=progress))
        anyio.from_thread.check_cancelled()

    def check_cancelled(self) -> None:
        anyio.from_thread.check_cancelled()


def as_run_context(ctx: AttemptContext) -> RunContext:
    """The engine's context is what kind authors program against (mypy checks it here)."""
    return ctx
