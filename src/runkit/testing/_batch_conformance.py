"""The batch-insert cases of the storage conformance suite (:meth:`Store.insert_many`):
order and seqs, entries, scopes held by stored runs and by earlier items, bad ids writing
nothing, racing batches. :class:`BatchConformance` is a base of
:class:`~runkit.testing.StoreConformance`, which provides the fixtures."""

from __future__ import annotations

import anyio
import attrs
import pytest

from ..domain.models import Run, RunQuery
from ..storage.base import Store
from ._support import entry, make_run


def _keyed(key: str) -> Run:
    return make_run(idempotency_scope=f"g:{key}", idempotency_key=key)


class BatchConformance:
    """Cases of the batched insert (the fixtures are :class:`StoreConformance`'s)."""

    async def test_insert_many_stores_each_item_in_order(self, store: Store) -> None:
        before, _ = await store.insert(make_run(), [])
        runs = [make_run(definition={"i": i}) for i in range(30)]
        answers = await store.insert_many(
            [(r, [entry(f"a{i}"), entry(f"b{i}")]) for i, r in enumerate(runs)]
        )
        assert [created for _, created in answers] == [True] * 30
        seqs = [stored.seq for stored, _ in answers]
        assert seqs == sorted(seqs) and len(set(seqs)) == 30 and seqs[0] > before.seq
        for i, (run, (stored, _)) in enumerate(zip(runs, answers, strict=True)):
            assert stored == attrs.evolve(run, seq=stored.seq, log_seq=2)
            assert await store.get(run.id) == stored
            logs = await store.read_logs(run.id, after=0, limit=10)
            assert [(e.seq, e.message) for e in logs] == [(1, f"a{i}"), (2, f"b{i}")]
        assert await store.insert_many([]) == []

    async def test_insert_many_answers_held_scopes_with_their_holder(self, store: Store) -> None:
        held, _ = await store.insert(_keyed("old"), [entry("kept")])
        first_new = _keyed("new")
        answers = await store.insert_many(
            [
                (_keyed("old"), [entry("dropped")]),
                (first_new, [entry("one")]),
                (_keyed("new"), []),
                (make_run(), []),
            ]
        )
        assert [created for _, created in answers] == [False, True, False, True]
        assert answers[0][0] == held
        assert answers[2][0].id == first_new.id  # an earlier item of the batch holds it
        _, total = await store.list(RunQuery())
        assert total == 3
        assert [e.message for e in await store.read_logs(held.id, after=0, limit=10)] == ["kept"]

    @pytest.mark.parametrize("case", ["repeat", "exists"])
    async def test_insert_many_with_a_bad_id_writes_nothing(self, store: Store, case: str) -> None:
        stored, _ = await store.insert(make_run(), [])
        fresh = make_run()
        bad = fresh if case == "repeat" else attrs.evolve(make_run(), id=stored.id)
        with pytest.raises(ValueError):
            await store.insert_many([(make_run(), [entry("x")]), (fresh, []), (bad, [])])
        _, total = await store.list(RunQuery())
        assert total == 1

    async def test_racing_batches_make_one_run_per_scope(self, store_twins: list[Store]) -> None:
        answers: list[tuple[Run, bool]] = []

        async def insert(i: int) -> None:
            s = store_twins[i % len(store_twins)]
            keys = [f"k{(i + j) % 12}" for j in range(6)]  # batches overlap, in other orders
            answers.extend(await s.insert_many([(_keyed(k), [entry(k)]) for k in keys]))

        async with anyio.create_task_group() as tg:
            for i in range(12):
                tg.start_soon(insert, i)
        holders: dict[str | None, set[object]] = {}
        for run, _ in answers:
            holders.setdefault(run.idempotency_scope, set()).add(run.id)
        assert len(holders) == 12 and all(len(ids) == 1 for ids in holders.values())
        assert sum(created for _, created in answers) == 12
        runs, total = await store_twins[0].list(RunQuery(limit=100))
        assert total == 12
        for run in runs:
            assert [
                e.message for e in await store_twins[0].read_logs(run.id, after=0, limit=5)
            ] == [run.idempotency_key]
