"""``Runkit``: the in-process API. Clients' actions and workers' reports both go through here,
and every move of a run is a lookup in the state table followed by a compare-and-set."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from uuid import UUID

import anyio
import anyio.to_thread
import pluggy
from anyio.abc import TaskGroup

from ..domain import creating, moves, redact
from ..domain import inputs as _inputs
from ..domain.clock import Clock, SystemClock
from ..domain.cursor import Cursor
from ..domain.display import display_status
from ..domain.errors import (
    ConfigurationError,
    IdempotencyConflict,
    IllegalTransition,
    RunNotFound,
)
from ..domain.idempotency import IdempotencyPolicy
from ..domain.kind import Kind, KindRegistry
from ..domain.models import (
    Created,
    LogEntry,
    LogPage,
    NewRun,
    Principal,
    Run,
    RunPage,
    RunQuery,
    UserProfile,
    WorkerInfo,
)
from ..domain.settings import Settings
from ..domain.states import Action, Status, allowed_actions
from ..engine._wakeups import Wakeups
from ..storage.base import Store
from ..storage.protocols import NotificationListener, Notifier, TransactionalInsert
from ..storage.urls import open_store
from . import approvals, creates
from .mover import CAS_ATTEMPTS, Mover
from .plugins import (
    HostChecks,
    collect_kinds,
    collect_providers,
    collect_storage,
    make_plugin_manager,
)
from .worker_ops import WorkerOps

__all__ = ["Runkit", "Settings"]


class Runkit:
    """runkit in-process. ``async with Runkit("sqlite:///runs.db") as rk: ...``

    ``store`` is a :class:`~runkit.storage.base.Store` or a URL: ``memory://``,
    ``sqlite:///path.db`` (the embedded default, created and migrated on open),
    ``postgresql+psycopg://...``, or a scheme a plugin registered.

    Clients' actions are its methods; what workers ask (claim, heartbeat, report...) is on
    :attr:`ops`; every move of a run goes through one :class:`~runkit.service.mover.Mover`.
    """

    def __init__(
        self,
        store: Store | str = "sqlite:///runkit.db",
        *,
        plugins: Iterable[object] = (),
        kinds: Iterable[Kind] = (),
        autoload_plugins: bool | None = None,
        clock: Clock | None = None,
        idempotency: IdempotencyPolicy | None = None,
        settings: Settings | None = None,
    ) -> None:
        self.plugins: pluggy.PluginManager = make_plugin_manager(plugins, autoload=autoload_plugins)
        self.kinds: KindRegistry = collect_kinds(self.plugins)
        collect_providers(self.plugins)
        for kind in kinds:
            self.kinds.register(kind, owner="Runkit(kinds=...)")
        if isinstance(store, str):
            store = open_store(store, collect_storage(self.plugins))
        self.store: Store = store
        self.clock: Clock = clock or SystemClock()
        self.idempotency = idempotency or IdempotencyPolicy()
        self.settings = settings or Settings()
        self.wakeups = Wakeups()
        self.mover = Mover(self.store, self.clock, self.kinds, self.settings, self.wakeups)
        #: The worker side: claims, leases, reports, the registry (:class:`WorkerOps`).
        self.ops = WorkerOps(self.mover)
        self.checks = HostChecks(self.kinds, self.plugins)
        self._services: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        await self.store.open()
        # Once per process, off the event loop: the first log entry must not pay for it.
        await anyio.to_thread.run_sync(redact.warm_up)
        # Cross-process wake-ups, both ways, where the store can carry them: workers
        # elsewhere hear of new runs, log streams here hear of entries written elsewhere.
        store = self.store
        sends = isinstance(store, Notifier) and store.notifies_other_processes
        listens = isinstance(store, NotificationListener)
        if sends or listens:
            # Background services live as long as the Runkit is open; enter and exit it in
            # one task (SyncRunkit does, through its portal).
            self._services = anyio.create_task_group()
            await self._services.__aenter__()
            if isinstance(store, Notifier) and sends:
                self._services.start_soon(self.wakeups.send_remote, store.notify)
            if isinstance(store, NotificationListener):
                self._services.start_soon(self.wakeups.listen_remote, store.wait_for_notifications)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._services is not None:
                self._services.cancel_scope.cancel()
                await self._services.__aexit__(None, None, None)
                self._services = None
        finally:
            await self.store.close()

    # ---------------------------------------------------------------- reading -------------
    async def get(self, run_id: UUID | str) -> Run:
        return await self.mover.require(_inputs.run_id(run_id))

    async def list(
        self,
        *,
        action_id: str | None = None,
        kind: str | None = None,
        status: Status | str | None = None,
        parent_action_run_id: UUID | str | None = None,
        tenant: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> RunPage:
        """Runs matching every filter given, newest first; a parent's children (filter
        ``parent_action_run_id``) in the order they were created. ``tenant``: that tenant's
        runs only (None: every run)."""
        query = RunQuery(
            action_id=_inputs.optional_str(action_id, ("action_id",)),
            kind=_inputs.optional_str(kind, ("kind",)),
            status=_inputs.status(status),
            parent_action_run_id=_inputs.optional_uuid(
                parent_action_run_id, ("parent_action_run_id",)
            ),
            limit=_inputs.bounded_int(limit, ("limit",), 1, 100),
            offset=_inputs.bounded_int(offset, ("offset",), 0),
            tenant=_inputs.optional_str(tenant, ("tenant",)),
            oldest_first=parent_action_run_id is not None,
        )
        runs, total = await self.store.list(query)
        users = await self.resolve_users(runs)
        return RunPage(tuple(runs), total, query.limit, query.offset, users)

    async def resolve_users(self, runs: Sequence[Run]) -> dict[str, UserProfile]:
        ids = sorted(
            {
                r.trigger_source_id
                for r in runs
                if r.trigger_source_type == "user" and r.trigger_source_id
            }
        )
        if not ids:
            return {}
        users: dict[str, UserProfile] = {}
        for answer in self.plugins.hook.runkit_resolve_users(user_ids=ids):
            if inspect.isawaitable(answer):
                answer = await answer
            for uid, profile in (answer or {}).items():
                if uid in ids:
                    users[uid] = profile
        return users

    async def logs(
        self, run_id: UUID | str, *, after: Cursor | str | None = None, limit: int = 100
    ) -> LogPage:
        """Up to ``limit`` (1..500) entries after the cursor ``after`` (None: from the
        start), in order: a keyset read, so a deep page costs what the first does. Log
        streams read through here too, with a :class:`Cursor` they keep."""
        rid = _inputs.run_id(run_id)
        limit = _inputs.bounded_int(limit, ("limit",), 1, 500)
        cursor = Cursor.parse(after, rid)
        entries = await self.store.read_logs(rid, after=cursor.seq, limit=limit + 1)
        # Entries prove the run exists; only an empty page costs a second read.
        if not entries and await self.store.get(rid) is None:
            raise RunNotFound(rid)
        has_more = len(entries) > limit
        entries = entries[:limit]
        given = after is not None and after != ""
        next_cursor = entries[-1].cursor if entries else (str(cursor) if given else None)
        return LogPage(tuple(entries), has_more, next_cursor)

    async def iter_logs(
        self, run_id: UUID | str, *, after: Cursor | str | None = None, page_size: int = 500
    ) -> AsyncIterator[LogEntry]:
        """Every entry after ``after`` that exists now, in order, page by page."""
        while True:
            page = await self.logs(run_id, after=after, limit=page_size)
            for entry in page.entries:
                yield entry
            if not page.has_more:
                return
            after = page.next_cursor

    async def workers(self) -> builtins.list[WorkerInfo]:
        """The live workers: registered, and heard from within one lease
        (:attr:`Settings.lease`). A worker that crashed drops out of this list one lease
        after its last heartbeat; the rescuer then deletes its row."""
        return await self.store.list_workers(seen_since=self.clock.now() - self.settings.lease)

    async def wait(
        self, run_id: UUID | str, *, timeout: float | None = None, poll: float = 1.0
    ) -> Run:
        """The run once it is terminal (succeeded, failed, cancelled or rejected).

        Raises :class:`TimeoutError` after ``timeout`` seconds (None: no limit) and
        :class:`RunNotFound` if the run does not exist or is deleted meanwhile. Wakes on the
        run's own moves (in this process, or another one through the store's notifications)
        and re-reads the run at least every ``poll`` seconds whatever happens.
        """
        rid = _inputs.run_id(run_id)
        with anyio.fail_after(timeout):
            while True:
                signal = self.wakeups.logs(rid)
                armed = signal.arm()  # before the read: a move between the two still wakes us
                run = await self.mover.require(rid)
                if run.status.terminal:
                    self.wakeups.forget_logs(rid, if_idle=True)
                    return run
                await signal.wait(poll, armed=armed)

    async def display_status(self, run: Run) -> str:
        """A coroutine: ``displayStatus`` of ``run`` (English for people; never parse it).
        It may read the store: a queued run's concurrency key and the live workers."""
        return (await self.display_statuses([run]))[0]

    def display_status_with(
        self,
        run: Run,
        occupancy: Mapping[str, int] | None,
        served: Collection[str] | None = None,
        awaited: Mapping[UUID, Run] | None = None,
    ) -> str:
        kind = self.kinds.get(run.kind)
        policy = self.kinds.approval_policy(run) if run.status is Status.AWAITING_APPROVAL else None
        return display_status(
            run,
            now=self.clock.now(),
            occupancy=occupancy,
            kind=kind,
            required_approvals=policy.required if policy else None,
            served=served,
            awaited=awaited,
        )

    async def display_statuses(self, runs: Sequence[Run]) -> builtins.list[str]:
        """Display statuses for a page of runs: at most one occupancy query for all keys and
        one read of the worker registry, and only when a run is queued; a waiting run's
        children are read to say how many are done."""
        queued = [r for r in runs if r.status is Status.QUEUED]
        keys = {r.concurrency_key for r in queued if r.concurrency_key}
        occupancy = await self.store.occupancy(keys) if keys else {}
        served: set[str] | None = None
        if queued:
            served = {kind for w in await self.workers() for kind in w.kinds}
        awaited = await self.mover.waits.progress(runs)
        return [self.display_status_with(r, occupancy, served, awaited.get(r.id)) for r in runs]

    # ---------------------------------------------------------------- creating ------------
    async def create(
        self,
        kind: str,
        definition: Mapping[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        concurrency_key: str | None = None,
        concurrency_limit: int | None = None,
        parent_action_run_id: UUID | str | None = None,
        action_id: str | None = None,
        principal: Principal | None = None,
        execute: bool = False,
    ) -> Created:
        """Create a run in ``pending`` (``execute=True``: straight to ``queued``, one commit).

        With an ``idempotency_key`` already used in its scope: the same request returns the
        existing run (``created`` False); a different one raises IdempotencyConflict.
        """
        item = NewRun(
            kind,
            definition,
            idempotency_key=idempotency_key,
            concurrency_key=concurrency_key,
            concurrency_limit=concurrency_limit,
            parent_action_run_id=parent_action_run_id,
            action_id=action_id,
            execute=execute,
        )
        run, entries = await creates.build(self, item, principal)
        answer = await creates.settle(self, run, entries)
        if answer.created and execute:
            self.wakeups.work_available()
        return answer

    async def create_many(
        self, items: Sequence[NewRun], *, principal: Principal | None = None
    ) -> builtins.list[Created | IdempotencyConflict]:
        """Create up to 1,000 runs at once: :meth:`create` for each :class:`NewRun`, written
        in one transaction. Answers one item each, in order: :class:`Created` (``created``
        False for an idempotent replay), or the item's :class:`IdempotencyConflict`
        (returned, not raised: the other items are written). An invalid item raises one
        ValidationError for the batch, its ``loc`` starting ``("items", index)``, and
        nothing is written."""
        return await creates.create_many(self, items, principal)

    def create_in(
        self,
        connection: Any,
        kind: str,
        definition: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Created:
        """:meth:`create` inside the host's own SQLAlchemy transaction (``connection``, a
        synchronous Connection to the store's database): the run exists if and only if the
        host's transaction commits. Takes :meth:`create`'s keyword options.

        Needs a SQL store. Inside the host's transaction runkit writes nothing else, so the
        parent run is not looked up and a key past its TTL still names its run (replay or
        conflict); :meth:`create` checks the first and reclaims the second. Workers notice
        the run at their next poll.
        """
        if not isinstance(self.store, TransactionalInsert):
            raise ConfigurationError(
                f"create_in needs a SQL store; {type(self.store).__name__} has no insert_in"
            )
        principal = options.pop("principal", None)
        run, entries = creates.new(self, NewRun(kind, definition, **options), principal)
        stored, created = self.store.insert_in(connection, run, entries)
        return Created(stored, True) if created else creating.replay(stored, run)

    # ---------------------------------------------------------------- client actions ------
    async def execute(self, run_id: UUID | str, *, principal: Principal | None = None) -> Run:
        run = await self.mover.act(run_id, Action.EXECUTE, principal, reason="execute")
        self.wakeups.work_available()
        return run

    async def pause(self, run_id: UUID | str, *, principal: Principal | None = None) -> Run:
        rid = _inputs.run_id(run_id)
        current = await self.get(rid)
        kind = self.kinds.get(current.kind)
        if kind is not None and moves.refuses_pause(current, kind.pausable):
            raise IllegalTransition(
                rid,
                current.status,
                Action.PAUSE,
                [a for a in allowed_actions(current.status) if a is not Action.PAUSE],
            )
        return await self.mover.act(rid, Action.PAUSE, principal, reason="user")

    async def resume(self, run_id: UUID | str, *, principal: Principal | None = None) -> Run:
        run = await self.mover.act(run_id, Action.RESUME, principal, reason="user")
        self.wakeups.work_available()
        return run

    async def cancel(
        self, run_id: UUID | str, *, principal: Principal | None = None, reason: str = "user"
    ) -> Run:
        run = await self.mover.act(run_id, Action.CANCEL, principal, reason=reason)
        await self._cascade_cancel(run.id, principal)
        return run

    async def _cascade_cancel(self, parent: UUID, principal: Principal | None) -> None:
        offset = 0
        while True:
            children, total = await self.store.list(
                RunQuery(parent_action_run_id=parent, limit=100, offset=offset)
            )
            for child in children:
                try:  # the table decides: finished or already cancelling children refuse
                    await self.mover.act(
                        child.id, Action.CANCEL, principal, reason="parent_cancelled"
                    )
                except (IllegalTransition, RunNotFound):
                    continue
                await self._cascade_cancel(child.id, principal)
            offset += len(children)
            if offset >= total or not children:
                return

    async def retry(self, run_id: UUID | str, *, principal: Principal | None = None) -> Run:
        run = await self.mover.act(run_id, Action.RETRY, principal, reason="manual retry")
        self.wakeups.work_available()
        return run

    async def delete(self, run_id: UUID | str, *, principal: Principal | None = None) -> None:
        rid = _inputs.run_id(run_id)
        for _ in range(CAS_ATTEMPTS):
            run = await self.get(rid)
            moves.target(run, Action.DELETE)
            if await self.store.delete(rid, {run.status}):
                self.wakeups.logs_appended(rid)
                self.wakeups.forget_logs(rid)
                if run.parent_action_run_id is not None:  # a parent may wait for it
                    await self.mover.waits.children_settled([run])
                return
        raise IllegalTransition(rid, run.status, Action.DELETE, allowed_actions(run.status))

    async def approve(
        self, run_id: UUID | str, *, principal: Principal | None = None, reason: str | None = None
    ) -> Run:
        return await approvals.decide(self, run_id, "approve", principal, reason)

    async def reject(
        self, run_id: UUID | str, *, principal: Principal | None = None, reason: str | None = None
    ) -> Run:
        return await approvals.decide(self, run_id, "reject", principal, reason)
