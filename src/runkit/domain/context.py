"""What an executor may ask of its run: the run context, as a protocol.

Kind authors write against this (``runkit.RunContext``); the engine hands each attempt an
object that implements it (``runkit.engine._context``). Kinds therefore depend on the domain
only, never on the engine or the facade that loads them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
        self, kind: str, definition: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> Run:
        """Create and execute a child run of this one."""
        ...

    async def wait_for(self, run_ids: Iterable[UUID], *, poll: float = 1.0) -> list[Run]:
        """Wait until every run in ``run_ids`` is terminal and return them."""
        ...

    @property
    def sync(self) -> SyncRunContext: ...
