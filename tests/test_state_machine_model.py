"""A hypothesis model test of the state machine and the key rules (R12).

Every rule is applied to the same Runkit API over several backends in lockstep, and checked
against a small pure-Python model of what must happen: which runs a claim takes (FIFO, key
limits), which run an idempotency key names, the counters. After every step the invariants
are checked on every backend: statuses agree with the model, only table transitions appear in
the audit log, at most ``limit`` leased runs per concurrency key, one run per idempotency key,
counters never decrease, log ids are 1..n.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import anyio
import attrs
import pytest
import sqlalchemy as sa
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)
from sqlalchemy.pool import NullPool

from runkit import (
    ApprovalPolicy,
    IdempotencyConflict,
    IllegalTransition,
    Kind,
    Lease,
    LeaseLost,
    ManualClock,
    NewLogEntry,
    NewRun,
    Runkit,
    RunkitError,
    RunNotFound,
    Settings,
    Status,
)
from runkit.domain.states import LEASED, TERMINAL, TRANSITIONS, Action
from runkit.domain.waits import Wait
from runkit.storage.memory import MemoryStore
from runkit.storage.sql.store import SqlStore
from sql_fixtures import PG_URL, _with_search_path


@attrs.define
class GateConfig:
    required: int = 1


KINDS = [
    Kind("t_noop", executor=lambda ctx: None),
    Kind(
        "t_gate",
        executor=lambda ctx: None,
        config=GateConfig,
        approval=lambda cfg: ApprovalPolicy(required=cfg.required),
    ),
    Kind("t_pausable", executor=lambda ctx: None, pausable=True),
]
LEGAL_MOVES = {(s.value, t.value if t else "deleted") for (s, _), t in TRANSITIONS.items()}
LEASE = timedelta(seconds=30)


@attrs.define
class ModelRun:
    id: UUID
    kind: str
    key: str | None
    limit: int
    idem: str | None
    definition: dict[str, Any]
    status: Status
    seq: int
    attempt: int = 0
    retry_count: int = 0
    interrupt_count: int = 0
    not_before_step: int = 0
    approvals: int = 0

    def move(self, target: Status, *, requeue_until: int | None = None) -> None:
        """Apply a move the table allowed, with the side effects the model tracks."""
        if target is Status.QUEUED or requeue_until is not None:
            self.not_before_step = requeue_until or 0
        self.status = target


def _backends(pg: PgSchemas | None) -> list[Callable[[], Any]]:
    """Store makers; each call makes an empty database, since every example starts anew."""
    makers: list[Callable[[], Any]] = [MemoryStore]
    makers.append(lambda: SqlStore(f"sqlite:///{tempfile.mkdtemp()}/model.db", create_schema=True))
    if pg is not None:
        makers.append(lambda: SqlStore(pg.make(), create_schema=True))
    return makers


class PgSchemas:
    """A new PostgreSQL schema per example, dropped at that example's teardown.

    Dropping per example (not all at the end) keeps the test's teardown short: pytest-timeout
    counts fixture teardown in the test's budget, and one example's schema drops in
    milliseconds. The lock timeout turns a connection left inside a transaction (which would
    block DROP forever) into a failure that names the sessions holding locks.
    """

    def __init__(self) -> None:
        self.admin = sa.create_engine(PG_URL, poolclass=NullPool)
        self.made: list[str] = []

    def make(self) -> str:
        schema = f"rk_model_{uuid4().hex[:12]}"
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        self.made.append(schema)
        return _with_search_path(PG_URL, schema)

    def drop_made(self) -> None:
        while self.made:
            schema = self.made[-1]
            try:
                with self.admin.begin() as conn:
                    conn.exec_driver_sql("SET LOCAL lock_timeout = '30s'")
                    conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            except sa.exc.OperationalError as exc:
                raise AssertionError(f"could not drop {schema}: {exc}; {self._holders()}") from exc
            self.made.pop()

    def _holders(self) -> list[tuple[Any, ...]]:
        with self.admin.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT pid, state, left(query, 120) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return [tuple(row) for row in rows]


@pytest.fixture
def pg_schemas() -> Iterator[PgSchemas]:
    """Schemas for the PostgreSQL model test; whatever an example left is dropped at the end."""
    schemas = PgSchemas()
    try:
        yield schemas
    finally:
        schemas.drop_made()
        schemas.admin.dispose()


class RunkitMachine(RuleBasedStateMachine):
    """Set ``portal`` and ``makers`` on the class before running (see the tests below)."""

    portal: BlockingPortal
    makers: list[Callable[[], Any]]
    #: called after every example's Runkits are closed (drops that example's databases)
    cleanup: Callable[[], None]

    runs = Bundle("runs")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.rks: list[Runkit] = []
        self.opened: list[contextlib.AbstractContextManager[Runkit]] = []
        self.model: dict[UUID, ModelRun] = {}
        self.seq = 0
        self.by_idem: dict[str, UUID] = {}
        self.leases: list[dict[UUID, Lease]] = []
        self.seen_counters: dict[UUID, tuple[int, int, int]] = {}
        #: model run id -> the id each backend gave that run (each made its own uuid)
        self.aliases: dict[UUID, list[UUID]] = {}
        self.clock_steps = 0

    def call(self, fn: Callable[[Runkit], Any]) -> list[Any]:
        """Run ``fn`` on every backend; return results, or exception instances."""

        async def one(rk: Runkit) -> Any:
            try:
                return await fn(rk)
            except RunkitError as exc:
                return exc

        return [self.portal.call(one, rk) for rk in self.rks]

    def same(self, results: list[Any]) -> Any:
        kinds = [type(r) for r in results]
        assert len(set(kinds)) == 1, f"backends disagree: {results}"
        return results[0]

    @initialize()
    def open(self) -> None:
        for make in self.makers:
            rk = Runkit(
                make(),
                kinds=KINDS,
                autoload_plugins=False,
                clock=self.clock,
                settings=Settings(lease=LEASE, interrupt_budget=2),
            )
            # Entered and exited by one task on the portal's loop, as a Runkit requires.
            opened = self.portal.wrap_async_context_manager(rk)
            opened.__enter__()
            self.opened.append(opened)
            self.rks.append(rk)
            self.leases.append({})

    def teardown(self) -> None:
        for opened in self.opened:
            with contextlib.suppress(Exception):
                opened.__exit__(None, None, None)
        self.cleanup()

    # ------------------------------------------------------------------ rules ------------
    @rule(
        target=runs,
        kind=st.sampled_from(["t_noop", "t_gate", "t_pausable"]),
        idem=st.none() | st.sampled_from(["i1", "i2"]),
        key=st.none() | st.sampled_from(["k1", "k2"]),
        variant=st.integers(1, 2),
        execute=st.booleans(),
    )
    def create(
        self, kind: str, idem: str | None, key: str | None, variant: int, execute: bool
    ) -> UUID:
        definition = {"required": variant} if kind == "t_gate" else {}
        limit = 2 if key == "k2" else 1
        results = self.call(
            lambda rk: rk.create(
                kind,
                definition,
                idempotency_key=idem,
                concurrency_key=key,
                concurrency_limit=limit,
                execute=execute,
            )
        )
        return self.record(kind, idem, key, limit, definition, execute, results)

    @rule(
        target=runs,
        items=st.lists(
            st.tuples(
                st.sampled_from(["t_noop", "t_gate"]),
                st.none() | st.sampled_from(["i1", "i2", "i3"]),
                st.none() | st.sampled_from(["k1", "k2"]),
                st.integers(1, 2),
                st.booleans(),
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def create_batch(self, items: list[tuple[str, str | None, str | None, int, bool]]) -> Any:
        """``create_many``: the same answers, item by item, as creates one after another
        (a key repeated in the batch answers like a second create)."""
        batch = [
            NewRun(
                kind,
                {"required": variant} if kind == "t_gate" else {},
                idempotency_key=idem,
                concurrency_key=key,
                concurrency_limit=2 if key == "k2" else 1,
                execute=execute,
            )
            for kind, idem, key, variant, execute in items
        ]
        answers = self.call(lambda rk: rk.create_many(batch))
        ids = [
            self.record(
                item.kind,
                item.idempotency_key,
                item.concurrency_key,
                item.concurrency_limit or 1,
                dict(item.definition or {}),
                item.execute,
                [backend[j] for backend in answers],
            )
            for j, item in enumerate(batch)
        ]
        return multiple(*ids)

    def record(
        self,
        kind: str,
        idem: str | None,
        key: str | None,
        limit: int,
        definition: dict[str, Any],
        execute: bool,
        results: list[Any],
    ) -> UUID:
        """Check one create's answers from every backend against the model, and record it."""
        first = self.same(results)
        if idem is not None and idem in self.by_idem:
            existing = self.model[self.by_idem[idem]]
            same_request = existing.kind == kind and existing.definition == definition
            if same_request:
                for i, r in enumerate(results):
                    assert r.run.id == self.alias(i, existing.id) and not r.created
            else:
                assert isinstance(first, IdempotencyConflict)
                for i, r in enumerate(results):
                    assert r.existing_run_id == self.alias(i, existing.id)
            return existing.id
        assert all(r.created for r in results)
        ids = [r.run.id for r in results]
        # Each backend made its own run (own uuid); map them all to the first one's id.
        self.seq += 1
        run = ModelRun(
            ids[0],
            kind,
            key,
            limit,
            idem,
            definition,
            Status.QUEUED if execute else Status.PENDING,
            self.seq,
        )
        self.model[run.id] = run
        self.aliases[run.id] = ids
        if idem is not None:
            self.by_idem[idem] = run.id
        return run.id

    def alias(self, i: int, run_id: UUID) -> UUID:
        return self.aliases[run_id][i]

    def act(self, run_id: UUID, name: str, **kw: Any) -> list[Any]:
        ids = self.aliases[run_id]
        out = []
        for i, rk in enumerate(self.rks):

            async def go(rk: Runkit = rk, rid: UUID = ids[i]) -> Any:
                try:
                    return await getattr(rk, name)(rid, **kw)
                except RunkitError as exc:
                    return exc

            out.append(self.portal.call(go))
        return out

    def expect_move(self, run_id: UUID, action: str, results: list[Any]) -> None:
        model = self.model[run_id]
        target = TRANSITIONS.get((model.status, Action(action)), "illegal")
        if target == "illegal":
            assert all(isinstance(r, IllegalTransition) for r in results), results
            return
        assert not any(isinstance(r, Exception) for r in results), results
        if action == "delete":
            del self.model[run_id]
            if model.idem is not None:
                self.by_idem.pop(model.idem, None)
            return
        assert isinstance(target, Status)
        for r in results:
            assert r.status is target, (model.status, action, r.status)
        if action == "retry":
            model.retry_count += 1
            model.approvals = 0
        model.move(target)

    @rule(run=runs, action=st.sampled_from(["execute", "resume", "retry", "delete"]))
    def simple_action(self, run: UUID, action: str) -> None:
        if run not in self.model:
            assert all(isinstance(r, RunNotFound) for r in self.act(run, "get"))
            return
        self.expect_move(run, action, self.act(run, action))
        if run not in self.model:  # deleted
            for i, leases in enumerate(self.leases):
                leases.pop(self.alias(i, run), None)

    @rule(run=runs)
    def cancel(self, run: UUID) -> None:
        if run not in self.model:
            return
        self.expect_move(run, "cancel", self.act(run, "cancel"))

    @rule(run=runs)
    def pause(self, run: UUID) -> None:
        if run not in self.model:
            return
        model = self.model[run]
        results = self.act(run, "pause")
        if model.status is Status.RUNNING and model.kind != "t_pausable":
            assert all(isinstance(r, IllegalTransition) for r in results)
            return
        self.expect_move(run, "pause", results)

    @rule(run=runs, decision=st.sampled_from(["approve", "reject"]))
    def decide(self, run: UUID, decision: str) -> None:
        if run not in self.model:
            return
        model = self.model[run]
        results = self.act(run, decision)
        if model.kind != "t_gate" or model.status is not Status.AWAITING_APPROVAL:
            assert all(isinstance(r, IllegalTransition) for r in results), results
            return
        if decision == "reject":
            self.expect_move(run, decision, results)
            return
        # No principal: runkit itself decides, and each call counts as one approval.
        model.approvals += 1
        done = model.approvals >= model.definition["required"]
        target = Status.SUCCEEDED if done else Status.AWAITING_APPROVAL
        assert all(r.status is target for r in results), (results, target)
        model.move(target)

    @rule(n=st.integers(1, 4))
    def claim(self, n: int) -> None:
        expected = self.model_claim(n)
        results = self.call(lambda rk: rk.ops.claim("w", n))
        for i, claimed in enumerate(results):
            assert not isinstance(claimed, Exception)
            got = [self.unalias(i, r.id) for r in claimed]
            assert got == expected, (i, got, expected)
            for r in claimed:
                assert r.lease_token is not None
                self.leases[i][r.id] = Lease(r.id, r.attempt, r.lease_token)
        for rid in expected:
            m = self.model[rid]
            m.move(Status.RUNNING)
            m.attempt += 1

    def unalias(self, i: int, backend_id: UUID) -> UUID:
        for rid, ids in self.aliases.items():
            if ids[i] == backend_id:
                return rid
        raise AssertionError(backend_id)

    def model_claim(self, n: int) -> list[UUID]:
        held: dict[str, int] = {}
        for m in self.model.values():
            if m.key and m.status in LEASED:
                held[m.key] = held.get(m.key, 0) + 1
        blocked: set[str] = set()
        out: list[UUID] = []
        for m in sorted(self.model.values(), key=lambda m: m.seq):
            if len(out) >= n:
                break
            if m.status is not Status.QUEUED or m.not_before_step > self.clock_steps:
                continue
            if m.key is not None:
                if m.key in blocked or held.get(m.key, 0) >= m.limit:
                    blocked.add(m.key)
                    continue
                held[m.key] = held.get(m.key, 0) + 1
            out.append(m.id)
        return out

    def leased(self) -> list[UUID]:
        return [rid for rid, m in self.model.items() if m.status in LEASED]

    def report(self, run: UUID, fn: Callable[[Runkit, Lease], Any]) -> list[Any]:
        out = []
        for i, rk in enumerate(self.rks):
            lease = self.leases[i][self.alias(i, run)]

            async def go(rk: Runkit = rk, lease: Lease = lease) -> Any:
                try:
                    return await fn(rk, lease)
                except (RunkitError, LeaseLost) as exc:
                    return exc

            out.append(self.portal.call(go))
        return out

    @precondition(lambda self: self.leased())
    @rule(
        data=st.data(),
        outcome=st.sampled_from(["complete", "fail", "requeue", "park", "stopped", "wait", "log"]),
    )
    def worker_reports(self, data: st.DataObject, outcome: str) -> None:
        # Sort by creation order, not by uuid: draws must not depend on random ids.
        run = data.draw(st.sampled_from(sorted(self.leased(), key=lambda r: self.model[r].seq)))
        model = self.model[run]
        if outcome == "log":
            results = self.report(
                run, lambda rk, lease: rk.ops.append_logs(lease, [NewLogEntry("hello")])
            )
            assert all(isinstance(r, list) and len(r) == 1 for r in results)
            return
        if outcome == "park" and model.kind != "t_gate":
            outcome = "complete"
        fns: dict[str, Callable[[Runkit, Lease], Any]] = {
            "complete": lambda rk, lease: rk.ops.complete(lease, {"ok": True}),
            "fail": lambda rk, lease: rk.ops.fail(lease, {"message": "boom"}),
            "requeue": lambda rk, lease: rk.ops.fail(
                lease, {"message": "again"}, retry_at=self.clock.now() + timedelta(seconds=5)
            ),
            "park": lambda rk, lease: rk.ops.park(lease, timeout=None),
            "stopped": lambda rk, lease: rk.ops.stopped(lease),
            # A durable sleep: waiting until the clock passes it (the rescuer wakes it).
            "wait": lambda rk, lease: rk.ops.suspend(
                lease, Wait(until=self.clock.now() + timedelta(seconds=5))
            ),
        }
        action = {
            "complete": Action.COMPLETE,
            "fail": Action.FAIL,
            "requeue": Action.REQUEUE,
            "park": Action.PARK,
            "stopped": Action.STOPPED,
            "wait": Action.WAIT,
        }[outcome]
        results = self.report(run, fns[outcome])
        target = TRANSITIONS.get((model.status, action), "illegal")
        if target == "illegal":
            assert all(isinstance(r, IllegalTransition) for r in results), results
            return
        for r in results:
            assert not isinstance(r, Exception), r
            assert r.status is target
        assert isinstance(target, Status)
        if outcome == "requeue":
            model.retry_count += 1
            model.move(target, requeue_until=self.clock_steps + 1)
        else:
            model.move(target)

    @rule()
    def advance_clock_and_rescue(self) -> None:
        """Every lease expires (the workers died); the rescuer interrupts or crashes them."""
        self.clock.advance(LEASE + timedelta(seconds=6))
        self.clock_steps += 1
        results = self.call(lambda rk: rk.ops.rescue())
        expected_moves = 0
        for m in self.model.values():
            if m.status is Status.WAITING:  # its time has come
                expected_moves += 1
                m.move(Status.QUEUED)
                continue
            if m.status not in LEASED:
                continue
            expected_moves += 1
            spent = m.interrupt_count + 1 > 2
            action = Action.CRASH if spent and m.status is Status.RUNNING else Action.INTERRUPT
            target = TRANSITIONS[(m.status, action)]
            assert target is not None
            m.move(target)
            m.interrupt_count += 1
        assert all(r == expected_moves for r in results), (results, expected_moves)

    # ------------------------------------------------------------------ invariants -------
    @invariant()
    def backends_agree_with_model(self) -> None:
        if not self.rks:
            return
        for rid, m in self.model.items():
            for i, rk in enumerate(self.rks):
                run = self.portal.call(rk.get, self.alias(i, rid))
                assert run.status is m.status, (i, run.status, m.status)
                assert (run.attempt, run.retry_count, run.interrupt_count) == (
                    m.attempt,
                    m.retry_count,
                    m.interrupt_count,
                )
                before = self.seen_counters.get(run.id, (0, 0, 0))
                now = (run.attempt, run.retry_count, run.interrupt_count)
                assert all(a >= b for a, b in zip(now, before, strict=True))
                self.seen_counters[run.id] = now
                if run.status in TERMINAL:
                    assert run.completed_at is not None and run.lease_token is None

    @invariant()
    def keys_and_logs_hold(self) -> None:
        for rk in self.rks:
            page = self.portal.call(lambda rk=rk: rk.list(limit=100))
            held: dict[str, int] = {}
            idem: dict[str, int] = {}
            for run in page.runs:
                if run.concurrency_key and run.status in LEASED:
                    held[run.concurrency_key] = held.get(run.concurrency_key, 0) + 1
                    assert held[run.concurrency_key] <= run.concurrency_limit
                if run.idempotency_key:
                    idem[run.idempotency_key] = idem.get(run.idempotency_key, 0) + 1
                entries = self.portal.call(_all_entries, rk, run.id)
                assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
                for e in entries:
                    if e.event == "status.changed" and e.data["from"] is not None:
                        assert (e.data["from"], e.data["to"]) in LEGAL_MOVES, e.data
            assert all(n == 1 for n in idem.values()), idem


@contextlib.contextmanager
def _machine(
    makers: list[Callable[[], Any]], cleanup: Callable[[], None] = lambda: None
) -> Iterator[type[RunkitMachine]]:
    with start_blocking_portal("asyncio") as portal:
        attrs_ = {"portal": portal, "makers": makers, "cleanup": staticmethod(cleanup)}
        machine = type("Machine", (RunkitMachine,), attrs_)
        yield machine


def test_state_machine_memory_and_sqlite() -> None:
    with _machine(_backends(None)) as machine:
        machine.TestCase().runTest()


@pytest.mark.slow
# 60 examples on three backends take 100-130 s on a quiet machine; the suite's 300 s left
# too little room under CI load (it once ran out while dropping the examples' schemas).
@pytest.mark.timeout(600)
def test_state_machine_against_postgres(pg_schemas: PgSchemas) -> None:
    with _machine(_backends(pg_schemas), pg_schemas.drop_made) as machine:
        machine.TestCase().runTest()


def test_anyio_backends_are_both_supported() -> None:
    """The core runs under trio as well as asyncio (anyio everywhere, no asyncio-only API)."""

    async def scenario() -> Status:
        async with Runkit("memory://", kinds=KINDS, autoload_plugins=False) as rk:
            await rk.create("t_noop", execute=True)
            (claimed,) = await rk.ops.claim("w", 1)
            assert claimed.lease_token
            lease = Lease(claimed.id, claimed.attempt, claimed.lease_token)
            return (await rk.ops.complete(lease, {})).status

    assert anyio.run(scenario, backend="trio") is Status.SUCCEEDED
    assert anyio.run(scenario, backend="asyncio") is Status.SUCCEEDED


async def _all_entries(rk: Runkit, run_id: Any) -> list[Any]:
    return [entry async for entry in rk.iter_logs(run_id)]
