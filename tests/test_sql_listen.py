"""PostgreSQL LISTEN on both of the store's paths: psycopg's async connection on asyncio
(the driver path's stores), a thread elsewhere (trio, ``native_async=False``, a host's
engine). Same contract on both: payloads per channel, the store's own notifications
dropped, a cancelled wait leaves the next one working."""

from __future__ import annotations

from uuid import uuid4

import anyio
import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from runkit import StorageUnavailable
from runkit.storage.protocols import Notifications
from runkit.storage.sql.store import SqlStore

pytestmark = pytest.mark.anyio


def _path(store: SqlStore) -> str:
    listening = store._listening
    if listening._async_listener is not None:
        return "async"
    return "thread" if listening._listener is not None else "none"


async def _hear(listener: SqlStore, notifier: SqlStore, channel: str) -> set[str]:
    """Notify until the listener hears (its LISTEN starts inside its first wait)."""
    heard: set[str] = set()
    with anyio.fail_after(30):
        while heard != {"a", "b"}:
            await notifier.notify(channel, "a")
            await notifier.notify(channel, "b")
            fired = await listener.wait_for_notifications([channel], 0.2)
            assert isinstance(fired, Notifications)
            if fired:
                heard |= fired.payloads[channel]
    return heard


@pytest.mark.parametrize("native", [True, False], ids=["driver", "threads"])
async def test_payloads_arrive_on_either_path(pg_url: str, native: bool) -> None:
    async with (
        SqlStore(pg_url, create_schema=True, native_async=native) as listener,
        SqlStore(pg_url) as notifier,
    ):
        channel = f"rk_test_{uuid4().hex}"  # NOTIFY is database-wide: a channel of our own
        assert await _hear(listener, notifier, channel) == {"a", "b"}
        assert _path(listener) == ("async" if native else "thread")


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_trio_listens_in_a_thread(pg_url: str) -> None:
    async with SqlStore(pg_url, create_schema=True) as listener, SqlStore(pg_url) as notifier:
        channel = f"rk_test_{uuid4().hex}"
        assert await _hear(listener, notifier, channel) == {"a", "b"}
        assert _path(listener) == "thread"


async def test_the_async_listener_drops_its_own_stores_notifications(pg_url: str) -> None:
    async with SqlStore(pg_url, create_schema=True) as store, SqlStore(pg_url) as other:
        channel = f"rk_test_{uuid4().hex}"
        await _hear(store, other, channel)  # listening now
        for _ in range(5):
            await store.notify(channel, "mine")
        assert await store.wait_for_notifications([channel], 0.3) == set()
        await other.notify(channel, "theirs")
        with anyio.fail_after(10):
            fired = await store.wait_for_notifications([channel], 10)
        assert isinstance(fired, Notifications) and fired.payloads[channel] == {"theirs"}
        assert _path(store) == "async"


async def test_a_cancelled_async_wait_leaves_the_next_one_working(pg_url: str) -> None:
    async with SqlStore(pg_url, create_schema=True) as listener, SqlStore(pg_url) as notifier:
        channel = f"rk_test_{uuid4().hex}"
        await _hear(listener, notifier, channel)
        with anyio.move_on_after(0.1):  # cancelled inside psycopg's notifies()
            await listener.wait_for_notifications([channel], 60)
        assert await _hear(listener, notifier, channel) == {"a", "b"}


async def test_async_waiters_take_turns(pg_url: str) -> None:
    async with SqlStore(pg_url, create_schema=True) as listener, SqlStore(pg_url) as notifier:
        channel = f"rk_test_{uuid4().hex}"
        await _hear(listener, notifier, channel)
        results: list[set[str]] = []

        async def wait() -> None:
            results.append(await listener.wait_for_notifications([channel], 0.3))

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait)
            tg.start_soon(wait)  # waits for the first's turn, within its own timeout
        assert results == [set(), set()]
        await notifier.notify(channel, "c")
        with anyio.fail_after(10):
            fired = await listener.wait_for_notifications([channel], 10)
        assert isinstance(fired, Notifications) and fired.payloads[channel] == {"c"}


async def test_closing_the_store_closes_its_async_listener(pg_url: str) -> None:
    store = SqlStore(pg_url, create_schema=True)
    async with store, SqlStore(pg_url) as notifier:
        await _hear(store, notifier, f"rk_test_{uuid4().hex}")
        listener = store._listening._async_listener
        assert listener is not None and listener._conn is not None
        conn = listener._conn
    assert conn.closed and store._listening._async_listener is None


@pytest.mark.parametrize("native", [True, False], ids=["driver", "threads"])
async def test_a_listener_whose_connection_was_killed_reconnects(pg_url: str, native: bool) -> None:
    """The server ends the LISTEN session (a restart, an admin): the wait under way fails
    as StorageUnavailable (the caller logs it and polls), and the next one listens anew."""
    async with (
        SqlStore(pg_url, create_schema=True, native_async=native) as listener,
        SqlStore(pg_url) as notifier,
    ):
        channel = f"rk_test_{uuid4().hex}"
        await _hear(listener, notifier, channel)
        listening = listener._listening
        held = listening._async_listener if native else listening._listener
        assert held is not None
        pid = held._conn.info.backend_pid
        engine = sa.create_engine(pg_url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        engine.dispose()
        failures = 0
        with anyio.fail_after(30):
            while True:
                try:
                    assert await _hear(listener, notifier, channel) == {"a", "b"}
                    break
                except StorageUnavailable:
                    failures += 1
        assert failures == 1
        assert held._conn.info.backend_pid != pid
