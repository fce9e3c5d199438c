"""``Runkit.create_many``: one transaction for a batch, validation before anything is
written, per-item answers for idempotency, on every built-in backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import anyio
import pytest

from runkit import (
    Created,
    IdempotencyConflict,
    ManualClock,
    NewRun,
    Principal,
    Runkit,
    Status,
    SyncRunkit,
    ValidationError,
    embedded_workers,
)
from runkit.service.creates import MAX_BATCH
from test_core import KINDS

pytestmark = pytest.mark.anyio


@pytest.fixture(name="clock")
def _clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(name="rk", params=["memory", "sqlite", "postgresql"])
async def _runkit(request: pytest.FixtureRequest, clock: ManualClock) -> AsyncIterator[Runkit]:
    url = "memory://"
    if request.param != "memory":
        url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    async with Runkit(url, kinds=KINDS, autoload_plugins=False, clock=clock) as rk:
        yield rk


async def test_every_item_is_created_in_order_with_its_options(rk: Runkit) -> None:
    items = [
        NewRun("t_noop", execute=True, concurrency_key="k", concurrency_limit=2),
        NewRun("t_sleep", {"seconds": 1}, action_id="act"),
        NewRun("t_gate", {"required": 1}, idempotency_key="i"),
    ]
    answers = await rk.create_many(items, principal=Principal("alice", kind="user"))
    assert all(isinstance(a, Created) and a.created for a in answers)
    runs = [a.run for a in answers if isinstance(a, Created)]
    assert [r.kind for r in runs] == ["t_noop", "t_sleep", "t_gate"]
    assert [r.status for r in runs] == [Status.QUEUED, Status.PENDING, Status.PENDING]
    assert runs[0].concurrency_key == "k" and runs[0].concurrency_limit == 2
    assert runs[1].action_id == "act" and runs[2].idempotency_key == "i"
    assert all(r.trigger_source_id == "alice" and r.trigger_method == "ui" for r in runs)
    assert [r.seq for r in runs] == sorted(r.seq for r in runs)
    for run in runs:  # stored as answered, with the audit entries a create writes
        assert await rk.get(run.id) == run
        assert [e.seq for e in (await rk.logs(run.id)).entries] == list(range(1, run.log_seq + 1))
    page = await rk.list(limit=10)
    assert page.total == 3
    assert await rk.create_many([]) == []


async def test_an_invalid_item_names_its_index_and_nothing_is_written(rk: Runkit) -> None:
    with pytest.raises(ValidationError) as caught:
        await rk.create_many(
            [
                NewRun("t_noop"),
                NewRun("no_such_kind"),
                NewRun("t_sleep", {"seconds": "soon"}),
                NewRun("t_noop", idempotency_key=""),
                NewRun("t_noop", parent_action_run_id=uuid4()),
            ]
        )
    locs = [d.loc for d in caught.value.details]
    assert locs == [
        ("items", 1, "kind"),
        ("items", 2, "definition", "seconds"),
        ("items", 3, "idempotency_key"),
        ("items", 4, "parent_action_run_id"),
    ]
    assert (await rk.list()).total == 0


@pytest.mark.parametrize(
    ("items", "loc"),
    [
        ("t_noop", ("items",)),
        ([{"kind": "t_noop"}], ("items", 0)),
        ([NewRun("t_noop")] * (MAX_BATCH + 1), ("items",)),
    ],
)
async def test_a_malformed_batch_is_refused(rk: Runkit, items: object, loc: tuple[object]) -> None:
    with pytest.raises(ValidationError) as caught:
        await rk.create_many(items)  # type: ignore[arg-type]
    assert [d.loc for d in caught.value.details] == [loc]
    assert (await rk.list()).total == 0


async def test_keys_answer_per_item_and_the_rest_is_written(rk: Runkit) -> None:
    held = await rk.create("t_gate", {"required": 1}, idempotency_key="a")
    answers = await rk.create_many(
        [
            NewRun("t_gate", {"required": 1}, idempotency_key="a"),  # the same request
            NewRun("t_gate", {"required": 2}, idempotency_key="a"),  # a different one
            NewRun("t_noop", idempotency_key="b"),
            NewRun("t_noop", idempotency_key="b"),  # repeats an item of this batch
            NewRun("t_noop"),
        ]
    )
    replay, conflict, new, again, plain = answers
    assert isinstance(replay, Created) and replay.replayed and replay.run.id == held.run.id
    assert isinstance(conflict, IdempotencyConflict)
    assert conflict.existing_run_id == held.run.id and conflict.key == "a"
    assert isinstance(new, Created) and new.created
    assert isinstance(again, Created) and again.replayed and again.run.id == new.run.id
    assert isinstance(plain, Created) and plain.created
    assert (await rk.list()).total == 3


async def test_a_key_past_its_ttl_is_taken_over(rk: Runkit, clock: ManualClock) -> None:
    old = await rk.create("t_noop", idempotency_key="k")
    clock.advance(hours=24, seconds=1)
    (answer,) = await rk.create_many([NewRun("t_noop", idempotency_key="k")])
    assert isinstance(answer, Created) and answer.created and answer.run.id != old.run.id
    (again,) = await rk.create_many([NewRun("t_noop", idempotency_key="k")])
    assert isinstance(again, Created) and again.replayed and again.run.id == answer.run.id


async def test_children_join_their_parent_and_its_tenant(rk: Runkit) -> None:
    parent = await rk.create("t_noop", principal=Principal("k1", kind="api_key", tenant="acme"))
    answers = await rk.create_many(
        [NewRun("t_noop", parent_action_run_id=parent.run.id) for _ in range(3)]
    )
    children = [a.run for a in answers if isinstance(a, Created)]
    assert len(children) == 3
    assert all(c.parent_action_run_id == parent.run.id and c.tenant == "acme" for c in children)
    page = await rk.list(parent_action_run_id=parent.run.id)
    assert [r.id for r in page.runs] == [c.id for c in children]


async def test_queued_items_wake_a_waiting_worker() -> None:
    async with (
        Runkit("memory://", kinds=KINDS, autoload_plugins=False) as local,
        embedded_workers(local, concurrency=4, poll_interval=60),
    ):
        await anyio.sleep(0.1)  # the worker is idle, waiting for a wake-up or its poll
        answers = await local.create_many([NewRun("t_noop", execute=True) for _ in range(20)])
        with anyio.fail_after(10):
            for answer in answers:
                assert isinstance(answer, Created)
                assert (await local.wait(answer.run.id)).status is Status.SUCCEEDED


def test_the_sync_facade_creates_many() -> None:
    with SyncRunkit(lambda: Runkit("memory://", kinds=KINDS, autoload_plugins=False)) as local:
        answers = local.create_many([NewRun("t_noop"), NewRun("t_noop", execute=True)])
        assert [a.run.status for a in answers] == [Status.PENDING, Status.QUEUED]
