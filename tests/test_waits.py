"""Durable waits in one process, on every backend: a run that waits for its children (or a
time) holds no worker and no slot, is woken by its children's moves, and runs again from
the start where the same calls return at once. Multi-process: test_waits_processes.py."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import anyio
import pytest

from run_support import wait_status
from runkit import Kind, Runkit, Settings, Status
from runkit.domain.models import Expect, Lease
from runkit.domain.waits import Wait
from runkit.engine import Fatal, RunContext, embedded_workers

pytestmark = pytest.mark.anyio

SETTINGS = Settings(
    lease=timedelta(seconds=2),
    heartbeat=timedelta(seconds=0.3),
    rescue_interval=timedelta(seconds=0.2),
)
FAST = {"poll_interval": 0.1, "control_interval": 0.2, "grace_period": 2.0}
TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.REJECTED}

#: Gates the ``gate`` children wait on, by name; and how often each parent's executor ran.
GATES: dict[str, anyio.Event] = {}
EXECUTIONS: Counter[str] = Counter()
STEP_CALLS: Counter[str] = Counter()


async def gate(ctx: RunContext) -> dict[str, Any]:
    name = ctx.definition["name"]
    await GATES.setdefault(name, anyio.Event()).wait()
    if ctx.definition.get("fail") and ctx.run.retry_count == 0:
        raise Fatal(f"{name} failed")
    return {"name": name}


async def fan(ctx: RunContext) -> dict[str, Any]:
    """Starts one ``gate`` child per name and returns what became of them."""
    EXECUTIONS[str(ctx.run_id)] += 1
    token = await ctx.step("token", lambda: STEP_CALLS.update([str(ctx.run_id)]) or "t")
    kids = [
        await ctx.start_child("gate", child, step=child["name"])
        for child in ctx.definition["children"]
    ]
    done = await ctx.wait_for([k.id for k in kids], fail_fast=ctx.definition.get("failFast", False))
    return {
        "token": token,
        "statuses": [d.status.value for d in done],
        "names": [d.result["name"] if d.result else None for d in done],
    }


async def unnamed(ctx: RunContext) -> dict[str, Any]:
    """Children without step names: the n-th start_child is the same child every time."""
    kids = [await ctx.start_child("noop", {}) for _ in range(3)]
    done = await ctx.wait_for([k.id for k in kids])
    return {"ids": [str(d.id) for d in done]}


def threaded(ctx: RunContext) -> dict[str, Any]:
    """A plain-function executor: the same waits through ``ctx.sync``."""
    EXECUTIONS[str(ctx.run_id)] += 1
    token = ctx.sync.step("token", lambda: STEP_CALLS.update([str(ctx.run_id)]) or "t")
    kids = [ctx.sync.start_child("noop", {}, step=str(i)) for i in range(2)]
    done = ctx.sync.wait_for([k.id for k in kids])
    ctx.sync.sleep(0.2)
    return {"token": token, "statuses": [d.status.value for d in done]}


async def napper(ctx: RunContext) -> dict[str, Any]:
    EXECUTIONS[str(ctx.run_id)] += 1
    await ctx.sleep(ctx.definition["seconds"])
    return {"executions": EXECUTIONS[str(ctx.run_id)]}


async def stranger(ctx: RunContext) -> None:
    await ctx.wait_for([ctx.definition["other"]])


async def noop(ctx: RunContext) -> dict[str, Any]:
    return {}


KINDS = [
    Kind("gate", gate),
    Kind("fan", fan),
    Kind("unnamed", unnamed),
    Kind("napper", napper),
    Kind("threaded", threaded),
    Kind("stranger", stranger),
    Kind("noop", noop),
]


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    value: str = request.getfixturevalue(fixture)
    return value


@pytest.fixture(autouse=True)
def _fresh_gates() -> None:
    GATES.clear()  # events belong to one event loop, and each test has its own


@pytest.fixture
async def rk(url: str) -> AsyncIterator[Runkit]:
    async with Runkit(url, kinds=KINDS, autoload_plugins=False, settings=SETTINGS) as instance:
        yield instance


def fan_of(*names: str, fail: set[str] = frozenset(), fail_fast: bool = False) -> dict[str, Any]:  # type: ignore[assignment]
    children = [{"name": n, **({"fail": True} if n in fail else {})} for n in names]
    return {"children": children, "failFast": fail_fast}


def open_gate(name: str) -> None:
    GATES.setdefault(name, anyio.Event()).set()


async def children_of(rk: Runkit, parent: Any) -> list[Any]:
    return list((await rk.list(parent_action_run_id=parent)).runs)


async def statuses(rk: Runkit, run_id: Any) -> list[str]:
    return [e.data["to"] async for e in rk.iter_logs(run_id) if e.event == "status.changed"]


async def test_one_slot_runs_a_parent_and_its_three_children(rk: Runkit) -> None:
    for name in "abc":
        open_gate(name)
    async with embedded_workers(rk, concurrency=1, **FAST):
        parent = (await rk.create("fan", fan_of("a", "b", "c"), execute=True)).run
        done = await rk.wait(parent.id, timeout=30)
    assert done.status is Status.SUCCEEDED, done.error
    assert done.result == {"token": "t", "statuses": ["succeeded"] * 3, "names": ["a", "b", "c"]}
    kids = await children_of(rk, parent.id)
    assert [k.definition["name"] for k in kids] == ["a", "b", "c"]  # creation order, once each
    assert all(k.status is Status.SUCCEEDED and k.attempt == 1 for k in kids)
    assert "waiting" in await statuses(rk, parent.id)
    assert STEP_CALLS[str(parent.id)] == 1  # the step ran once across every execution
    assert done.attempt == EXECUTIONS[str(parent.id)] >= 2
    assert done.retry_count == 0 and done.wait is None


async def test_a_waiting_run_holds_no_slot_and_says_what_it_waits_for(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=4, **FAST) as worker:
        parent = (
            await rk.create("fan", fan_of("p1", "p2", "p3"), execute=True, concurrency_key="k")
        ).run
        waiting = await wait_status(rk, parent.id, {Status.WAITING}, within=20)
        assert waiting.worker_id is None and waiting.lease_token is None
        assert (await rk.store.occupancy(["k"])) == {"k": 0}
        assert await rk.display_status(waiting) == "Waiting · 0 of 3 steps done"
        open_gate("p1")
        kids = await children_of(rk, parent.id)
        await wait_status(rk, kids[0].id, {Status.SUCCEEDED})
        assert await rk.display_status(await rk.get(parent.id)) == "Waiting · 1 of 3 steps done"
        with anyio.fail_after(10):
            while worker.held != 2:  # noqa: ASYNC110 - the two closed gates, not the parent
                await anyio.sleep(0.02)
        open_gate("p2")
        open_gate("p3")
        done = await rk.wait(parent.id, timeout=20)
    assert done.status is Status.SUCCEEDED


async def test_pause_holds_a_waiting_run_and_resume_rechecks(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=4, **FAST):
        parent = (await rk.create("fan", fan_of("q1", "q2"), execute=True)).run
        await wait_status(rk, parent.id, {Status.WAITING}, within=20)
        paused = await rk.pause(parent.id)
        assert paused.status is Status.PAUSED and paused.wait is None
        open_gate("q1")
        open_gate("q2")
        for kid in await children_of(rk, parent.id):  # children go on
            await wait_status(rk, kid.id, {Status.SUCCEEDED}, within=20)
        assert (await rk.get(parent.id)).status is Status.PAUSED  # and it stays held
        await rk.resume(parent.id)
        done = await rk.wait(parent.id, timeout=20)
    assert done.status is Status.SUCCEEDED and done.result is not None
    assert done.result["statuses"] == ["succeeded", "succeeded"]


async def test_pause_resume_before_the_children_finish_waits_again(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=4, **FAST):
        parent = (await rk.create("fan", fan_of("r1"), execute=True)).run
        await wait_status(rk, parent.id, {Status.WAITING}, within=20)
        await rk.pause(parent.id)
        await rk.resume(parent.id)
        again = await wait_status(rk, parent.id, {Status.WAITING}, within=20)
        assert again.attempt == 2
        open_gate("r1")
        done = await rk.wait(parent.id, timeout=20)
    assert done.status is Status.SUCCEEDED and done.attempt == 3


async def test_cancel_of_a_waiting_run_cancels_its_children(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=4, **FAST):
        parent = (await rk.create("fan", fan_of("c1", "c2"), execute=True)).run
        await wait_status(rk, parent.id, {Status.WAITING}, within=20)
        cancelled = await rk.cancel(parent.id)
        assert cancelled.status is Status.CANCELLED
        for kid in await children_of(rk, parent.id):
            await wait_status(rk, kid.id, {Status.CANCELLED}, within=20)
            reasons = [e.data["reason"] async for e in rk.iter_logs(kid.id) if e.data.get("reason")]
            assert "parent_cancelled" in reasons


async def test_a_childs_retry_while_the_parent_waits_is_seen(rk: Runkit) -> None:
    open_gate("f1")
    async with embedded_workers(rk, concurrency=4, **FAST):
        parent = (await rk.create("fan", fan_of("f1", "f2", fail={"f1"}), execute=True)).run
        await wait_status(rk, parent.id, {Status.WAITING}, within=20)
        first = (await children_of(rk, parent.id))[0]
        await wait_status(rk, first.id, {Status.FAILED}, within=20)
        assert (await rk.get(parent.id)).status is Status.WAITING  # f2 still runs
        await rk.retry(first.id)
        await wait_status(rk, first.id, {Status.SUCCEEDED}, within=20)
        open_gate("f2")
        done = await rk.wait(parent.id, timeout=20)
    assert done.result is not None and done.result["statuses"] == ["succeeded", "succeeded"]


async def test_fail_fast_wakes_on_the_first_failure(rk: Runkit) -> None:
    open_gate("x1")
    async with embedded_workers(rk, concurrency=4, **FAST):
        definition = fan_of("x1", "x2", fail={"x1"}, fail_fast=True)
        parent = (await rk.create("fan", definition, execute=True)).run
        done = await rk.wait(parent.id, timeout=20)
        assert done.status is Status.SUCCEEDED and done.result is not None
        assert done.result["statuses"] == ["failed", "running"]
        open_gate("x2")


async def test_unnamed_children_are_made_once(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=1, **FAST):
        parent = (await rk.create("unnamed", {}, execute=True)).run
        done = await rk.wait(parent.id, timeout=30)
    kids = await children_of(rk, parent.id)
    assert done.status is Status.SUCCEEDED and done.result is not None
    assert done.result["ids"] == [str(k.id) for k in kids] and len(kids) == 3


async def test_durable_sleep_holds_no_worker(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=1, **FAST) as worker:
        run = (await rk.create("napper", {"seconds": 0.6}, execute=True)).run
        waiting = await wait_status(rk, run.id, {Status.WAITING}, within=20)
        assert worker.held == 0 and waiting.deadline_at is not None
        assert (await rk.display_status(waiting)).startswith("Waiting · until ")
        done = await rk.wait(run.id, timeout=20)
    assert done.status is Status.SUCCEEDED and done.result == {"executions": 2}


async def test_a_thread_executor_waits_through_ctx_sync(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=1, **FAST):
        run = (await rk.create("threaded", {}, execute=True)).run
        done = await rk.wait(run.id, timeout=30)
    assert done.status is Status.SUCCEEDED, done.error
    assert done.result == {"token": "t", "statuses": ["succeeded", "succeeded"]}
    assert STEP_CALLS[str(run.id)] == 1 and EXECUTIONS[str(run.id)] == 3  # start, kids, sleep
    assert len(await children_of(rk, run.id)) == 2


async def test_waiting_for_a_run_that_is_no_child_fails_the_run(rk: Runkit) -> None:
    other = (await rk.create("noop", {})).run
    async with embedded_workers(rk, concurrency=1, **FAST):
        run = (await rk.create("stranger", {"other": str(other.id)}, execute=True)).run
        done = await rk.wait(run.id, timeout=20)
    assert done.status is Status.FAILED and done.error is not None
    assert "not a child" in done.error["message"]


async def test_a_child_that_finished_before_the_wait_committed_wakes_the_parent(
    rk: Runkit,
) -> None:
    """The race no child can see: a child done between the executor's look and the wait
    move. The worker's look after the move wakes the parent at once."""
    parent = (await rk.create("noop", {}, execute=True)).run
    [claimed] = await rk.ops.claim("w", 1)
    child = (await rk.create("noop", {}, parent_action_run_id=parent.id, execute=True)).run
    [held] = await rk.ops.claim("w2", 1)
    assert held.id == child.id
    await rk.ops.complete(Lease(child.id, held.attempt, held.lease_token or ""), {})
    after = await rk.ops.suspend(
        Lease(parent.id, claimed.attempt, claimed.lease_token or ""), Wait((child.id,))
    )
    assert after.status is Status.QUEUED and after.status_reason == "children done"


async def test_the_rescuer_repairs_a_lost_wake_up(url: str) -> None:
    settings = Settings(
        lease=timedelta(seconds=2),
        heartbeat=timedelta(seconds=0.3),
        rescue_interval=timedelta(seconds=0.2),
        wait_recheck=timedelta(seconds=0.5),
    )
    runkit = Runkit(url, kinds=KINDS, autoload_plugins=False, settings=settings)
    async with runkit as rk, embedded_workers(rk, concurrency=2, **FAST):
        parent = (await rk.create("fan", fan_of("lost"), execute=True)).run
        await wait_status(rk, parent.id, {Status.WAITING}, within=20)
        [kid] = await children_of(rk, parent.id)
        # Finish the child behind the engine's back, as a process that died right
        # after the child's commit would: no follow-up wakes the parent.
        gone = await rk.store.update(
            kid.id,
            Expect(frozenset({Status.RUNNING, Status.QUEUED})),
            {"status": Status.SUCCEEDED, "result": {"name": "lost"}},
        )
        assert gone is not None, await rk.get(kid.id)
        assert (await rk.get(parent.id)).status is Status.WAITING
        done = await rk.wait(parent.id, timeout=20)  # woken by the re-check
    assert done.status is Status.SUCCEEDED


async def test_the_children_list_in_creation_order(rk: Runkit) -> None:
    parent = (await rk.create("noop", {})).run
    ids = [(await rk.create("noop", {}, parent_action_run_id=parent.id)).run.id for _ in range(5)]
    page = await rk.list(parent_action_run_id=parent.id, limit=3, offset=1)
    assert [r.id for r in page.runs] == ids[1:4] and page.total == 5
    newest = await rk.list(kind="noop", limit=1)
    assert newest.runs[0].id == ids[-1]  # other lists stay newest first
