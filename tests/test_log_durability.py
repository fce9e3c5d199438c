"""An executor's log entries are not lost on the way to the store: a write that fails keeps
them for the next one, and data no store can encode is made JSON when it is logged (before,
it failed the flush and then the attempt's outcome with it, on SQL stores only)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from run_support import FAST, SETTINGS, wait_status
from runkit import Kind, Lease, NewLogEntry, Run, Runkit, Status
from runkit.domain.errors import LeaseLost
from runkit.domain.redact import REDACTED, clean
from runkit.engine import RunContext, Worker
from runkit.engine._context import AttemptContext

pytestmark = pytest.mark.anyio


async def _attempt(rk: Runkit) -> AttemptContext:
    await rk.create("noop", execute=True)
    (run,) = await rk.ops.claim("w", 1)
    assert run.lease_token is not None
    return AttemptContext(rk, run, Lease(run.id, run.attempt, run.lease_token), None, "w")


def _failing_once(rk: Runkit, name: str) -> list[int]:
    """Make ``rk.ops.<name>`` fail on its first call; returns the list of calls made."""
    real = getattr(rk.ops, name)
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("store unreachable")
        return await real(*args, **kwargs)

    setattr(rk.ops, name, flaky)
    return calls


async def _executed(rk: Runkit, kind: str) -> Run:
    """A run of ``kind`` once a worker has executed it to success."""
    worker = Worker(rk, **FAST)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        run = (await rk.create(kind, execute=True)).run
        await wait_status(rk, run.id, {Status.SUCCEEDED})
        worker.stop()
    return run


async def _messages(rk: Runkit, ctx: AttemptContext) -> list[str]:
    return [e.message async for e in rk.iter_logs(ctx.run_id) if e.event is None]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_failed_flush_keeps_its_entries_for_the_next_write(
    store: str, sqlite_url: str
) -> None:
    url = "memory://" if store == "memory" else sqlite_url
    kinds = [Kind("noop", executor=lambda ctx: None)]
    async with Runkit(url, kinds=kinds, autoload_plugins=False) as rk:
        ctx = await _attempt(rk)
        calls = _failing_once(rk, "append_logs")
        await ctx.log("info", "one")
        await ctx.log("info", "two")
        with pytest.raises(ConnectionError):
            await ctx.flush()
        await ctx.log("info", "three")
        await ctx.flush()
        assert len(calls) == 2
        assert await _messages(rk, ctx) == ["one", "two", "three"]


async def test_entries_of_a_failed_progress_write_go_with_the_outcome() -> None:
    kinds = [Kind("noop", executor=lambda ctx: None)]
    async with Runkit("memory://", kinds=kinds, autoload_plugins=False) as rk:
        ctx = await _attempt(rk)
        _failing_once(rk, "set_progress")
        await ctx.log("info", "before")
        with pytest.raises(ConnectionError):
            await ctx.progress({"done": 1})
        await ctx.log("info", "after")
        assert [e.message for e in await ctx.close_logs()] == ["before", "after"]


async def test_a_lost_lease_drops_the_entries() -> None:
    kinds = [Kind("noop", executor=lambda ctx: None)]
    async with Runkit("memory://", kinds=kinds, autoload_plugins=False) as rk:
        ctx = await _attempt(rk)
        await ctx.log("info", "late")
        await rk.ops.release(ctx.lease)
        with pytest.raises(LeaseLost):
            await ctx.flush()
        assert await ctx.close_logs() == []


async def test_a_worker_writes_every_entry_through_a_failed_flush(sqlite_url: str) -> None:
    """The worker's flusher retries: the entries of the failed write are in the log, in
    order, before those logged after."""

    async def chatty(ctx: RunContext) -> dict[str, Any]:
        for i in range(6):
            await ctx.log("info", f"line {i}")
            await anyio.sleep(0.05)  # past the flush interval: several flushes
        return {}

    kinds = [Kind("chatty", executor=chatty)]
    async with Runkit(sqlite_url, kinds=kinds, settings=SETTINGS, autoload_plugins=False) as rk:
        calls = _failing_once(rk, "append_logs")
        run = await _executed(rk, "chatty")
        lines = [e.message async for e in rk.iter_logs(run.id) if e.message.startswith("line")]
        assert len(calls) >= 2  # the failed flush, then at least one that wrote
        assert lines == [f"line {i}" for i in range(6)]


_ODD = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes()
    | st.decimals()
    | st.frozensets(st.integers(), max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text() | st.integers(), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(data=st.dictionaries(st.text(), _ODD, max_size=4))
def test_any_logged_data_becomes_strict_json(data: dict[str, Any]) -> None:
    entry = clean(NewLogEntry("m", data=data))
    json.dumps(entry.data, allow_nan=False)  # raises on a set, a datetime, NaN, ...


def test_odd_values_become_their_str_and_are_searched_for_secrets() -> None:
    class Conn:
        def __str__(self) -> str:
            return "postgresql://bob:hunter2secretpw@db/x"

    when = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    entry = clean(
        NewLogEntry(
            "m",
            data={"at": when, "n": Decimal("1.5"), "nan": float("nan"), 7: "seven", "c": Conn()},
        )
    )
    assert entry.data["at"] == str(when) and entry.data["n"] == "1.5"
    assert entry.data["nan"] == "nan" and entry.data["7"] == "seven"
    assert "hunter2secretpw" not in entry.data["c"] and REDACTED in entry.data["c"]


@pytest.mark.parametrize("store", ["memory", "sqlite"])
async def test_a_run_logging_odd_data_succeeds_on_every_store(store: str, sqlite_url: str) -> None:
    async def odd(ctx: RunContext) -> dict[str, Any]:
        await ctx.log("info", "odd", data={"ids": {1, 2}, "at": dt.datetime(2026, 1, 2)})
        return {}

    url = "memory://" if store == "memory" else sqlite_url
    kinds = [Kind("odd", executor=odd)]
    async with Runkit(url, kinds=kinds, settings=SETTINGS, autoload_plugins=False) as rk:
        run = await _executed(rk, "odd")
        (entry,) = [e async for e in rk.iter_logs(run.id) if e.message == "odd"]
        assert entry.data == {"ids": "{1, 2}", "at": "2026-01-02 00:00:00"}
