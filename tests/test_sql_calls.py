"""How the SQL store runs its primitives (``storage.sql.calls``): one-statement primitives
awaited on psycopg without a greenlet, the rest in one; retries and translation the same
for both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import anyio
import anyio.lowlevel
import psycopg
import pytest
from sqlalchemy import exc

from runkit.domain.errors import StorageUnavailable
from runkit.domain.models import NewLogEntry, Run
from runkit.domain.states import Status
from runkit.storage.sql import calls as calls_module
from runkit.storage.sql import driver
from runkit.storage.sql.calls import Calls
from runkit.storage.sql.store import SqlStore

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _run(**fields: Any) -> Run:
    return Run(
        **{
            "id": uuid4(),
            "kind": "noop",
            "status": Status.QUEUED,
            "created_at": T0,
            "updated_at": T0,
            **fields,
        }
    )


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the primitives run in a greenlet (the driver path's ``run``)."""
    names: list[str] = []
    original = driver.greenlet_spawn

    async def counting(fn: Any, *args: Any, **kwargs: Any) -> Any:
        names.append(getattr(getattr(fn, "args", [None])[0], "func", fn).__name__)
        return await original(fn, *args, **kwargs)

    monkeypatch.setattr(driver, "greenlet_spawn", counting)
    return names


async def test_a_create_a_read_and_a_notify_take_no_greenlet(
    pg_url: str, spawned: list[str]
) -> None:
    async with SqlStore(pg_url, create_schema=True) as store:
        spawned.clear()
        run, created = await store.insert(_run(), [NewLogEntry("a"), NewLogEntry("b")])
        assert created and run.seq > 0 and run.log_seq == 2
        got = await store.get(run.id)
        assert got is not None and got.seq == run.seq
        assert await store.get(uuid4()) is None
        await store.notify("rk_test_calls", "x")
        assert spawned == []
        # The entries went in with the run, in the same statement.
        assert [e.message for e in await store.read_logs(run.id, after=0, limit=10)] == [
            "a",
            "b",
        ]


async def test_a_held_scope_replays_with_one_read_of_its_holder(
    pg_url: str, spawned: list[str]
) -> None:
    async with SqlStore(pg_url, create_schema=True) as store:
        first, created = await store.insert(_run(idempotency_scope="s:1"), [NewLogEntry("a")])
        assert created
        spawned.clear()
        again, created = await store.insert(_run(idempotency_scope="s:1"), [NewLogEntry("a")])
        assert not created and again.id == first.id
        assert spawned == []  # the insert that found the scope held, then the holder read
        with pytest.raises(ValueError, match="exists"):  # the same id: the caller's mistake
            await store.insert(_run(id=first.id), [NewLogEntry("a")])


async def test_a_holder_deleted_before_its_read_frees_the_scope(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert found the scope held; the holder is deleted before it is read: the
    scope is free again, and the run is inserted after all."""
    from runkit.storage.sql.insert import HOLDER

    async with SqlStore(pg_url, create_schema=True) as store:
        first, _ = await store.insert(_run(idempotency_scope="s:2"), [NewLogEntry("a")])
        original = store._calls.statement

        async def deleting_first(stmt: Any, params: Any) -> Any:
            if stmt is HOLDER:
                assert await store.delete(first.id, set(Status))
            return await original(stmt, params)

        monkeypatch.setattr(store._calls, "statement", deleting_first)
        run, created = await store.insert(_run(idempotency_scope="s:2"), [NewLogEntry("a")])
        assert created and run.id != first.id
        assert (await store.get(run.id)) is not None and await store.get(first.id) is None


async def test_a_cancelled_create_still_lands_whole(pg_url: str) -> None:
    """Shielded as the greenlet path is: the caller's cancellation waits for the commit."""
    async with SqlStore(pg_url, create_schema=True) as store:
        run = _run()
        with anyio.CancelScope() as scope:
            scope.cancel()
            await store.insert(run, [NewLogEntry("a")])
            await anyio.lowlevel.checkpoint()  # pragma: no cover - the cancellation lands here
        got = await store.get(run.id)
        assert got is not None and got.log_seq == 1


class _FakeDriver:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    def usable(self) -> bool:
        return True

    async def statement(self, stmt: Any, params: Any) -> Any:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return driver.Result([])


def _error(cls: type[psycopg.Error]) -> exc.DBAPIError:
    return exc.DBAPIError.instance("SELECT 1", None, cls("boom"), psycopg.Error)


async def test_a_serialization_failure_is_retried_then_raised() -> None:
    fake = _FakeDriver([_error(psycopg.errors.SerializationFailure)])
    calls = Calls(None, fake, 1)  # type: ignore[arg-type]
    await calls.statement("stmt", {})
    assert fake.calls == 2
    fake = _FakeDriver([_error(psycopg.errors.DeadlockDetected) for _ in range(3)])
    calls = Calls(None, fake, 1)  # type: ignore[arg-type]
    with pytest.raises(exc.DBAPIError):
        await calls.statement("stmt", {})
    assert fake.calls == calls_module._TRIES


async def test_a_lost_database_is_storage_unavailable_and_not_retried() -> None:
    fake = _FakeDriver([_error(psycopg.OperationalError)])
    calls = Calls(None, fake, 1)  # type: ignore[arg-type]
    with pytest.raises(StorageUnavailable):
        await calls.statement("stmt", {})
    assert fake.calls == 1
    fake = _FakeDriver([_error(psycopg.errors.UniqueViolation)])
    calls = Calls(None, fake, 1)  # type: ignore[arg-type]
    with pytest.raises(exc.IntegrityError):  # anything else: as it is
        await calls.statement("stmt", {})


async def test_one_cursor_a_connection_forgotten_with_its_connection(pg_url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    app = f"rk-calls-{uuid4().hex[:12]}"
    url = sa.make_url(pg_url).update_query_dict({"application_name": app})
    async with SqlStore(url.render_as_string(hide_password=False), create_schema=True) as store:
        run, _ = await store.insert(_run(), [NewLogEntry("a")])
        for _ in range(20):
            assert await store.get(run.id) is not None
        assert store._driver is not None
        pool = store._driver.pool
        (first,) = pool._cursors.values()  # one connection lent at a time: one cursor
        admin = sa.create_engine(pg_url, poolclass=NullPool)
        with admin.connect() as conn:
            pids = conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :a"),
                {"a": app},
            ).scalars()
            for pid in list(pids):
                conn.execute(sa.text("SELECT pg_terminate_backend(:p, 60000)"), {"p": pid})
        admin.dispose()
        with pytest.raises(StorageUnavailable):
            await store.get(run.id)
        assert await store.get(run.id) is not None
        (second,) = pool._cursors.values()  # the cut connection's cursor went with it
        assert second is not first and second.connection is not first.connection
