"""The driver path (PostgreSQL on asyncio) with and without psycopg's pipeline mode, which
needs libpq 14: the same runs, the same errors, either way."""

from __future__ import annotations

from typing import Any

import anyio
import psycopg
import pytest

from runkit import Kind, NewRun, Runkit, RunNotFound, Status
from runkit.engine import embedded_workers
from runkit.service import creates
from runkit.storage.sql.store import SqlStore

pytestmark = pytest.mark.anyio


async def _noop(ctx: Any) -> dict[str, Any]:
    await ctx.log("info", "ran")
    return {"ok": True}


@pytest.mark.parametrize("pipelines", [True, False], ids=["pipelined", "one-by-one"])
async def test_runs_and_errors_are_the_same_with_or_without_pipelines(
    pg_url: str, pipelines: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = []
    original = psycopg.AsyncConnection.pipeline

    def counting(self: Any) -> Any:
        entered.append(1)
        return original(self)

    monkeypatch.setattr(psycopg.AsyncConnection, "pipeline", counting)
    store = SqlStore(pg_url, create_schema=True)
    assert store._driver is not None
    store._driver.pipelines = pipelines
    async with Runkit(store, kinds=[Kind("noop", executor=_noop)], autoload_plugins=False) as rk:
        items = [NewRun("noop", execute=True, concurrency_key=f"k{i % 3}") for i in range(12)]
        created = await rk.create_many(items)
        ids = [c.run.id for c in created]  # type: ignore[union-attr]
        async with embedded_workers(rk, concurrency=4, poll_interval=0.05):
            with anyio.fail_after(30):
                while {(await rk.get(i)).status for i in ids} != {Status.SUCCEEDED}:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
        for run_id in ids:
            messages = [e.message async for e in rk.iter_logs(run_id)]
            assert "ran" in messages and (await rk.get(run_id)).result == {"ok": True}
        # A failed statement inside a transaction: the error, and nothing of it written.
        first = await rk.get(ids[0])
        new, entries = await creates.build(rk, NewRun("noop"), None)
        with pytest.raises(ValueError, match="exists"):
            await rk.store.insert_many([(new, entries), (first, [])])
        with pytest.raises(RunNotFound):
            await rk.get(new.id)
    assert (len(entered) > 0) is pipelines


async def test_a_store_on_a_host_engine_leaves_no_listener_behind(pg_url: str) -> None:
    """The store remembers its connections' sessions through the engine's connect event; a
    host's engine outlives the store, so closing the store removes the listener."""
    import sqlalchemy as sa

    engine = sa.create_engine(pg_url)
    store = SqlStore(engine, create_schema=True)
    remember = store._listening._remember
    assert sa.event.contains(engine, "connect", remember)
    await store.open()
    await store.close()
    assert not sa.event.contains(engine, "connect", remember)
    engine.dispose()
