"""What only the SQL store does: migrations, SQLite's locking discipline, host engines and
transactions, LISTEN/NOTIFY, error translation, and claims identical to the memory store's
across processes. The behaviour every backend shares is in test_storage_conformance.py."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import uuid4

import anyio
import attrs
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.pool import NullPool

from runkit.domain.errors import StorageUnavailable
from runkit.domain.models import Expect, Lease, NewLogEntry, Run, RunQuery
from runkit.domain.states import LEASED, Status
from runkit.storage.memory import MemoryStore
from runkit.storage.sql import migrate
from runkit.storage.sql.cli import db_check, db_sql, db_upgrade
from runkit.storage.sql.rows import run_values
from runkit.storage.sql.schema import VERSION_TABLE, metadata, runs
from runkit.storage.sql.store import SqlStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/test"
LIMITS = {"x": 1, "y": 2, "z": 4}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    value: str = request.getfixturevalue(name)
    return value


@pytest.fixture
async def store(url: str) -> AsyncIterator[SqlStore]:
    async with SqlStore(url, create_schema=True) as s:
        yield s


def make_run(**overrides: Any) -> Run:
    fields: dict[str, Any] = {
        "id": uuid4(),
        "kind": "noop",
        "status": Status.QUEUED,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(overrides)
    return Run(**fields)


def run_python(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


# ------------------------------------------------------------------ migrations ----------
def test_migrations_build_exactly_the_metadata(url: str) -> None:
    assert not migrate.check(url)
    assert migrate.current(url) is None
    migrate.upgrade(url)
    assert migrate.current(url) == migrate.head()
    assert migrate.check(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            assert compare_metadata(context, metadata) == []
            inspector = sa.inspect(conn)
            assert set(inspector.get_table_names()) == {
                "runkit_runs",
                "runkit_logs",
                "runkit_workers",
                VERSION_TABLE,
            }
            # Alembic does not compare partial-index predicates: check the indexes here.
            dialect = conn.dialect.name
            reflected = {i["name"]: i for i in inspector.get_indexes("runkit_runs")}
            for index in metadata.tables["runkit_runs"].indexes:
                got = reflected[index.name]
                assert got["column_names"] == [c.name for c in index.columns]
                assert bool(got["unique"]) == index.unique
                partial = index.dialect_options[dialect]["where"] is not None
                assert (f"{dialect}_where" in got["dialect_options"]) == partial, index.name
    finally:
        engine.dispose()
    migrate.upgrade(url)  # at head already: nothing to do
    assert migrate.current(url) == migrate.head()


async def test_upgrade_from_the_first_release_keeps_runs(url: str) -> None:
    migrate.upgrade(url, "0001")
    assert not migrate.check(url)  # behind: `runkit db check` exits 1
    # Written as the first release wrote it: the columns of 0001 only.
    run = make_run(status=Status.QUEUED)
    old = sa.create_engine(url)
    try:
        with old.begin() as conn:
            later = {"wait", "tenant"}  # columns of later migrations
            values = {k: v for k, v in run_values(run).items() if k not in later}
            seq = conn.execute(sa.insert(runs).values(values).returning(runs.c.seq)).scalar_one()
    finally:
        old.dispose()
    run = attrs.evolve(run, seq=seq)
    migrate.upgrade(url)
    assert migrate.check(url)
    async with SqlStore(url) as new:
        assert await new.get(run.id) == run
        (claimed,) = await new.claim("w", 1, now=T0, lease=timedelta(seconds=30))
        assert claimed.id == run.id
        assert await new.list_workers(seen_since=T0) == []


def test_concurrent_upgrades_on_sqlite_apply_once(sqlite_url: str) -> None:
    # What several worker processes of a default app do at start-up on a new file: switch it
    # to WAL and migrate it.
    code = """
        import anyio, logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        from runkit.storage.sql.store import SqlStore

        async def main():
            async with SqlStore(sys.argv[1], create_schema=True):
                pass

        anyio.run(main)
    """
    procs = [run_python(code, sqlite_url) for _ in range(8)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outputs
    applied = sum(out.count("Running upgrade  -> 0001") for out, _ in outputs)
    assert applied == 1, outputs
    assert migrate.check(sqlite_url)


def test_concurrent_upgrades_on_postgres_apply_once(pg_url: str) -> None:
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    log = logging.getLogger("alembic.runtime.migration")
    handler, level = Collect(), log.level
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    errors: list[BaseException] = []

    def upgrade() -> None:
        try:
            migrate.upgrade(pg_url)  # each call builds its own engine: its own connection
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    try:
        threads = [threading.Thread(target=upgrade) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert errors == []
    assert sum("Running upgrade  -> 0001" in m for m in messages) == 1
    assert migrate.check(pg_url)


@pytest.mark.parametrize("target", ["postgresql", "sqlite", "postgres://u@h/db"])
def test_offline_sql(target: str) -> None:
    script = migrate.sql(target)
    assert "CREATE TABLE runkit_runs" in script
    assert "CREATE TABLE runkit_logs" in script
    assert VERSION_TABLE in script
    assert "runkit_runs_queued_idx" in script


def test_offline_sql_applies_to_postgres(pg_url: str) -> None:
    engine = sa.create_engine(pg_url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql(migrate.sql("postgresql"))  # the script has its BEGIN/COMMIT
    finally:
        engine.dispose()
    assert migrate.check(pg_url)


def test_db_cli_functions(sqlite_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert db_check(sqlite_url) == 1
    db_upgrade(sqlite_url)
    assert db_check(sqlite_url) == 0
    db_sql("sqlite")
    assert "CREATE TABLE runkit_runs" in capsys.readouterr().out


# ------------------------------------------------------------------ SQLite discipline ---
async def test_sqlite_runs_wal_with_pragmas(sqlite_url: str) -> None:
    async with SqlStore(sqlite_url, create_schema=True, sqlite_synchronous="FULL") as s:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000


def _record_statements(engine: sa.Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement.split(None, 2)[0].upper() + _immediate(statement))

    @event.listens_for(engine, "commit")
    def on_commit(conn: Any) -> None:
        seen.append("COMMIT")

    @event.listens_for(engine, "rollback")
    def on_rollback(conn: Any) -> None:
        seen.append("ROLLBACK")

    return seen


def _immediate(statement: str) -> str:
    return " IMMEDIATE" if statement.upper().startswith("BEGIN IMMEDIATE") else ""


def _assert_writes_begin_immediate(seen: list[str]) -> None:
    in_write = False
    writes = 0
    for statement in seen:
        if statement == "BEGIN IMMEDIATE":
            assert not in_write, seen
            in_write = True
        elif statement in ("COMMIT", "ROLLBACK"):
            in_write = False
        elif statement in ("INSERT", "UPDATE", "DELETE"):
            assert in_write, f"{statement} outside BEGIN IMMEDIATE: {seen}"
            writes += 1
    assert writes > 0


@pytest.mark.parametrize("host_engine", [False, True])
async def test_every_sqlite_write_begins_immediate(sqlite_url: str, host_engine: bool) -> None:
    migrate.upgrade(sqlite_url)
    engine = sa.create_engine(sqlite_url) if host_engine else None
    s = SqlStore(engine if engine is not None else sqlite_url)
    async with s:
        seen = _record_statements(s.engine)
        run, _ = await s.insert(make_run(idempotency_scope="g:x"), [NewLogEntry("hi")])
        await s.insert(make_run(idempotency_scope="g:x"), [])
        (claimed,) = await s.claim("w", 5, now=T0, lease=LEASE)
        assert claimed.lease_token is not None
        await s.heartbeat([_lease(claimed)], now=T0, lease=LEASE)
        await s.append_logs(run.id, [NewLogEntry("x")], fence=_lease(claimed))
        done = await s.update(
            run.id, Expect(LEASED), {"status": Status.SUCCEEDED}, [NewLogEntry("done")]
        )
        assert done is not None
        assert await s.delete(run.id, {Status.SUCCEEDED})
        _assert_writes_begin_immediate(seen)
    if engine is not None:
        engine.dispose()


def test_sqlite_claims_across_processes_never_share_a_run(sqlite_url: str) -> None:
    async def fill() -> None:
        async with SqlStore(sqlite_url, create_schema=True) as s:
            for _ in range(120):
                await s.insert(make_run(), [])
            for _ in range(10):
                await s.insert(make_run(concurrency_key="k", concurrency_limit=3), [])

    anyio.run(fill)
    code = """
        import anyio, json, sys
        from datetime import UTC, datetime, timedelta
        from runkit.storage.sql.store import SqlStore

        async def main():
            got = []
            async with SqlStore(sys.argv[1]) as s:
                while batch := await s.claim(sys.argv[2], 4, now=datetime(2026, 1, 1, 12,
                        tzinfo=UTC), lease=timedelta(seconds=30)):
                    got.extend(str(r.id) for r in batch)
            print(json.dumps(got))

        anyio.run(main)
    """
    procs = [run_python(code, sqlite_url, f"w{i}") for i in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    counts = Counter(i for out, _ in outputs for i in json.loads(out))
    assert all(c == 1 for c in counts.values())
    assert len(counts) == 123  # the free runs, and the key's three slots


# ------------------------------------------------------------------ host integration ----
async def test_host_engine_is_not_disposed(url: str) -> None:
    engine = sa.create_engine(url)
    disposed: list[bool] = []
    event.listen(engine, "engine_disposed", lambda _engine: disposed.append(True))
    async with SqlStore(engine, create_schema=True) as s:
        await s.insert(make_run(), [])
    assert disposed == []
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM runkit_runs")).scalar() == 1
    engine.dispose()


async def test_insert_in_host_transaction_commits_or_rolls_back_with_it(url: str) -> None:
    engine = sa.create_engine(url)
    async with SqlStore(engine, create_schema=True) as s:
        doomed, kept = make_run(), make_run(idempotency_scope="g:k")
        with engine.connect() as conn, conn.begin() as tx:
            stored, created = s.insert_in(conn, doomed, [NewLogEntry("first")])
            assert created and stored.log_seq == 1
            tx.rollback()
        assert await s.get(doomed.id) is None
        assert await s.list(RunQuery()) == ([], 0)
        with engine.begin() as conn:
            stored, created = s.insert_in(conn, kept, [NewLogEntry("first")])
            again, created_again = s.insert_in(conn, make_run(idempotency_scope="g:k"))
        assert created and not created_again and again.id == kept.id
        assert await s.get(kept.id) == stored
        assert [e.message for e in await s.read_logs(kept.id, after=0, limit=5)] == ["first"]
    engine.dispose()


# ------------------------------------------------------------------ models --------------
async def test_timestamps_come_back_as_aware_utc(store: SqlStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2026, 1, 1, 14, 0, 0, 250, tzinfo=plus_two)
    run, _ = await store.insert(make_run(created_at=local, updated_at=local), [])
    got = await store.get(run.id)
    assert got is not None
    assert got.created_at == local and got.created_at.tzinfo == UTC
    with pytest.raises(sa.exc.StatementError):
        await store.insert(make_run(created_at=datetime(2026, 1, 1)), [])


async def test_duplicate_run_id_is_refused(store: SqlStore) -> None:
    run, _ = await store.insert(make_run(), [])
    with pytest.raises(ValueError):
        await store.insert(make_run(id=run.id), [])


# ------------------------------------------------------------------ claims vs memory ----
@pytest.mark.parametrize("seed", range(5))
async def test_claims_match_the_memory_store(store: SqlStore, seed: int) -> None:
    """Random queues, claimed by both stores in the same steps: the same runs, in the same
    order, every time (the memory store is the reference)."""
    rng = random.Random(seed)
    memory = MemoryStore()
    for step in range(30):
        for _ in range(rng.randint(0, 12)):
            key = rng.choice([None, None, "x", "y", "z"])
            run = make_run(
                kind=rng.choice(["a", "b"]),
                concurrency_key=key,
                # Mostly one limit per key, as in practice; sometimes a run disagrees.
                concurrency_limit=rng.choice([LIMITS.get(key or "", 1)] * 4 + [1, 2, 3]),
                not_before=rng.choice([None, None, T0 + timedelta(seconds=rng.randint(-5, 5))]),
                status=rng.choice([Status.QUEUED] * 4 + [Status.RUNNING, Status.PAUSED]),
            )
            mem, _ = await memory.insert(run, [])
            sql, _ = await store.insert(run, [])
            assert sql.id == mem.id
        now = T0 + timedelta(seconds=step)
        kinds = rng.choice([None, {"a"}, {"a"}, {"b"}, {"a", "b"}])
        limit = rng.randint(0, 6)
        mem_claimed = await memory.claim("w", limit, now=now, lease=LEASE, kinds=kinds)
        sql_claimed = await store.claim("w", limit, now=now, lease=LEASE, kinds=kinds)
        assert [r.id for r in sql_claimed] == [r.id for r in mem_claimed]
        for mem_run, sql_run in zip(mem_claimed, sql_claimed, strict=True):
            assert _without_token(sql_run) == _without_token(mem_run)
        # Finish some leased runs so that slots free up.
        running, _ = await memory.list(RunQuery(status=Status.RUNNING, limit=1000))
        for run in rng.sample(running, k=len(running) // 2):
            changes = {"status": Status.SUCCEEDED, "updated_at": now}
            assert await memory.update(run.id, Expect(LEASED), changes) is not None
            assert await store.update(run.id, Expect(LEASED), changes) is not None
        assert await store.occupancy(["x", "y", "z"]) == await memory.occupancy(["x", "y", "z"])


def _without_token(run: Run) -> Run:
    """Lease tokens are random and seqs are per store: compare everything else."""
    return attrs.evolve(run, lease_token=None, seq=0)


def _lease(run: Run) -> Lease:
    assert run.lease_token is not None
    return Lease(run.id, run.attempt, run.lease_token)


# ------------------------------------------------------------------ errors --------------
async def test_unreachable_postgres_is_storage_unavailable() -> None:
    with pytest.raises(StorageUnavailable):
        async with SqlStore(UNREACHABLE_PG):
            pass  # pragma: no cover
    with pytest.raises(StorageUnavailable):
        async with SqlStore(UNREACHABLE_PG, create_schema=True):
            pass  # pragma: no cover
    with pytest.raises(StorageUnavailable):
        migrate.current(UNREACHABLE_PG)


async def test_connections_cut_after_open_are_storage_unavailable(pg_url: str) -> None:
    app = f"rk-test-{uuid4().hex[:12]}"  # only this store's connections get cut
    url = sa.make_url(pg_url).update_query_dict({"application_name": app})
    async with SqlStore(url.render_as_string(hide_password=False), create_schema=True) as s:
        run, _ = await s.insert(make_run(), [])
        admin = sa.create_engine(pg_url, poolclass=NullPool)
        mine = sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :app")
        with admin.connect() as conn:
            pids = list(conn.execute(mine, {"app": app}).scalars())
            assert pids
            for pid in pids:
                # With a timeout, PostgreSQL waits until the backend is gone (PG 14+).
                terminate = sa.text("SELECT pg_terminate_backend(:pid, 60000)")
                assert conn.execute(terminate, {"pid": pid}).scalar()
        admin.dispose()
        outcomes: list[str] = []
        for _ in range(3):
            try:
                await s.get(run.id)
                outcomes.append("ok")
            except StorageUnavailable:
                outcomes.append("unavailable")
        # The first use finds its connection cut; the pool then reconnects.
        assert outcomes == ["unavailable", "ok", "ok"]


# ------------------------------------------------------------------ wake-ups ------------
async def test_listen_notify_round_trip(pg_url: str) -> None:
    async with (
        SqlStore(pg_url, create_schema=True) as listener,
        SqlStore(pg_url) as notifier,
    ):
        # NOTIFY is database-wide, not per schema: a channel of this test's own.
        channel = f"rk_test_{uuid4().hex}"
        assert not await listener.wait_for_notification(channel, 0.05)
        woke = anyio.Event()

        async def wait() -> None:
            assert await listener.wait_for_notification(channel, 60)
            woke.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            # The LISTEN starts inside the first wait: notify until the waiter hears one.
            while not woke.is_set():
                await notifier.notify(channel, "x")
                with anyio.move_on_after(0.05):
                    await woke.wait()


async def test_sqlite_wait_for_notification_is_a_poll_interval(sqlite_url: str) -> None:
    async with SqlStore(sqlite_url, create_schema=True) as s:
        await s.notify("runkit_work", "x")  # nothing to notify on SQLite
        assert await s.wait_for_notification("runkit_work", 0.01) is False


async def test_sqlite_wait_for_notification_wakes_on_another_processs_commit(
    sqlite_url: str,
) -> None:
    """PRAGMA data_version: any commit by another connection (here another process) wakes
    the waiter within its poll interval; without one, the wait times out."""
    async with SqlStore(sqlite_url, create_schema=True) as s:
        assert await s.wait_for_notification("runkit_work", 0.05) is False
        code = """
            import sqlite3, sys
            conn = sqlite3.connect(sys.argv[1], isolation_level=None)
            conn.execute("CREATE TABLE IF NOT EXISTS poke (x)")
            conn.execute("INSERT INTO poke VALUES (1)")
        """
        proc = run_python(code, sa.make_url(sqlite_url).database or "")
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        started = anyio.current_time()
        assert await s.wait_for_notification("runkit_work", 30) is True
        assert anyio.current_time() - started < 5
        # The commit was answered: the next wait has nothing to wake it.
        assert await s.wait_for_notification("runkit_work", 0.05) is False


def test_store_runs_under_trio(sqlite_url: str) -> None:
    async def main() -> Run | None:
        async with SqlStore(sqlite_url, create_schema=True) as s:
            run, _ = await s.insert(make_run(), [])
            return await s.get(run.id)

    assert anyio.run(main, backend="trio") is not None


def test_stored_logs_agrees_with_materialize() -> None:
    """The SQL store materializes appended entries from (id, seq, attempt) alone; it must
    give exactly what the shared helper gives from the whole run."""
    from runkit.storage.base import materialize
    from runkit.storage.sql.rows import stored_logs

    run = make_run(attempt=3, seq=7, log_seq=4)
    entries = [
        NewLogEntry("a"),
        NewLogEntry("b", level="error", event="e", data={"k": 1}, attempt=2, worker_id="w"),
        NewLogEntry("c", occurred_at=T0 + LEASE),
    ]
    rows: list[dict[str, Any]] = []
    got = stored_logs(run.id, 7, 3, entries, 4, T0, rows)
    expected = materialize(run, entries, 4, T0)
    assert got == expected
    # The rows written are the stored entries, column by column.
    fields = ("seq", "attempt", "level", "event", "message", "data", "occurred_at", "worker_id")
    assert rows == [{"run_seq": 7, **{f: getattr(e, f) for f in fields}} for e in expected]


def test_a_postgresql_url_without_its_driver_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from runkit import ConfigurationError

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a)
    )
    with pytest.raises(ConfigurationError, match=r"runkit\[postgres\]"):
        SqlStore("postgresql+psycopg://u@127.0.0.1/db")
