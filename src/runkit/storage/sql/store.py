"""The SQL store: SQLite (stdlib driver) and PostgreSQL (psycopg 3) through SQLAlchemy Core.

Each primitive is one transaction, written as synchronous code over a SQLAlchemy
connection. It runs in a worker thread on the synchronous engine
(:func:`anyio.to_thread.run_sync`, bounded by the store's own capacity limiter), so the
store works the same under asyncio and trio; on asyncio with PostgreSQL, the hot
primitives run the same code on psycopg's async connections instead (``driver``: no
thread, no SQLAlchemy execution layer). A primitive is not abandoned when its caller is
cancelled: it finishes and commits or rolls back, which keeps every primitive atomic.

Beyond the :class:`~runkit.storage.base.Store` contract the store offers:

* :meth:`SqlStore.insert_in`: create a run inside the host's own SQLAlchemy transaction (an
  outbox: the run exists if and only if the host's transaction commits);
* :meth:`SqlStore.wait_for_notifications` and :meth:`SqlStore.notify` (the optional
  ``NotificationListener`` and ``Notifier`` of ``storage.protocols``): PostgreSQL
  LISTEN/NOTIFY wake-ups between processes, payloads included (the log channel's name the
  runs whose log grew). SQLite has no such channel: ``notify`` does
  nothing and the wait wakes on *any* commit by another connection, seen through ``PRAGMA
  data_version`` polled every 20 ms (``listen``, ``watch``; a hint: callers re-read).

SQLite settings: WAL journal, ``synchronous=NORMAL`` (``FULL`` on request), a busy timeout,
foreign keys on, and ``BEGIN IMMEDIATE`` before every write (see ``engine``). An engine
the host hands in keeps its own connection settings and is never disposed by the store.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine

from ...domain.models import Expect, Lease, LogEntry, NewLogEntry, Run, RunQuery, WorkerInfo
from ...domain.states import LEASED, TERMINAL, Status
from ..base import LogHead, Store, Update, check_changes, fence_expect
from . import claim as _claim
from . import reads as _reads
from . import updates as _updates
from . import workers as _workers
from .calls import Calls
from .cas import cas, status_in
from .driver import DriverPath, available
from .engine import (
    Synchronous,
    Transactions,
    build_engine,
    is_memory_sqlite,
    pg_connect_args,
    translate,
)
from .insert import HOLDER, Inserter, stored
from .listen import Listening
from .rows import row_to_run, stored_logs
from .schema import logs, runs

__all__ = ["SqlStore"]

T = TypeVar("T")

_LEASED = sorted(s.value for s in LEASED)
_TERMINAL = sorted(s.value for s in TERMINAL)
#: Leases heartbeaten per statement: keeps the bound parameters under SQLite's limit.
_HEARTBEAT_CHUNK = 500
#: The guard of an unfenced append: the run exists, in any status.
_ANY = Expect(frozenset(Status))


#: Prebuilt hot statements: built once, so each call only binds parameters and SQLAlchemy's
#: compiled cache is hit (a statement rebuilt per call costs more CPU than SQLite's work).
_GET = sa.select(runs).where(runs.c.id == sa.bindparam("b_id", type_=runs.c.id.type))
_INSERT_LOGS = sa.insert(logs)
_EXISTS = sa.select(runs.c.seq).where(runs.c.id == sa.bindparam("b_id", type_=runs.c.id.type))
_NOTIFY = sa.select(
    sa.func.pg_notify(
        sa.bindparam("b_channel", type_=sa.String()), sa.bindparam("b_payload", type_=sa.String())
    )
)
_HEARTBEAT = (
    sa.update(runs)
    .where(
        sa.tuple_(runs.c.id, runs.c.attempt, runs.c.lease_token).in_(
            sa.bindparam("b_keys", expanding=True)
        ),
        status_in(_LEASED),
    )
    .values(deadline_at=sa.bindparam("b_deadline", type_=runs.c.deadline_at.type))
    .returning(runs.c.id, runs.c.attempt, runs.c.lease_token, runs.c.status)
)


class SqlStore(Store):
    """A :class:`Store` on SQLite or PostgreSQL.

    ``url_or_engine``: ``sqlite:///path.db`` or ``postgresql+psycopg://...`` (the store builds
    and later disposes its engine), or a host's :class:`sqlalchemy.Engine` (never disposed).
    ``create_schema``: run the migrations to head in :meth:`open` (serialized across
    processes). ``sqlite_synchronous``: ``"NORMAL"`` (default; durable across process
    crashes, may lose the last commits on power loss) or ``"FULL"``. ``max_threads``: how
    many primitives run at once (and the size of the store's PostgreSQL pool).
    ``listen_dsn``: a libpq connection string for LISTEN when the engine goes through a
    transaction-mode pooler (PgBouncer); by default LISTEN uses a connection detached from
    the engine's pool. ``native_async``: on asyncio, run the hot primitives on psycopg's
    async connections (``driver``) rather than in worker threads (PostgreSQL URLs only).
    """

    def __init__(
        self,
        url_or_engine: str | Engine,
        *,
        create_schema: bool = False,
        sqlite_synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 30.0,
        max_threads: int | None = None,
        listen_dsn: str | None = None,
        native_async: bool = True,
    ) -> None:
        self._owns_engine = not isinstance(url_or_engine, Engine)
        if isinstance(url_or_engine, Engine):
            self.engine = url_or_engine
        else:
            self.engine = build_engine(
                url_or_engine,
                busy_timeout=busy_timeout,
                synchronous=sqlite_synchronous,
                pool_size=max_threads or 8,
            )
        self.dialect = self.engine.dialect.name
        self._listening = Listening(self.engine, listen_dsn)
        self._threads_tx = Transactions(self.engine, autocommit_engine=self._owns_engine)
        #: The native asyncio path (``driver``) on PostgreSQL engines the store built.
        self._driver: DriverPath | None = None
        if self.dialect == "postgresql" and self._owns_engine and native_async and available():
            self._driver = DriverPath(
                self.engine,
                pool_size=max_threads or 8,
                connect_args=pg_connect_args(self.engine.url),
                on_connect=self._listening.senders.add_connection,
            )
            self._listening.listen_async(self._driver.connect_kwargs)
        self._create_schema = create_schema
        if self.dialect == "sqlite" and is_memory_sqlite(self.engine.url):
            self._threads = 1  # one shared connection: one primitive at a time
        else:
            self._threads = max_threads or (4 if self.dialect == "sqlite" else 8)
        self._calls = Calls(self._threads_tx, self._driver, self._threads)
        self._inserter = Inserter(self.dialect)

    def __repr__(self) -> str:
        return f"SqlStore({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- plumbing (``calls``) ----------------------------------------------------------------
    async def open(self) -> None:
        self._calls.open()
        await self._calls.run(self._open_sync, driver=False)  # migrations use the engine

    def _open_sync(self) -> None:
        if self.dialect == "sqlite" and self._owns_engine and not is_memory_sqlite(self.engine.url):
            # Persistent in the file; readers then never block the writer, nor it them.
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode = WAL")
        if self._create_schema:
            from .migrate import upgrade

            upgrade(self.engine)
        else:
            with self._calls.tx.read() as conn:  # fail at start-up, not on the first request
                conn.execute(sa.select(1))

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
        await self._listening.aclose()
        if self._owns_engine:
            self.engine.dispose()

    # -- primitives ------------------------------------------------------------------------
    async def insert(self, run: Run, entries: Sequence[NewLogEntry]) -> tuple[Run, bool]:
        one = self._inserter.one_statement(run, entries) if self._calls.direct() else None
        if one is not None:  # the common case, a new run: one statement, no greenlet
            try:
                seq = (await self._calls.statement(*one)).scalar_one_or_none()
            except exc.IntegrityError as err:
                self._inserter.refused(err, run)
            if seq is not None:
                return stored(run, entries, seq), True
            # The scope is held: its holder, one more statement. Deleted since, the usual
            # path inserts again.
            scope = {"b_scope": run.idempotency_scope}
            holder = (await self._calls.statement(HOLDER, scope)).first()
            if holder is not None:
                return row_to_run(holder), False
        return await self._calls.run(functools.partial(self._insert, run, entries))

    def _insert(self, run: Run, entries: Sequence[NewLogEntry]) -> tuple[Run, bool]:
        return self._inserter.insert(self._calls.tx, run, entries)

    async def insert_many(
        self, items: Sequence[tuple[Run, Sequence[NewLogEntry]]]
    ) -> builtins.list[tuple[Run, bool]]:
        return await self._calls.run(lambda: self._inserter.insert_many(self._calls.tx, items))

    def insert_in(
        self, connection: Connection, run: Run, entries: Sequence[NewLogEntry] = ()
    ) -> tuple[Run, bool]:
        """:meth:`insert` inside the host's transaction on ``connection`` (a synchronous
        SQLAlchemy connection to the store's database): the run and its entries commit or
        roll back with the host's own writes. Nobody is woken: workers find the run at
        their next poll, or call :meth:`notify` after the commit."""
        try:
            return self._inserter.insert_on(connection, run, entries)
        except exc.DBAPIError as err:
            raise translate(err) from err

    async def get(self, run_id: UUID) -> Run | None:
        if self._calls.direct():
            row = (await self._calls.statement(_GET, {"b_id": run_id})).first()
            return None if row is None else row_to_run(row)
        return await self._calls.run(functools.partial(self._get, run_id))

    def _get(self, run_id: UUID) -> Run | None:
        with self._calls.tx.read() as conn:
            row = conn.execute(_GET, {"b_id": run_id}).first()
        return None if row is None else row_to_run(row)

    async def list(self, query: RunQuery) -> tuple[list[Run], int]:
        return await self._calls.run(functools.partial(self._list, query), driver=False)

    def _list(self, query: RunQuery) -> tuple[builtins.list[Run], int]:
        where: builtins.list[sa.ColumnElement[bool]] = []
        if query.action_id is not None:
            where.append(runs.c.action_id == query.action_id)
        if query.kind is not None:
            where.append(runs.c.kind == query.kind)
        if query.status is not None:
            where.append(runs.c.status == query.status.value)
        if query.parent_action_run_id is not None:
            where.append(runs.c.parent_action_run_id == query.parent_action_run_id)
        if query.tenant is not None:
            where.append(runs.c.tenant == query.tenant)
        page = (
            sa.select(runs)
            .where(*where)
            .order_by(runs.c.seq if query.oldest_first else runs.c.seq.desc())
            .limit(max(0, query.limit))
            .offset(max(0, query.offset))
        )
        count = sa.select(sa.func.count()).select_from(runs).where(*where)
        with self._calls.tx.snapshot() as conn:
            found = [row_to_run(r) for r in conn.execute(page)]
            total = conn.execute(count).scalar_one()
        return found, total

    async def update(
        self,
        run_id: UUID,
        expect: Expect,
        changes: Mapping[str, Any],
        entries: Sequence[NewLogEntry] = (),
    ) -> Run | None:
        check_changes(changes)
        return await self._calls.run(
            functools.partial(self._update, run_id, expect, changes, entries)
        )

    def _update(
        self,
        run_id: UUID,
        expect: Expect,
        changes: Mapping[str, Any],
        entries: Sequence[NewLogEntry],
    ) -> Run | None:
        with self._calls.tx.write() as conn:
            return _updates.update_one(conn, Update(run_id, expect, changes, entries))

    async def update_many(self, updates: Sequence[Update]) -> builtins.list[Run | None]:
        """:meth:`update` for each item, in order, in one write transaction: one guarded
        UPDATE per item, then one INSERT (executemany) of every applied item's entries.
        A compare-and-set that fails changes nothing; an item naming an idempotency scope
        another run holds raises ValueError and rolls the whole batch back."""
        if not updates:
            return []
        for u in updates:
            check_changes(u.changes)
        return await self._calls.run(functools.partial(self._update_many, updates))

    def _update_many(self, updates: Sequence[Update]) -> builtins.list[Run | None]:
        with self._calls.tx.write() as conn:
            return _updates.update_many(conn, updates)

    async def delete(self, run_id: UUID, statuses: Collection[Status]) -> bool:
        return await self._calls.run(
            functools.partial(self._delete, run_id, statuses), driver=False
        )

    def _delete(self, run_id: UUID, statuses: Collection[Status]) -> bool:
        stmt = (
            sa.delete(runs)
            .where(runs.c.id == run_id, runs.c.status.in_(sorted(s.value for s in statuses)))
            .returning(runs.c.seq)
        )
        with self._calls.tx.write() as conn:
            seq = conn.execute(stmt).scalar_one_or_none()
            if seq is None:
                return False
            if self.dialect == "sqlite":
                # A host's SQLite connection may run with foreign keys off: no cascade.
                conn.execute(sa.delete(logs).where(logs.c.run_seq == seq))
        return True

    async def claim(
        self,
        worker_id: str,
        limit: int,
        *,
        now: datetime,
        lease: timedelta,
        kinds: Collection[str] | None = None,
    ) -> builtins.list[Run]:
        return await self._calls.run(
            functools.partial(self._claim, worker_id, limit, now, lease, kinds)
        )

    def _claim(
        self,
        worker_id: str,
        limit: int,
        now: datetime,
        lease: timedelta,
        kinds: Collection[str] | None,
    ) -> builtins.list[Run]:
        with self._calls.tx.write() as conn:
            return _claim.claim(conn, worker_id, limit, now=now, lease=lease, kinds=kinds)

    async def heartbeat(
        self, leases: Sequence[Lease], *, now: datetime, lease: timedelta
    ) -> dict[UUID, Status | None]:
        if not leases:
            return {}
        deadline = now + lease  # a tuple IN: SQLAlchemy renders it
        return await self._calls.run(
            functools.partial(self._heartbeat, leases, deadline), driver=False
        )

    def _heartbeat(self, leases: Sequence[Lease], deadline: datetime) -> dict[UUID, Status | None]:
        held: dict[tuple[UUID, int, str], Status] = {}
        with self._calls.tx.write() as conn:
            for start in range(0, len(leases), _HEARTBEAT_CHUNK):
                keys = [
                    (h.run_id, h.attempt, h.token) for h in leases[start : start + _HEARTBEAT_CHUNK]
                ]
                params = {"b_keys": keys, "b_deadline": deadline}
                for row in conn.execute(_HEARTBEAT, params):
                    held[(row[0], row[1], row[2])] = Status(row[3])
        return {h.run_id: held.get((h.run_id, h.attempt, h.token)) for h in leases}

    async def append_logs(
        self, run_id: UUID, entries: Sequence[NewLogEntry], *, fence: Lease | None = None
    ) -> builtins.list[LogEntry] | None:
        return await self._calls.run(functools.partial(self._append_logs, run_id, entries, fence))

    def _append_logs(
        self, run_id: UUID, entries: Sequence[NewLogEntry], fence: Lease | None
    ) -> builtins.list[LogEntry] | None:
        n = len(entries)
        if not n:
            with self._calls.tx.read() as conn:
                if fence is None:
                    ok = conn.execute(_EXISTS, {"b_id": run_id}).first() is not None
                else:  # the fence's guard, checked without a write
                    row = conn.execute(_GET, {"b_id": run_id}).first()
                    ok = row is not None and fence_expect(fence).matches(row_to_run(row))
            return [] if ok else None
        # The fenced increment reserves the ids: concurrent appenders queue on the row lock
        # and get consecutive, never overlapping, ranges.
        expect = fence_expect(fence) if fence is not None else _ANY
        stmt, params = cas(run_id, expect, {}, n, whole=False)
        rows: builtins.list[dict[str, Any]] = []
        with self._calls.tx.write() as conn:
            row = conn.execute(stmt, params).first()
            if row is None:
                return None
            seq, log_seq, attempt = row
            stored = stored_logs(
                run_id, seq, attempt, entries, log_seq - n, datetime.now(UTC), rows
            )
            conn.execute(_INSERT_LOGS, rows)
        return stored

    async def read_logs(self, run_id: UUID, *, after: int, limit: int) -> builtins.list[LogEntry]:
        return await self._calls.run(functools.partial(self._read_logs, run_id, after, limit))

    def _read_logs(self, run_id: UUID, after: int, limit: int) -> builtins.list[LogEntry]:
        with self._calls.tx.read() as conn:
            return _reads.log_page(conn, run_id, after, limit)

    async def log_heads(self, run_ids: Collection[UUID]) -> dict[UUID, LogHead]:
        """One indexed ``IN`` a chunk of 500 runs, on one connection (``reads``)."""
        wanted = sorted(set(run_ids))
        return await self._calls.run(functools.partial(self._log_heads, wanted)) if wanted else {}

    def _log_heads(self, run_ids: builtins.list[UUID]) -> dict[UUID, LogHead]:
        with self._calls.tx.read() as conn:
            return _reads.log_heads(conn, run_ids)

    async def due(self, *, now: datetime, limit: int) -> builtins.list[Run]:
        return await self._calls.run(functools.partial(self._due, now, limit), driver=False)

    def _due(self, now: datetime, limit: int) -> builtins.list[Run]:
        stmt = (
            sa.select(runs)
            .where(
                runs.c.deadline_at.is_not(None),  # lets the planner use the partial index
                runs.c.deadline_at <= now,
                runs.c.status.not_in(_TERMINAL),
            )
            .order_by(runs.c.deadline_at, runs.c.seq)
            .limit(max(0, limit))
        )
        with self._calls.tx.read() as conn:
            return [row_to_run(r) for r in conn.execute(stmt)]

    async def occupancy(self, keys: Collection[str]) -> dict[str, int]:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        return await self._calls.run(functools.partial(self._occupancy, wanted), driver=False)

    def _occupancy(self, keys: builtins.list[str]) -> dict[str, int]:
        with self._calls.tx.read() as conn:
            return _claim.occupancy(conn, keys)

    # -- wake-ups (not part of the Store contract) -----------------------------------------
    async def wait_for_notification(self, channel: str, timeout: float) -> bool:
        """:meth:`wait_for_notifications` for one channel."""
        return bool(await self.wait_for_notifications((channel,), timeout))

    async def wait_for_notifications(
        self, channels: Collection[str], timeout: float
    ) -> builtins.set[str]:
        """Wait up to ``timeout`` seconds for a signal on any of ``channels`` (see
        :class:`~runkit.storage.sql.listen.Listening`): a hint to re-read the store. On
        PostgreSQL the answer is a :class:`~runkit.storage.protocols.Notifications` that
        also carries each channel's payloads."""
        return await self._listening.wait(channels, timeout)

    # -- the worker registry (``_workers``) ----------------------------------------------
    async def save_worker(self, worker: WorkerInfo) -> None:
        await self._calls.run(
            functools.partial(self._in_write, _workers.save, worker), driver=False
        )

    async def delete_workers(
        self, *, ids: Collection[str] = (), seen_before: datetime | None = None
    ) -> int:
        return await self._calls.run(
            functools.partial(self._in_write, _workers.delete, ids, seen_before), driver=False
        )

    async def list_workers(self, *, seen_since: datetime) -> builtins.list[WorkerInfo]:
        def read() -> builtins.list[WorkerInfo]:
            with self._calls.tx.read() as conn:
                return _workers.list_live(conn, seen_since)

        return await self._calls.run(read, driver=False)

    def _in_write(self, fn: Callable[..., T], *args: Any) -> T:
        with self._calls.tx.write() as conn:
            return fn(conn, *args)

    @property
    def notifies_other_processes(self) -> bool:
        """PostgreSQL has NOTIFY; SQLite listeners watch every commit instead."""
        return self.dialect == "postgresql"

    async def notify(self, channel: str, payload: str = "") -> None:
        """``pg_notify(channel, payload)`` in its own transaction; nothing on SQLite."""
        if self.dialect != "postgresql":
            return
        if self._calls.direct():
            await self._calls.statement(_NOTIFY, {"b_channel": channel, "b_payload": payload})
            return
        await self._calls.run(functools.partial(self._notify, channel, payload))

    def _notify(self, channel: str, payload: str) -> None:
        with self._calls.tx.single() as conn:  # one statement: its own transaction
            conn.execute(_NOTIFY, {"b_channel": channel, "b_payload": payload})
