"""The synchronous facade: a blocking portal around one :class:`~runkit.Runkit`. Not a twin:
every call runs the async implementation on the portal's event loop thread."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Self

from anyio.from_thread import BlockingPortal, start_blocking_portal

from ..engine import embedded_workers
from .runkit import Runkit

_FORWARDED = frozenset(
    {
        "get",
        "list",
        "logs",
        "create",
        "create_many",
        "execute",
        "pause",
        "resume",
        "cancel",
        "retry",
        "delete",
        "approve",
        "reject",
        "display_status",
        "display_statuses",
        "wait",
        "workers",
    }
)


class SyncRunkit:
    """``with SyncRunkit(lambda: Runkit("sqlite:///runs.db")) as rk: rk.create("noop")``.

    The factory runs on the portal's loop, so the Runkit is built where it will be used.
    Methods are those of :class:`Runkit` listed in ``_FORWARDED``, called synchronously.
    """

    def __init__(self, factory: Callable[[], Runkit], *, backend: str = "asyncio") -> None:
        self._factory = factory
        self._backend = backend
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._runkit_cm: AbstractContextManager[Runkit] | None = None
        self.runkit: Runkit | None = None

    def __enter__(self) -> Self:
        self._portal_cm = start_blocking_portal(self._backend)
        self._portal = self._portal_cm.__enter__()

        async def build() -> Runkit:
            return self._factory()

        # Entered and exited by one task on the portal's loop, as its task group requires.
        self._runkit_cm = self._portal.wrap_async_context_manager(self._portal.call(build))
        self.runkit = self._runkit_cm.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._portal_cm is not None and self._runkit_cm is not None
        try:
            self._runkit_cm.__exit__(exc_type, exc, tb)
        finally:
            self._portal_cm.__exit__(exc_type, exc, tb)
            self._portal = self._portal_cm = self._runkit_cm = None

    def create_in(self, connection: Any, kind: str, definition: Any = None, **options: Any) -> Any:
        """:meth:`Runkit.create_in`: already synchronous, it runs on the caller's thread
        inside the caller's transaction."""
        if self.runkit is None:
            raise RuntimeError("use SyncRunkit inside a with block")
        return self.runkit.create_in(connection, kind, definition, **options)

    def embedded_workers(self, *, concurrency: int = 10, **options: Any) -> Any:
        """A context manager running a :class:`~runkit.Worker` on the portal's event loop,
        in the background thread, for the duration of the ``with`` block; it stops
        gracefully on exit (see :func:`runkit.embedded_workers` for ``options``)::

            with SyncRunkit(factory) as rk, rk.embedded_workers(concurrency=4):
                run = rk.create("greet", {"name": "Ada"}, execute=True).run
                print(rk.wait(run.id, timeout=30).result)
        """
        portal, runkit = self._portal, self.runkit
        if portal is None or runkit is None:
            raise RuntimeError("use SyncRunkit inside a with block")
        return portal.wrap_async_context_manager(
            embedded_workers(runkit, concurrency=concurrency, **options)
        )

    def __getattr__(self, name: str) -> Any:
        if name not in _FORWARDED:
            raise AttributeError(name)
        portal, runkit = self._portal, self.runkit
        if portal is None or runkit is None:
            raise RuntimeError("use SyncRunkit inside a with block")
        method = getattr(runkit, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return portal.call(lambda: method(*args, **kwargs))

        return call
