"""The log cases of the storage conformance suite: appends and keyset reads, fenced
appends, ids across writers, the log heads of many runs. :class:`LogConformance` is a base
of :class:`~runkit.testing.StoreConformance`, which provides the fixtures."""

from __future__ import annotations

from uuid import uuid4

import anyio

from ..domain.models import Expect, Lease
from ..domain.states import Status
from ..storage.base import LogHead, Store
from ._support import LEASE, T0, _lease, _queued, entry, make_run


class LogConformance:
    """Cases of the log primitives (the fixtures are :class:`StoreConformance`'s)."""

    async def test_append_and_read_logs_with_cursor(self, store: Store) -> None:
        run, _ = await store.insert(make_run(), [entry("created")])
        stored = await store.append_logs(
            run.id, [entry(f"line {i}", data={"i": i}, level="debug") for i in range(5)]
        )
        assert stored is not None and [e.seq for e in stored] == [2, 3, 4, 5, 6]
        assert stored[0].data == {"i": 0} and stored[0].level == "debug"
        page = await store.read_logs(run.id, after=2, limit=2)
        assert [e.seq for e in page] == [3, 4]
        assert [e.message for e in page] == ["line 1", "line 2"]
        assert await store.read_logs(run.id, after=6, limit=10) == []
        assert [e.seq for e in await store.read_logs(run.id, after=0, limit=100)] == list(
            range(1, 7)
        )
        assert await store.append_logs(uuid4(), [entry("x")]) is None

    async def test_fenced_append_writes_nothing_without_the_lease(self, store: Store) -> None:
        await _queued(store, 1)
        (run,) = await store.claim("w", 1, now=T0, lease=LEASE)
        ok = await store.append_logs(run.id, [entry("mine", worker_id="w")], fence=_lease(run))
        assert ok is not None and ok[0].attempt == 1 and ok[0].worker_id == "w"
        stale = Lease(run.id, run.attempt, "stolen")
        assert await store.append_logs(run.id, [entry("late")], fence=stale) is None
        assert [e.message for e in await store.read_logs(run.id, after=1, limit=10)] == ["mine"]

    async def test_log_ids_stay_monotonic_across_writers(self, store_twins: list[Store]) -> None:
        run, _ = await store_twins[0].insert(make_run(), [])

        async def writer(i: int) -> None:
            s = store_twins[i % len(store_twins)]
            for j in range(10):
                await s.append_logs(run.id, [entry(f"{i}-{j}"), entry(f"{i}-{j}b")])

        async with anyio.create_task_group() as tg:
            for i in range(4):
                tg.start_soon(writer, i)
        logs = await store_twins[0].read_logs(run.id, after=0, limit=1000)
        assert [e.seq for e in logs] == list(range(1, 81))
        got = await store_twins[0].get(run.id)
        assert got is not None and got.log_seq == 80

    async def test_log_heads_read_many_runs_at_once(self, store: Store) -> None:
        a, _ = await store.insert(make_run(), [entry("created")])
        b, _ = await store.insert(make_run(status=Status.RUNNING), [])
        await store.append_logs(a.id, [entry("one"), entry("two")])
        await store.update(b.id, Expect(frozenset({Status.RUNNING})), {"status": Status.FAILED})
        missing = uuid4()
        heads = await store.log_heads([a.id, b.id, missing, a.id])
        assert heads == {a.id: LogHead(3, Status.PENDING), b.id: LogHead(0, Status.FAILED)}
        assert await store.log_heads([]) == {}
        # More runs than one statement should bind: backends read large sets in chunks.
        many = [(await store.insert(make_run(), [entry("x")]))[0].id for _ in range(600)]
        heads = await store.log_heads([*many, missing])
        assert set(heads) == set(many) and {h.log_seq for h in heads.values()} == {1}
