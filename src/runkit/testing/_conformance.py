"""The storage conformance suite: what every backend must do, checked the same way.

Subclass :class:`StoreConformance` in a test module and provide a ``store`` fixture (an
opened store on an empty database); override ``store_twins`` to return several store
instances on the *same* database, so the concurrency checks race real connections::

    class TestMyStore(StoreConformance):
        @pytest.fixture
        async def store(self):
            async with MyStore(url) as s:
                yield s

The suite runs under anyio (``pytest.mark.anyio``); define an ``anyio_backend`` fixture.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import anyio
import attrs
import pytest

from ..domain.models import Expect, Lease, Run, RunQuery, WorkerInfo
from ..domain.moves import status_entry
from ..domain.states import LEASED, Status
from ..storage.base import Store, Update
from ._batch_conformance import BatchConformance
from ._log_conformance import LogConformance
from ._support import LEASE, T0, _lease, _queued, entry, make_run


class StoreConformance(LogConformance, BatchConformance):
    """Every test here must pass for every backend."""

    pytestmark = pytest.mark.anyio

    @pytest.fixture
    def store(self) -> Store:
        raise NotImplementedError("define a `store` fixture yielding an opened, empty store")

    @pytest.fixture
    def store_twins(self, store: Store) -> list[Store]:
        """Store instances sharing ``store``'s database (override for real concurrency)."""
        return [store]

    # ---------------------------------------------------------------- insert / get -------
    async def test_insert_and_get_round_trip_every_field(self, store: Store) -> None:
        parent, _ = await store.insert(make_run(), [])
        run = make_run(
            definition={"url": "https://example.org/ü", "nested": {"list": [1, 2.5, None, True]}},
            action_id="act-1",
            idempotency_key="key-1",
            concurrency_key="deploy",
            concurrency_limit=3,
            parent_action_run_id=parent.id,
            progress={"pct": 12},
            trigger_method="ui",
            trigger_source_type="user",
            trigger_source_id="u-1",
            idempotency_scope="g:key-1",
            fingerprint="f" * 64,
            checkpoint={"at": 3},
            approvals=({"by": "u-2", "decision": "approve", "reason": None, "at": "x"},),
            not_before=T0 + timedelta(seconds=5),
            started_at=T0 + timedelta(microseconds=123456),
        )
        stored, created = await store.insert(run, [entry("created"), entry("second")])
        assert created
        assert stored.seq > parent.seq
        assert stored.log_seq == 2
        got = await store.get(run.id)
        assert got == stored
        assert attrs.evolve(got, seq=0, log_seq=0) == run
        assert got.created_at.tzinfo is not None
        assert got.started_at == T0 + timedelta(microseconds=123456)

    async def test_get_missing_is_none(self, store: Store) -> None:
        assert await store.get(uuid4()) is None

    async def test_seq_increases_in_insert_order(self, store: Store) -> None:
        runs = [(await store.insert(make_run(), []))[0] for _ in range(5)]
        seqs = [r.seq for r in runs]
        assert seqs == sorted(seqs) and len(set(seqs)) == 5

    async def test_idempotency_scope_returns_existing_and_writes_nothing(
        self, store: Store
    ) -> None:
        first, created = await store.insert(
            make_run(idempotency_scope="g:a", idempotency_key="a"), [entry("one")]
        )
        assert created
        again, created2 = await store.insert(
            make_run(idempotency_scope="g:a", idempotency_key="a"), [entry("two")]
        )
        assert not created2
        assert again.id == first.id
        _, total = await store.list(RunQuery())
        assert total == 1
        assert [e.message for e in await store.read_logs(first.id, after=0, limit=10)] == ["one"]

    async def test_concurrent_idempotent_inserts_make_one_run(
        self, store_twins: list[Store]
    ) -> None:
        results: list[tuple[Run, bool]] = []

        async def insert(i: int) -> None:
            s = store_twins[i % len(store_twins)]
            results.append(
                await s.insert(make_run(idempotency_scope="g:race", idempotency_key="race"), [])
            )

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(insert, i)
        assert sum(created for _, created in results) == 1
        assert len({run.id for run, _ in results}) == 1
        _, total = await store_twins[0].list(RunQuery())
        assert total == 1

    # ---------------------------------------------------------------- list ----------------
    async def test_list_filters_order_and_pages(self, store: Store) -> None:
        parent, _ = await store.insert(make_run(kind="parent"), [])
        made = []
        for i in range(7):
            run, _ = await store.insert(
                make_run(
                    kind="a" if i % 2 else "b",
                    action_id=f"act-{i % 3}",
                    status=Status.QUEUED if i < 3 else Status.PENDING,
                    parent_action_run_id=parent.id if i % 2 else None,
                ),
                [],
            )
            made.append(run)
        runs, total = await store.list(RunQuery(limit=3))
        assert total == 8
        assert [r.id for r in runs] == [r.id for r in reversed(made)][:3]
        page2, _ = await store.list(RunQuery(limit=3, offset=3))
        assert [r.id for r in page2] == [r.id for r in reversed(made)][3:6]
        beyond, total_beyond = await store.list(RunQuery(limit=3, offset=50))
        assert beyond == [] and total_beyond == 8

        def ids(rs: list[Run]) -> set[UUID]:
            return {r.id for r in rs}

        by_kind, n = await store.list(RunQuery(kind="a"))
        assert ids(by_kind) == {r.id for r in made if r.kind == "a"} and n == 3
        by_status, n = await store.list(RunQuery(status=Status.QUEUED))
        assert ids(by_status) == {r.id for r in made[:3]} and n == 3
        by_action, n = await store.list(RunQuery(action_id="act-1"))
        assert ids(by_action) == {r.id for r in made if r.action_id == "act-1"}
        by_parent, n = await store.list(RunQuery(parent_action_run_id=parent.id))
        assert ids(by_parent) == {r.id for r in made if r.parent_action_run_id == parent.id}
        both, n = await store.list(RunQuery(kind="a", status=Status.QUEUED))
        assert ids(both) == {r.id for r in made[:3] if r.kind == "a"} and n == len(both)

    async def test_list_by_tenant_sees_only_that_tenants_runs(self, store: Store) -> None:
        acme = [(await store.insert(make_run(tenant="acme"), []))[0] for _ in range(3)]
        other, _ = await store.insert(make_run(tenant="globex"), [])
        untenanted, _ = await store.insert(make_run(), [])
        assert (await store.get(acme[0].id)) == acme[0] and acme[0].tenant == "acme"
        runs, total = await store.list(RunQuery(tenant="acme", limit=2))
        assert [r.id for r in runs] == [acme[2].id, acme[1].id] and total == 3
        runs, total = await store.list(RunQuery(tenant="globex"))
        assert [r.id for r in runs] == [other.id] and total == 1
        everything, total = await store.list(RunQuery())
        assert total == 5 and untenanted.id in {r.id for r in everything}
        none, total = await store.list(RunQuery(tenant="initech"))
        assert none == [] and total == 0

    # ---------------------------------------------------------------- update (CAS) --------
    async def test_update_applies_changes_and_entries_when_expect_matches(
        self, store: Store
    ) -> None:
        run, _ = await store.insert(make_run(), [entry("created")])
        later = T0 + timedelta(seconds=1)
        new = await store.update(
            run.id,
            Expect(frozenset({Status.PENDING})),
            {"status": Status.QUEUED, "updated_at": later, "progress": {"a": 1}},
            [status_entry(Status.PENDING, Status.QUEUED, "execute", "u", later)],
        )
        assert new is not None
        assert new.status is Status.QUEUED and new.progress == {"a": 1}
        assert new.updated_at == later and new.log_seq == 2
        assert await store.get(run.id) == new
        logs = await store.read_logs(run.id, after=0, limit=10)
        assert [e.seq for e in logs] == [1, 2]
        assert logs[1].event == "status.changed"
        assert logs[1].data == {
            "from": "pending",
            "to": "queued",
            "reason": "execute",
            "actor": "u",
        }

    async def test_update_refuses_on_status_attempt_or_token_mismatch(self, store: Store) -> None:
        run, _ = await store.insert(
            make_run(status=Status.RUNNING, attempt=2, lease_token="tok"), []
        )
        for expect in (
            Expect(frozenset({Status.QUEUED})),
            Expect(LEASED, attempt=1, lease_token="tok"),
            Expect(LEASED, attempt=2, lease_token="other"),
        ):
            assert await store.update(run.id, expect, {"progress": {"x": 1}}, [entry("no")]) is None
        assert await store.get(run.id) == run
        assert await store.read_logs(run.id, after=0, limit=10) == []
        assert await store.update(uuid4(), Expect(frozenset(Status)), {"progress": {}}) is None
        ok = await store.update(run.id, Expect(LEASED, 2, "tok"), {"progress": {"x": 1}})
        assert ok is not None and ok.progress == {"x": 1}

    async def test_update_can_release_idempotency_scope(self, store: Store) -> None:
        run, _ = await store.insert(make_run(idempotency_scope="g:k", idempotency_key="k"), [])
        assert await store.update(run.id, Expect(frozenset(Status)), {"idempotency_scope": None})
        again, created = await store.insert(
            make_run(idempotency_scope="g:k", idempotency_key="k"), []
        )
        assert created and again.id != run.id

    async def test_concurrent_cas_has_one_winner(self, store_twins: list[Store]) -> None:
        run, _ = await store_twins[0].insert(make_run(), [])
        wins: list[Run | None] = []

        async def move(i: int) -> None:
            s = store_twins[i % len(store_twins)]
            wins.append(
                await s.update(
                    run.id,
                    Expect(frozenset({Status.PENDING})),
                    {"status": Status.QUEUED, "progress": {"by": i}},
                    [entry(f"by {i}")],
                )
            )

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(move, i)
        assert sum(w is not None for w in wins) == 1
        assert len(await store_twins[0].read_logs(run.id, after=0, limit=100)) == 1

    async def test_update_many_applies_each_item_on_its_own(self, store: Store) -> None:
        a, _ = await store.insert(make_run(), [entry("a")])
        b, _ = await store.insert(make_run(status=Status.QUEUED), [])
        c, _ = await store.insert(make_run(), [])
        pending = Expect(frozenset({Status.PENDING}))
        results = await store.update_many(
            [
                Update(a.id, pending, {"status": Status.QUEUED}, [entry("a moved")]),
                Update(b.id, pending, {"status": Status.RUNNING}, [entry("b refused")]),
                Update(uuid4(), pending, {"status": Status.QUEUED}),
                Update(c.id, pending, {"progress": {"n": 1}}, [entry("c1"), entry("c2")]),
            ]
        )
        assert [r is not None for r in results] == [True, False, False, True]
        assert results[0] is not None and results[0].status is Status.QUEUED
        assert results[3] is not None and results[3].progress == {"n": 1}
        assert await store.get(b.id) == b
        assert [e.message for e in await store.read_logs(a.id, after=0, limit=9)] == [
            "a",
            "a moved",
        ]
        assert await store.read_logs(b.id, after=0, limit=9) == []
        assert [e.seq for e in await store.read_logs(c.id, after=0, limit=9)] == [1, 2]
        assert await store.update_many([]) == []

    # ---------------------------------------------------------------- delete -------------
    async def test_delete_respects_status_and_frees_key_and_logs(self, store: Store) -> None:
        run, _ = await store.insert(
            make_run(idempotency_scope="g:d", idempotency_key="d"), [entry("x")]
        )
        assert not await store.delete(run.id, {Status.SUCCEEDED})
        assert await store.get(run.id) is not None
        assert await store.delete(run.id, {Status.PENDING})
        assert await store.get(run.id) is None
        assert await store.read_logs(run.id, after=0, limit=10) == []
        assert not await store.delete(run.id, {Status.PENDING})
        _, created = await store.insert(make_run(idempotency_scope="g:d"), [])
        assert created

    # ---------------------------------------------------------------- claim --------------
    async def test_claim_takes_oldest_due_runs_and_leases_them(self, store: Store) -> None:
        runs = await _queued(store, 4)
        await store.insert(make_run(status=Status.PENDING), [])
        claimed = await store.claim("w1", 3, now=T0, lease=LEASE)
        assert [r.id for r in claimed] == [r.id for r in runs[:3]]
        for r in claimed:
            assert r.status is Status.RUNNING and r.attempt == 1 and r.worker_id == "w1"
            assert r.lease_token and r.deadline_at == T0 + LEASE and r.started_at == T0
            assert await store.get(r.id) == r
            (log,) = await store.read_logs(r.id, after=0, limit=10)
            assert log.event == "status.changed" and log.data["to"] == "running"
            assert log.attempt == 1 and log.worker_id == "w1"
        assert len({r.lease_token for r in claimed}) == 3
        rest = await store.claim("w2", 10, now=T0, lease=LEASE)
        assert [r.id for r in rest] == [runs[3].id]
        assert await store.claim("w2", 10, now=T0, lease=LEASE) == []

    async def test_claim_honours_not_before_and_kinds(self, store: Store) -> None:
        (later,) = await _queued(store, 1, not_before=T0 + timedelta(seconds=10))
        (other,) = await _queued(store, 1, kind="other")
        (now_run,) = await _queued(store, 1)
        claimed = await store.claim("w", 10, now=T0, lease=LEASE, kinds={"noop"})
        assert [r.id for r in claimed] == [now_run.id]
        claimed = await store.claim("w", 10, now=T0 + timedelta(seconds=10), lease=LEASE)
        assert {r.id for r in claimed} == {later.id, other.id}

    async def test_claim_keeps_concurrency_limit_and_fifo_within_key(self, store: Store) -> None:
        a1, a2, _a3 = await _queued(store, 3, concurrency_key="a")
        (free,) = await _queued(store, 1)
        b1, b2, _b3 = await _queued(store, 3, concurrency_key="b", concurrency_limit=2)
        claimed = await store.claim("w", 10, now=T0, lease=LEASE)
        assert [r.id for r in claimed] == [a1.id, free.id, b1.id, b2.id]
        assert await store.claim("w", 10, now=T0, lease=LEASE) == []
        assert await store.occupancy(["a", "b", "c"]) == {"a": 1, "b": 2, "c": 0}
        done = await store.update(
            a1.id, Expect(LEASED), {"status": Status.SUCCEEDED, "lease_token": None}
        )
        assert done is not None
        claimed = await store.claim("w", 10, now=T0, lease=LEASE)
        assert [r.id for r in claimed] == [a2.id]

    async def test_delayed_run_does_not_block_its_key(self, store: Store) -> None:
        (delayed,) = await _queued(store, 1, concurrency_key="k", not_before=T0 + LEASE)
        (ready,) = await _queued(store, 1, concurrency_key="k")
        claimed = await store.claim("w", 10, now=T0, lease=LEASE)
        assert [r.id for r in claimed] == [ready.id]
        assert delayed.status is Status.QUEUED

    async def test_paused_and_parked_runs_hold_no_slot(self, store: Store) -> None:
        await store.insert(make_run(status=Status.PAUSED, concurrency_key="k"), [])
        await store.insert(make_run(status=Status.AWAITING_APPROVAL, concurrency_key="k"), [])
        (queued,) = await _queued(store, 1, concurrency_key="k")
        assert [r.id for r in await store.claim("w", 10, now=T0, lease=LEASE)] == [queued.id]

    async def test_concurrent_claimers_never_share_a_run(self, store_twins: list[Store]) -> None:
        await _queued(store_twins[0], 60)
        await _queued(store_twins[0], 20, concurrency_key="one")
        got: list[Run] = []

        async def claimer(i: int) -> None:
            s = store_twins[i % len(store_twins)]
            for _ in range(30):
                got.extend(await s.claim(f"w{i}", 3, now=T0, lease=LEASE))

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(claimer, i)
        counts = Counter(r.id for r in got)
        assert all(c == 1 for c in counts.values())
        assert len(counts) == 61  # every free run, and exactly one of key "one"
        assert sum(1 for r in got if r.concurrency_key == "one") == 1

    # ---------------------------------------------------------------- heartbeat ----------
    async def test_heartbeat_extends_held_leases_and_reports_lost_ones(self, store: Store) -> None:
        await _queued(store, 2)
        r1, r2 = await store.claim("w", 2, now=T0, lease=LEASE)
        cancelling = await store.update(r2.id, Expect(LEASED), {"status": Status.CANCELLING})
        assert cancelling is not None
        stale = Lease(r1.id, r1.attempt, "not-the-token")
        gone = Lease(uuid4(), 1, "x")
        later = T0 + timedelta(seconds=10)
        answer = await store.heartbeat([_lease(r1), _lease(r2), gone], now=later, lease=LEASE)
        assert answer == {r1.id: Status.RUNNING, r2.id: Status.CANCELLING, gone.run_id: None}
        got1 = await store.get(r1.id)
        assert got1 is not None and got1.deadline_at == later + LEASE
        lost = await store.heartbeat([stale], now=later, lease=LEASE)
        assert lost == {r1.id: None}

    # ---------------------------------------------------------------- due / occupancy ----
    async def test_due_finds_expired_deadlines_only(self, store: Store) -> None:
        a, _ = await store.insert(make_run(status=Status.RUNNING, deadline_at=T0), [])
        b, _ = await store.insert(
            make_run(status=Status.AWAITING_APPROVAL, deadline_at=T0 - LEASE), []
        )
        await store.insert(make_run(status=Status.RUNNING, deadline_at=T0 + LEASE), [])
        await store.insert(make_run(status=Status.SUCCEEDED, deadline_at=T0 - LEASE), [])
        due = await store.due(now=T0, limit=10)
        assert [r.id for r in due] == [b.id, a.id]
        assert [r.id for r in await store.due(now=T0, limit=1)] == [b.id]

    async def test_occupancy_counts_leased_statuses(self, store: Store) -> None:
        for status in (Status.RUNNING, Status.PAUSING, Status.CANCELLING, Status.QUEUED):
            await store.insert(make_run(status=status, concurrency_key="k"), [])
        await store.insert(make_run(status=Status.PAUSED, concurrency_key="k"), [])
        assert await store.occupancy(["k"]) == {"k": 3}
        assert await store.occupancy([]) == {}

    # ---------------------------------------------------------------- worker registry ----
    async def test_worker_registry_upserts_lists_live_and_expires(self, store: Store) -> None:
        def worker(wid: str, started: int, seen: int, **kw: Any) -> WorkerInfo:
            fields: dict[str, Any] = {
                "id": wid,
                "host": "h",
                "pid": 7,
                "kinds": ("a", "b"),
                "concurrency": 4,
                "started_at": T0 + timedelta(seconds=started),
                "last_seen_at": T0 + timedelta(seconds=seen),
            }
            fields.update(kw)
            return WorkerInfo(**fields)

        await store.save_worker(worker("w2", 1, 1))
        await store.save_worker(worker("w1", 0, 0))
        await store.save_worker(worker("w3", 2, 2, kinds=("c",), pid=9))
        assert [w.id for w in await store.list_workers(seen_since=T0)] == ["w1", "w2", "w3"]
        # A heartbeat replaces the whole row.
        await store.save_worker(worker("w1", 0, 60, concurrency=8))
        live = await store.list_workers(seen_since=T0 + timedelta(seconds=30))
        assert live == [worker("w1", 0, 60, concurrency=8)]
        assert (await store.list_workers(seen_since=T0))[-1] == worker(
            "w3", 2, 2, kinds=("c",), pid=9
        )
        # Expired rows and named rows go; others stay.
        gone = await store.delete_workers(seen_before=T0 + timedelta(seconds=2))
        assert gone == 1
        assert [w.id for w in await store.list_workers(seen_since=T0)] == ["w1", "w3"]
        assert await store.delete_workers(ids=["w3", "nobody"]) == 1
        assert await store.delete_workers() == 0
        assert [w.id for w in await store.list_workers(seen_since=T0)] == ["w1"]
