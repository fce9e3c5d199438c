"""``AttemptContext``: what an executor sees of its run, and its only way to write to it.

Log entries are buffered and flushed by the worker every few milliseconds (and always
before the attempt's outcome is reported), so a chatty executor costs a commit per flush,
not per line. Every write is fenced by the attempt's lease: after the lease is lost the
context raises :class:`~runkit.LeaseLost` and the worker cancels the executor.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

import anyio
import anyio.from_thread
import anyio.lowlevel

from ..domain import waits
from ..domain.context import RunContext
from ..domain.errors import LeaseLost, RunNotFound
from ..domain.models import SYSTEM, Lease, NewLogEntry, Principal, Run
from ..domain.signals import Suspend
from ..domain.waits import Wait

if TYPE_CHECKING:
    from ..service.runkit import Runkit

_LEVELS = frozenset({"debug", "info", "warning", "error"})
#: The checkpoint key of runkit's memo; ``saved_checkpoint`` never shows it to the kind.
MEMO = "runkit.memo"


class AttemptContext:
    """The engine's :class:`runkit.RunContext`: handed to ``executor(ctx)``, one per attempt."""

    def __init__(
        self,
        runkit: Runkit,
        run: Run,
        lease: Lease,
        definition: Any,
        worker_id: str,
        on_pending: Callable[[AttemptContext], None] | None = None,
    ) -> None:
        self.runkit = runkit
        self.run = run
        self.lease = lease
        #: The run's definition structured into the kind's config class.
        self.definition = definition
        self.worker_id = worker_id
        saved = dict(run.checkpoint) if run.checkpoint is not None else None
        #: runkit's own memo (steps, children, sleeps), kept in the checkpoint under MEMO.
        self._memo: dict[str, Any] = dict((saved or {}).pop(MEMO, None) or {})
        if saved == {} and self._memo:
            saved = None  # only the memo was saved: the kind itself saved nothing
        #: What a previous attempt saved with :meth:`checkpoint` (None: start afresh).
        self.saved_checkpoint: dict[str, Any] | None = saved
        self._sleeps = 0
        self._children = 0
        self._progress: dict[str, Any] = dict(run.progress)
        self._buffer: list[NewLogEntry] = []
        #: Told when the buffer gets its first entry (the worker's LogFlusher).
        self._on_pending = on_pending
        self._lock = anyio.Lock()  # one flush at a time keeps entries in order
        #: The attempt has ended: its last entries went with its outcome (close_logs).
        self.logs_closed = False
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
        if len(self._buffer) == 1 and self._on_pending is not None:
            self._on_pending(self)
        await anyio.lowlevel.checkpoint()

    async def flush(self) -> None:
        """Write buffered entries now. Raises LeaseLost if the lease is gone."""
        async with self._lock:
            if not self._buffer or self.logs_closed:
                return
            batch, self._buffer = self._buffer, []
            # Shielded: a cancel arriving mid-write must not drop entries already taken.
            with anyio.CancelScope(shield=True), self._kept_if_failed(batch):
                await self.runkit.ops.append_logs(self.lease, batch)

    @contextlib.contextmanager
    def _kept_if_failed(self, batch: list[NewLogEntry]) -> Iterator[None]:
        """If the write of ``batch`` fails, put its entries back ahead of any logged since,
        so the next write (the flusher's retry, a progress write or the outcome) takes them
        in order. A write that failed after it committed (the connection lost before
        COMMIT's reply) writes them twice: a duplicated line is better than a missing one.
        A lost lease drops them: nothing may be written for the attempt any more."""
        try:
            yield
        except LeaseLost:
            raise
        except Exception:
            self._buffer[:0] = batch
            raise

    async def _save(self, *, checkpoint: bool = False) -> None:
        """Write progress (and the checkpoint) with the buffered log entries, in one
        transaction, after any flush under way (entries stay in order)."""
        async with self._lock:
            batch, self._buffer = self._buffer, []
            # Shielded, and kept if the write fails: taken entries must not be dropped.
            with anyio.CancelScope(shield=True), self._kept_if_failed(batch):
                await self.runkit.ops.set_progress(
                    self.lease,
                    self._progress,
                    checkpoint=self._state() if checkpoint else None,
                    logs=batch,
                )

    async def close_logs(self) -> list[NewLogEntry]:
        """End the attempt's logging and hand over the unwritten entries (the worker writes
        them with the attempt's outcome, in one transaction): after any flush under way, so
        entries stay in order, and no flush writes after it."""
        async with self._lock:
            self.logs_closed = True
            batch, self._buffer = self._buffer, []
        return batch

    # ---------------------------------------------------------------- progress ------------
    async def progress(self, progress: Mapping[str, Any]) -> None:
        """Replace the run's ``progress`` object (written at once, after buffered logs)."""
        self._progress = dict(progress)
        await self._save()

    async def checkpoint(
        self, state: Mapping[str, Any], *, progress: Mapping[str, Any] | None = None
    ) -> None:
        """Save ``state`` for the next attempt (after a pause, retry or crash), and
        ``progress`` if given, in one write. If a pause was asked for, the executor stops
        here: this call does not return."""
        if progress is not None:
            self._progress = dict(progress)
        self.saved_checkpoint = dict(state)
        await self._save(checkpoint=True)
        if self.pause_requested and self._scope is not None:
            self.stopped_at_checkpoint = True
            self._scope.cancel()
            await anyio.lowlevel.checkpoint()  # raises the cancellation here

    # ---------------------------------------------------------------- children ------------
    async def start_child(
        self,
        kind: str,
        definition: Mapping[str, Any] | None = None,
        *,
        step: str | None = None,
        **kwargs: Any,
    ) -> Run:
        """Create and execute a child run (``parentActionRunId`` = this run), once.

        The child is made once per run: every later execution of this run (after a wait, a
        crash or an automatic retry) gets the same child back, so an executor that waits for
        its children can run again from the start. ``step`` names the child; without it, the
        n-th ``start_child`` of an execution is the same child in every execution (so keep
        their order fixed). A manual retry of the run starts afresh, with new children.
        The child's trigger (``principal``) is its parent's unless given."""
        if step is None:
            self._children += 1
            step = f"#{self._children}"
        if "principal" not in kwargs and self.run.trigger_source_id is not None:
            # A child is started on behalf of whoever started its parent: the same trigger,
            # so an approval gate's four-eyes rule still knows who asked.
            kwargs["principal"] = Principal(
                self.run.trigger_source_id,
                kind=self.run.trigger_source_type or "user",
                tenant=self.run.tenant,
            )
        if "idempotency_key" in kwargs:
            raise TypeError("start_child: pass step= or idempotency_key=, not both")
        known = self._memo.get(f"child:{step}")
        if isinstance(known, str):
            try:
                return await self.runkit.get(known)
            except RunNotFound:
                pass  # deleted since: make it again
        # The key covers a crash between the create and the memo write below; the memo
        # covers a key that outlived its TTL during a long wait.
        nonce = await self._generation()
        digest = hashlib.sha256(step.encode()).hexdigest()[:32]
        created = await self.runkit.create(
            kind,
            definition,
            parent_action_run_id=self.run_id,
            execute=True,
            idempotency_key=f"runkit.child:{self.run_id}:{nonce}:{digest}",
            **kwargs,
        )
        await self._remember({f"child:{step}": str(created.run.id)})
        return created.run

    async def wait_for(
        self, run_ids: Iterable[UUID | str], *, fail_fast: bool = False
    ) -> list[Run]:
        """The children ``run_ids`` once every one is terminal (with ``fail_fast``: or once
        one failed, was cancelled or rejected), in the order given.

        If they are not, the attempt ends here: the run waits in ``waiting``, holding no
        worker and no concurrency slot, and once they are done the executor runs again from
        the start, where this call returns at once. Code before it must be safe to repeat
        (children by ``step=``, other effects through :meth:`step`)."""
        ids = [UUID(str(r)) for r in run_ids]
        found = await self.runkit.mover.waits.awaited(self.run, ids)
        for rid in ids:
            child = found.get(rid)
            if child is None:
                raise RunNotFound(rid)
            if child.parent_action_run_id != self.run_id:
                raise ValueError(f"run {rid} is not a child of run {self.run_id}")
        wait = Wait(tuple(ids), fail_fast=fail_fast)
        if waits.satisfied(wait, found, self.runkit.clock.now()):
            return waits.ordered(ids, found)
        raise Suspend(wait)

    async def sleep_until(self, when: datetime) -> None:
        """Return at ``when`` (an aware datetime): until then the run waits in ``waiting``,
        holding no worker, and the executor runs again from the start at ``when``."""
        if when.tzinfo is None:
            raise ValueError("sleep_until needs an aware datetime")
        if self.runkit.clock.now() >= when:
            return
        raise Suspend(Wait(until=when))

    async def sleep(self, seconds: float) -> None:
        """A durable ``sleep``: the wake-up time is fixed by the first execution that reaches
        this call (the n-th ``sleep`` of an execution is the same sleep in every execution)."""
        self._sleeps += 1
        key = f"sleep:{self._sleeps}"
        when = self._memo.get(key)
        if not isinstance(when, str):
            when = (self.runkit.clock.now() + timedelta(seconds=seconds)).isoformat()
            await self._remember({key: when})
        await self.sleep_until(datetime.fromisoformat(when))

    async def step(self, name: str, fn: Callable[[], Any]) -> Any:
        """``fn()``'s value, computed once for this run: its first successful call is stored
        in the run's checkpoint (it must be JSON) and later executions get it back without
        calling ``fn``. If ``fn`` waits (:meth:`wait_for`), nothing is stored yet."""
        key = f"step:{name}"
        if key in self._memo:
            return self._memo[key]
        value = fn()
        if inspect.isawaitable(value):
            value = await value
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"step {name!r} returned a value that is not JSON: {exc}") from None
        await self._remember({key: value})
        return value

    async def cancel_child(self, run_id: UUID | str) -> Run:
        """Cancel a child of this run (and its own children)."""
        child = await self.runkit.get(run_id)
        if child.parent_action_run_id != self.run_id:
            raise ValueError(f"run {child.id} is not a child of run {self.run_id}")
        return await self.runkit.cancel(child.id, principal=SYSTEM, reason="cancelled by parent")

    async def get_run(self, run_id: UUID | str) -> Run:
        """Read a run (RunNotFound if there is none)."""
        return await self.runkit.get(run_id)

    async def resolve_automation(self, automation_id: str) -> list[dict[str, Any]] | None:
        """The steps the host's ``runkit_resolve_automation`` hook gives ``automation_id``."""
        steps = self.runkit.plugins.hook.runkit_resolve_automation(automation_id=automation_id)
        return None if steps is None else [dict(s) for s in steps]

    # ---------------------------------------------------------------- memo ----------------
    async def _remember(self, values: Mapping[str, Any]) -> None:
        """Store ``values`` in the run's memo (kept in its checkpoint, beside the kind's own
        state), now: it must survive a crash right after."""
        self._memo.update(values)
        await self._save(checkpoint=True)

    async def _generation(self) -> str:
        """A value fixed for this run until a manual retry clears its checkpoint: child
        idempotency keys carry it, so a retried run makes new children."""
        nonce = self._memo.get("generation")
        if not isinstance(nonce, str):
            nonce = uuid.uuid4().hex[:12]
            await self._remember({"generation": nonce})
        return nonce

    def _state(self) -> dict[str, Any]:
        state = dict(self.saved_checkpoint or {})
        if self._memo:
            state[MEMO] = dict(self._memo)
        return state

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

    # Durable waits from a thread: a wait that must suspend raises out of the thread, and
    # the worker ends the attempt exactly as for an async executor.
    def start_child(
        self,
        kind: str,
        definition: Mapping[str, Any] | None = None,
        *,
        step: str | None = None,
        **kwargs: Any,
    ) -> Run:
        anyio.from_thread.check_cancelled()
        return anyio.from_thread.run(
            lambda: self._ctx.start_child(kind, definition, step=step, **kwargs)
        )

    def wait_for(self, run_ids: Iterable[UUID | str], *, fail_fast: bool = False) -> list[Run]:
        anyio.from_thread.check_cancelled()
        ids = list(run_ids)
        return anyio.from_thread.run(lambda: self._ctx.wait_for(ids, fail_fast=fail_fast))

    def sleep(self, seconds: float) -> None:
        anyio.from_thread.check_cancelled()
        anyio.from_thread.run(self._ctx.sleep, seconds)

    def step(self, name: str, fn: Callable[[], Any]) -> Any:
        """``fn`` runs here, in the executor's thread, once per run."""
        anyio.from_thread.check_cancelled()
        key = f"step:{name}"
        if key in self._ctx._memo:
            return self._ctx._memo[key]
        value = fn()
        anyio.from_thread.run(lambda: self._ctx.step(name, lambda: value))
        return value


def as_run_context(ctx: AttemptContext) -> RunContext:
    """The engine's context is what kind authors program against (mypy checks it here)."""
    return ctx
