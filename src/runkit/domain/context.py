"""What an executor may ask of its run: the run context, as a protocol.

Kind authors write against this (``runkit.RunContext``); the engine hands each attempt an
object that implements it (``runkit.engine._context``). Kinds therefore depend on the domain
only, never on the engine or the facade that loads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from .models import Run


class SyncRunContext(Protocol):
    """``ctx.sync``: blocking helpers for executors that are plain functions (they run in a
    worker thread). Each call is also a cancellation point: after a cancel, pause or timeout
    it raises, so the thread unwinds."""

    def log(
        self,
        level: str,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None: ...

    def progress(self, progress: Mapping[str, Any]) -> None: ...

    def checkpoint(
        self, state: Mapping[str, Any], *, progress: Mapping[str, Any] | None = None
    ) -> None: ...

    def check_cancelled(self) -> None: ...

    def start_child(
        self,
        kind: str,
        definition: Mapping[str, Any] | None = None,
        *,
        step: str | None = None,
        **kwargs: Any,
    ) -> Run: ...

    def wait_for(self, run_ids: Iterable[UUID | str], *, fail_fast: bool = False) -> list[Run]: ...

    def sleep(self, seconds: float) -> None: ...

    def step(self, name: str, fn: Callable[[], Any]) -> Any: ...


class RunContext(Protocol):
    """Handed to ``executor(ctx)``, one per attempt."""

    #: The run as it was claimed for this attempt.
    run: Run
    #: The run's definition, structured into the kind's config class (a dict without one).
    definition: Any
    #: The worker executing this attempt.
    worker_id: str
    #: What a previous attempt saved with :meth:`checkpoint` (None: start afresh).
    saved_checkpoint: dict[str, Any] | None

    @property
    def run_id(self) -> UUID: ...

    @property
    def attempt(self) -> int: ...

    async def log(
        self,
        level: str,
        message: str,
        *,
        event: str | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """Buffer a log entry (``debug``, ``info``, ``warning``, ``error``); it is written
        within a few ms, tagged with the attempt and the worker."""
        ...

    async def flush(self) -> None:
        """Write the buffered entries now."""
        ...

    async def progress(self, progress: Mapping[str, Any]) -> None:
        """Replace the run's ``progress`` object."""
        ...

    async def checkpoint(
        self, state: Mapping[str, Any], *, progress: Mapping[str, Any] | None = None
    ) -> None:
        """Save ``state`` for the next attempt; a pause asked for stops the executor here."""
        ...

    async def start_child(
        self,
        kind: str,
        definition: Mapping[str, Any] | None = None,
        *,
        step: str | None = None,
        **kwargs: Any,
    ) -> Run:
        """Create and execute a child run of this one, once per run: later executions get
        the same child back (named by ``step``, or by call order without it)."""
        ...

    async def wait_for(
        self, run_ids: Iterable[UUID | str], *, fail_fast: bool = False
    ) -> list[Run]:
        """The children ``run_ids`` once all are terminal (``fail_fast``: or one did not
        succeed). Until then the run waits holding no worker, and the executor runs again
        from the start once they are done."""
        ...

    async def sleep(self, seconds: float) -> None:
        """A durable sleep: the run waits holding no worker, then the executor runs again."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """A durable sleep until ``when`` (an aware datetime)."""
        ...

    async def step(self, name: str, fn: Callable[[], Any]) -> Any:
        """``fn()``'s JSON value, computed once per run and remembered in its checkpoint."""
        ...

    async def cancel_child(self, run_id: UUID | str) -> Run:
        """Cancel a child of this run (and its own children)."""
        ...

    async def get_run(self, run_id: UUID | str) -> Run:
        """Read a run."""
        ...

    async def resolve_automation(self, automation_id: str) -> list[dict[str, Any]] | None:
        """The steps the host's ``runkit_resolve_automation`` hook gives ``automation_id``."""
        ...

    @property
    def sync(self) -> SyncRunContext: ...
