"""The core's rules through the in-process API, on the reference (memory) store."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import anyio
import attrs
import pytest
from hypothesis import given

import runkit
from runkit import (
    ApprovalPolicy,
    IdempotencyConflict,
    IdempotencyPolicy,
    IllegalTransition,
    Kind,
    Lease,
    LeaseLost,
    ManualClock,
    NewLogEntry,
    NotAllowed,
    Principal,
    Runkit,
    RunNotFound,
    Settings,
    Status,
    SyncRunkit,
    ValidationError,
)
from runkit.domain.states import (
    CLIENT_ACTIONS,
    TRANSITIONS,
    allowed_actions,
    markdown_table,
    mermaid,
)
from runkit.testing import runs
from runkit_contrib._wire import public_part, run_from_wire, run_to_wire

pytestmark = pytest.mark.anyio


@attrs.frozen
class SleepConfig:
    seconds: float
    interval_seconds: float = 0.0
    tags: list[str] = attrs.field(factory=list)


@attrs.frozen
class GateConfig:
    required: int = 1
    approvers: list[str] = attrs.field(factory=list)
    allow_self: bool = False


def gate_policy(cfg: GateConfig) -> ApprovalPolicy:
    return ApprovalPolicy(
        required=cfg.required,
        approvers=frozenset(cfg.approvers),
        allow_self_approval=cfg.allow_self,
        timeout_seconds=60,
        on_timeout="reject",
    )


KINDS = [
    Kind("t_noop", executor=lambda ctx: None),
    Kind("t_sleep", executor=lambda ctx: None, config=SleepConfig, pausable=True),
    Kind("t_gate", executor=lambda ctx: None, config=GateConfig, approval=gate_policy),
]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    """The service tests run on every built-in backend."""
    if request.param == "memory":
        return "memory://"
    value: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return value


@pytest.fixture
async def rk(clock: ManualClock, url: str) -> AsyncIterator[Runkit]:
    settings = Settings(lease=timedelta(seconds=10), interrupt_budget=1)
    async with Runkit(
        url, kinds=KINDS, autoload_plugins=False, clock=clock, settings=settings
    ) as rk:
        yield rk


async def _count(rk: Runkit) -> int:
    return (await rk.list()).total


async def _claim_one(rk: Runkit) -> Lease:
    (run,) = await rk.ops.claim("w", 1)
    assert run.lease_token is not None
    return Lease(run.id, run.attempt, run.lease_token)


# ------------------------------------------------------------------ bad input -------------
@pytest.mark.parametrize(
    ("call", "loc"),
    [
        (lambda rk: rk.create("no_such_kind"), ("kind",)),
        (lambda rk: rk.create("t_sleep", {"seconds": "soon"}), ("definition", "seconds")),
        (lambda rk: rk.create("t_sleep", {}), ("definition", "seconds")),
        (
            lambda rk: rk.create("t_sleep", {"seconds": 1, "bogus": 2}),
            ("definition", "bogus"),
        ),
        (
            lambda rk: rk.create("t_sleep", {"seconds": 1, "tags": [1]}),
            ("definition", "tags", 0),
        ),
        (lambda rk: rk.create("t_noop", ["not", "an", "object"]), ("definition",)),
        (lambda rk: rk.create("t_noop", idempotency_key=""), ("idempotency_key",)),
        (lambda rk: rk.create("t_noop", idempotency_key="x" * 256), ("idempotency_key",)),
        (lambda rk: rk.create("t_noop", concurrency_key=5), ("concurrency_key",)),
        (
            lambda rk: rk.create("t_noop", parent_action_run_id="nope"),
            ("parent_action_run_id",),
        ),
        (
            lambda rk: rk.create("t_noop", parent_action_run_id=uuid4()),
            ("parent_action_run_id",),
        ),
        (
            lambda rk: rk.create("t_noop", concurrency_key="k", concurrency_limit=0),
            ("concurrency_limit",),
        ),
        (lambda rk: rk.get("not-a-uuid"), ("run_id",)),
        (lambda rk: rk.list(limit=0), ("limit",)),
        (lambda rk: rk.list(limit=101), ("limit",)),
        (lambda rk: rk.list(offset=-1), ("offset",)),
        (lambda rk: rk.list(status="sleeping"), ("status",)),
        (lambda rk: rk.list(parent_action_run_id="x"), ("parent_action_run_id",)),
        (lambda rk: rk.logs(uuid4(), limit=0), ("limit",)),
        (lambda rk: rk.logs(uuid4(), limit=501), ("limit",)),
        (lambda rk: rk.logs(uuid4(), after="garbage"), ("after",)),
    ],
)
async def test_bad_input_is_a_typed_error_and_writes_nothing(
    rk: Runkit, call: Any, loc: tuple[Any, ...]
) -> None:
    before = await _count(rk)
    with pytest.raises(ValidationError) as info:
        await call(rk)
    assert info.value.details[0].loc == loc, info.value.details
    assert await _count(rk) == before


async def test_unknown_kind_lists_known_kinds(rk: Runkit) -> None:
    with pytest.raises(
        ValidationError,
        match="known kinds: agent_fetch_page, agent_search, approval_gate, call_agent, "
        "call_automation, conditional_branch, create_flashboard, dlt_extract, "
        "duckdb_transform, explain_schema, fetch_page, file_sync, generate_query, "
        "http_request, t_gate, t_noop, t_sleep, web_search",
    ):
        await rk.create("no_such_kind")


async def test_cursor_from_another_run_is_refused(rk: Runkit) -> None:
    a = (await rk.create("t_noop")).run
    b = (await rk.create("t_noop")).run
    page = await rk.logs(a.id)
    assert page.next_cursor is not None
    with pytest.raises(ValidationError, match="another run") as info:
        await rk.logs(b.id, after=page.next_cursor)
    assert info.value.details[0].loc == ("after",)


async def test_unknown_run_is_not_found(rk: Runkit) -> None:
    for action in ("get", "execute", "pause", "resume", "cancel", "retry", "delete", "logs"):
        with pytest.raises(RunNotFound):
            await getattr(rk, action)(uuid4())


async def test_illegal_transition_names_run_status_action_and_allowed(rk: Runkit) -> None:
    run = (await rk.create("t_noop")).run
    with pytest.raises(IllegalTransition) as info:
        await rk.resume(run.id)
    err = info.value
    assert err.run_id == run.id and err.status is Status.PENDING
    assert str(run.id) in str(err) and "pending" in str(err) and "resume" in str(err)
    assert "execute, cancel, delete" in str(err)
    assert (await rk.get(run.id)).status is Status.PENDING


# ------------------------------------------------------------------ idempotency -----------
async def test_idempotent_create_replays_and_conflicts(rk: Runkit) -> None:
    first = await rk.create("t_sleep", {"seconds": 1}, idempotency_key="k")
    again = await rk.create("t_sleep", {"seconds": 1}, idempotency_key="k")
    assert first.created and again.replayed and again.run.id == first.run.id
    with pytest.raises(IdempotencyConflict) as info:
        await rk.create("t_sleep", {"seconds": 2}, idempotency_key="k")
    assert info.value.existing_run_id == first.run.id
    assert info.value.details[0].loc == ("idempotency_key",)
    assert await _count(rk) == 1


async def test_idempotency_scope_is_per_principal_by_default(rk: Runkit) -> None:
    alice, bob = Principal("alice"), Principal("bob", kind="api_key")
    a = await rk.create("t_noop", idempotency_key="k", principal=alice)
    b = await rk.create("t_noop", idempotency_key="k", principal=bob)
    assert a.created and b.created and a.run.id != b.run.id
    assert b.run.trigger_method == "api" and a.run.trigger_method == "ui"
    assert a.run.trigger_source_type == "user" and a.run.trigger_source_id == "alice"


async def test_idempotency_key_expires_and_delete_frees_it(rk: Runkit, clock: ManualClock) -> None:
    first = await rk.create("t_noop", idempotency_key="k")
    clock.advance(hours=24, seconds=1)
    second = await rk.create("t_noop", idempotency_key="k")
    assert second.created and second.run.id != first.run.id
    await rk.delete(second.run.id)
    third = await rk.create("t_noop", idempotency_key="k")
    assert third.created


async def test_global_scope_collides_across_principals(clock: ManualClock) -> None:
    policy = IdempotencyPolicy(scope="global", ttl=None)
    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False, idempotency=policy) as rk:
        a = await rk.create("t_noop", idempotency_key="k", principal=Principal("a"))
        b = await rk.create("t_noop", idempotency_key="k", principal=Principal("b"))
        assert b.replayed and b.run.id == a.run.id


async def test_fifty_concurrent_identical_creates_make_one_run(rk: Runkit) -> None:
    results: list[runkit.Created] = []

    async def create() -> None:
        results.append(await rk.create("t_noop", {"a": 1}, idempotency_key="same"))

    async with anyio.create_task_group() as tg:
        for _ in range(50):
            tg.start_soon(create)
    assert sum(r.created for r in results) == 1
    assert len({r.run.id for r in results}) == 1


# ------------------------------------------------------------------ concurrency keys ------
async def test_queued_run_explains_what_it_waits_for(rk: Runkit) -> None:
    a = (await rk.create("t_noop", concurrency_key="deploy", execute=True)).run
    b = (await rk.create("t_noop", concurrency_key="deploy", execute=True)).run
    text = await rk.display_status(await rk.get(b.id))
    assert text == "Queued · no worker serves kind 't_noop'"
    now = rk.clock.now()
    other = runkit.WorkerInfo("w0", "h", 1, ("t_other",), 1, now, now)
    await rk.ops.register_worker(other)
    assert await rk.display_status(await rk.get(b.id)) == text
    await rk.ops.register_worker(attrs.evolve(other, id="w1", kinds=("t_noop", "t_other")))
    assert await rk.display_status(await rk.get(b.id)) == "Queued · waiting for a worker"
    (claimed,) = await rk.ops.claim("w", 5)
    assert claimed.id == a.id
    text = await rk.display_status(await rk.get(b.id))
    assert text == "Queued · waiting for concurrency key deploy (1/1 running)"
    assert await rk.display_statuses([await rk.get(b.id)]) == [text]


async def test_a_worker_registers_renews_and_expires(rk: Runkit, clock: ManualClock) -> None:
    now = clock.now()
    await rk.ops.register_worker(runkit.WorkerInfo("w1", "h", 1, ("t_noop",), 2, now, now))
    assert [w.id for w in await rk.workers()] == ["w1"]
    clock.advance(rk.settings.lease + timedelta(seconds=1))
    assert await rk.workers() == []  # not heard from within a lease: not live
    await rk.ops.rescue()
    assert await rk.store.list_workers(seen_since=now - timedelta(days=1)) == []


async def test_overdue_lease_is_said_instead_of_running(rk: Runkit, clock: ManualClock) -> None:
    run = (await rk.create("t_noop", execute=True)).run
    await _claim_one(rk)
    assert (await rk.display_status(await rk.get(run.id))).startswith("Running")
    clock.advance(rk.settings.lease + timedelta(seconds=5))
    text = await rk.display_status(await rk.get(run.id))
    assert text == (
        "Running · worker w stopped reporting (lease expired 5 s ago); the run will be taken over"
    )


async def test_concurrency_limit_from_settings(clock: ManualClock) -> None:
    settings = Settings(concurrency_limits={"wide": 2})
    async with Runkit("memory://", kinds=KINDS, autoload_plugins=False, settings=settings) as rk:
        for _ in range(3):
            await rk.create("t_noop", concurrency_key="wide", execute=True)
        assert len(await rk.ops.claim("w", 10)) == 2


# ------------------------------------------------------------------ worker reports -------
async def test_lifecycle_with_logs_progress_and_audit(rk: Runkit) -> None:
    run = (await rk.create("t_noop", execute=True)).run
    lease = await _claim_one(rk)
    await rk.ops.set_progress(lease, {"message": "half way"}, checkpoint={"step": 1})
    assert await rk.display_status(await rk.get(run.id)) == "Running · half way"
    await rk.ops.append_logs(lease, [NewLogEntry("working", data={"i": 1}, worker_id="w")])
    done = await rk.ops.complete(lease, {"answer": 42})
    assert done.status is Status.SUCCEEDED and done.result == {"answer": 42}
    assert done.completed_at is not None and done.lease_token is None
    page = await rk.logs(run.id)
    events = [(e.event, e.data.get("to")) for e in page.entries]
    assert events == [
        ("status.changed", "pending"),
        ("status.changed", "queued"),
        ("status.changed", "running"),
        (None, None),
        ("status.changed", "succeeded"),
    ]
    assert [e.attempt for e in page.entries] == [0, 0, 1, 1, 1]
    assert not page.has_more and page.next_cursor == page.entries[-1].cursor
    with pytest.raises(LeaseLost):
        await rk.ops.append_logs(lease, [NewLogEntry("late")])


async def test_late_worker_cannot_overwrite_a_cancelled_run(rk: Runkit) -> None:
    run = (await rk.create("t_noop", execute=True)).run
    lease = await _claim_one(rk)
    assert (await rk.cancel(run.id)).status is Status.CANCELLING
    assert (await rk.ops.stopped(lease)).status is Status.CANCELLED
    with pytest.raises(LeaseLost):
        await rk.ops.complete(lease, {"late": True})
    final = await rk.get(run.id)
    assert final.status is Status.CANCELLED and final.result is None


async def test_rescuer_interrupts_then_crashes(rk: Runkit, clock: ManualClock) -> None:
    run = (await rk.create("t_noop", execute=True)).run
    stale = await _claim_one(rk)
    clock.advance(seconds=11)
    assert await rk.ops.rescue() == 1
    again = await rk.get(run.id)
    assert again.status is Status.QUEUED and again.interrupt_count == 1
    with pytest.raises(LeaseLost):
        await rk.ops.complete(stale, {})
    await _claim_one(rk)
    clock.advance(seconds=11)
    assert await rk.ops.rescue() == 1
    crashed = await rk.get(run.id)
    assert crashed.status is Status.FAILED and crashed.status_reason == "crashed"
    assert crashed.interrupt_count == 2
    assert await rk.display_status(crashed) == "Failed: worker lost 2 times (crashed)"


async def test_heartbeat_keeps_a_live_run_from_rescue(rk: Runkit, clock: ManualClock) -> None:
    await rk.create("t_noop", execute=True)
    lease = await _claim_one(rk)
    for _ in range(5):
        clock.advance(seconds=6)
        assert await rk.ops.heartbeat([lease]) == {lease.run_id: Status.RUNNING}
        assert await rk.ops.rescue() == 0


async def test_retryable_failure_requeues_after_backoff(rk: Runkit, clock: ManualClock) -> None:
    run = (await rk.create("t_noop", execute=True)).run
    lease = await _claim_one(rk)
    retry_at = clock.now() + timedelta(seconds=5)
    requeued = await rk.ops.fail(lease, {"message": "flaky"}, retry_at=retry_at)
    assert requeued.status is Status.QUEUED and requeued.retry_count == 1
    assert await rk.ops.claim("w", 1) == []
    assert (await rk.display_status(requeued)).startswith("Queued · retrying at")
    clock.advance(seconds=5)
    lease2 = await _claim_one(rk)
    assert lease2.attempt == 2
    failed = await rk.ops.fail(lease2, {"message": "still broken\nstack..."})
    assert failed.status is Status.FAILED
    assert await rk.display_status(failed) == "Failed: still broken"
    retried = await rk.retry(run.id)
    assert retried.status is Status.QUEUED and retried.retry_count == 2 and retried.error is None


async def test_pause_and_resume(rk: Runkit) -> None:
    noop = (await rk.create("t_noop", execute=True)).run
    sleeper = (await rk.create("t_sleep", {"seconds": 9}, execute=True)).run
    leases = {r.id: Lease(r.id, r.attempt, r.lease_token or "") for r in await rk.ops.claim("w", 2)}
    with pytest.raises(IllegalTransition):
        await rk.pause(noop.id)  # t_noop is not pausable while running
    assert (await rk.pause(sleeper.id)).status is Status.PAUSING
    await rk.ops.set_progress(leases[sleeper.id], {}, checkpoint={"elapsed": 3})
    assert (await rk.ops.stopped(leases[sleeper.id])).status is Status.PAUSED
    resumed = await rk.resume(sleeper.id)
    assert resumed.status is Status.QUEUED and resumed.checkpoint == {"elapsed": 3}


async def test_cancel_cascades_to_children(rk: Runkit) -> None:
    parent = (await rk.create("t_noop")).run
    child = (await rk.create("t_noop", parent_action_run_id=parent.id, execute=True)).run
    grandchild = (await rk.create("t_noop", parent_action_run_id=child.id)).run
    await rk.cancel(parent.id)
    for rid in (child.id, grandchild.id):
        got = await rk.get(rid)
        assert got.status is Status.CANCELLED and got.status_reason == "parent_cancelled"


# ------------------------------------------------------------------ approvals -------------
async def _parked(rk: Runkit, definition: dict[str, Any], creator: Principal | None = None) -> Any:
    run = (await rk.create("t_gate", definition, execute=True, principal=creator)).run
    lease = await _claim_one(rk)
    parked = await rk.ops.park(lease, timeout=timedelta(seconds=60))
    assert parked.status is Status.AWAITING_APPROVAL and parked.lease_token is None
    return run


async def test_two_approvals_needed(rk: Runkit) -> None:
    run = await _parked(rk, {"required": 2, "approvers": ["ann", "bo"]})
    with pytest.raises(NotAllowed):
        await rk.approve(run.id, principal=Principal("eve"))
    partial = await rk.approve(run.id, principal=Principal("ann"), reason="ok")
    assert partial.status is Status.AWAITING_APPROVAL
    assert await rk.display_status(partial) == "Awaiting approval · 1 of 2"
    with pytest.raises(NotAllowed):
        await rk.approve(run.id, principal=Principal("ann"))
    done = await rk.approve(run.id, principal=Principal("bo"))
    assert done.status is Status.SUCCEEDED
    assert [d["by"] for d in done.approvals] == ["ann", "bo"]


async def test_creator_may_not_approve_own_run_and_reject_stores_reason(rk: Runkit) -> None:
    creator = Principal("carol")
    run = await _parked(rk, {}, creator=creator)
    with pytest.raises(NotAllowed):
        await rk.approve(run.id, principal=creator)
    rejected = await rk.reject(run.id, principal=Principal("dan"), reason="not today")
    assert rejected.status is Status.REJECTED
    assert rejected.approvals[-1]["reason"] == "not today"
    assert await rk.display_status(rejected) == "Rejected: not today"


async def test_approval_times_out_per_policy(rk: Runkit, clock: ManualClock) -> None:
    run = await _parked(rk, {})
    clock.advance(seconds=61)
    assert await rk.ops.rescue() == 1
    timed_out = await rk.get(run.id)
    assert timed_out.status is Status.REJECTED and timed_out.status_reason == "approval_timeout"


async def test_approving_other_kinds_is_illegal(rk: Runkit) -> None:
    run = (await rk.create("t_noop")).run
    with pytest.raises(IllegalTransition):
        await rk.approve(run.id)


# ------------------------------------------------------------------ list, users -----------
async def test_list_users_map_from_hook() -> None:
    class Directory:
        @runkit.hookimpl
        def runkit_resolve_users(self, user_ids: list[str]) -> dict[str, runkit.UserProfile]:
            return {u: runkit.UserProfile(u, first_name=u.title()) for u in user_ids}

    async with Runkit(
        "memory://", kinds=KINDS, plugins=[Directory()], autoload_plugins=False
    ) as rk:
        await rk.create("t_noop", principal=Principal("ann"))
        await rk.create("t_noop", principal=Principal("key-1", kind="api_key"))
        page = await rk.list()
        assert dict(page.users) == {"ann": runkit.UserProfile("ann", first_name="Ann")}
        assert page.total == 2 and not page.has_next


async def test_list_without_user_hook_has_empty_users(rk: Runkit) -> None:
    await rk.create("t_noop", principal=Principal("ann"))
    assert (await rk.list()).users == {}


# ------------------------------------------------------------------ wire format -----------
@given(runs())
def test_wire_round_trip(run: runkit.Run) -> None:
    wire = run_to_wire(run, "Pending", run.definition)
    assert run_from_wire(wire) == public_part(run)
    for key in ("createdAt", "updatedAt", "startedAt", "completedAt"):
        assert wire[key] is None or wire[key].endswith("Z")
    assert set(wire) >= {
        "id", "actionId", "kind", "status", "displayStatus", "definition", "idempotencyKey",
        "concurrencyKey", "parentActionRunId", "progress", "result", "error", "retryCount",
        "interruptCount", "triggerMethod", "triggerSourceType", "triggerSourceId",
        "createdAt", "startedAt", "completedAt", "updatedAt", "durationSeconds",
    }  # fmt: skip
    assert "leaseToken" not in wire and "fingerprint" not in wire


# ------------------------------------------------------------------ the table ------------
def test_table_docs_are_generated_from_the_table() -> None:
    table = markdown_table()
    assert table.count("\n") == len(TRANSITIONS) + 1
    assert "stateDiagram-v2" in mermaid()
    with open("docs/state-machine.md", encoding="utf-8") as fh:
        doc = fh.read()
    assert table in doc and mermaid() in doc, "regenerate: python -m runkit.states > docs"


def test_terminal_states_only_leave_by_retry_or_delete() -> None:
    for status in Status:
        if status.terminal:
            assert set(allowed_actions(status)) <= {runkit.Action.RETRY, runkit.Action.DELETE}


def test_public_api_is_pinned() -> None:
    public = {
        name
        for name in dir(runkit)
        if not name.startswith("_") and not inspect.ismodule(getattr(runkit, name))
    }
    assert sorted(runkit.__all__) == sorted(public)
    assert set(runkit.__all__) == set(PUBLIC_API)


#: The public surface; changing it is an API change (update the changelog).
PUBLIC_API = [
    "SYSTEM",
    "TRANSITIONS",
    "Action",
    "ApprovalPolicy",
    "Clock",
    "ConfigurationError",
    "Created",
    "NewRun",
    "Cursor",
    "ErrorDetail",
    "Expect",
    "Fatal",
    "IdempotencyConflict",
    "IdempotencyPolicy",
    "IllegalTransition",
    "Kind",
    "KindChecks",
    "KindRegistry",
    "Lease",
    "LeaseLost",
    "LogEntry",
    "LogPage",
    "ManualClock",
    "NewLogEntry",
    "NotAllowed",
    "ParkForApproval",
    "Principal",
    "Retryable",
    "RetryPolicy",
    "Run",
    "RunContext",
    "RunNotFound",
    "RunPage",
    "RunQuery",
    "Runkit",
    "RunkitError",
    "Settings",
    "Status",
    "StorageUnavailable",
    "SyncRunContext",
    "SyncRunkit",
    "SystemClock",
    "UserProfile",
    "ValidationError",
    "Worker",
    "WorkerInfo",
    "camel",
    "config_schema",
    "embedded_workers",
    "hookimpl",
    "run_workers",
]


def test_sync_facade() -> None:
    with SyncRunkit(lambda: Runkit("memory://", kinds=KINDS, autoload_plugins=False)) as rk:
        created = rk.create("t_noop", execute=True)
        assert rk.get(created.run.id).status is Status.QUEUED
        assert rk.list().total == 1
        with pytest.raises(IllegalTransition):
            rk.execute(created.run.id)


def test_illegal_moves_offer_only_what_a_client_can_do() -> None:
    engine_steps = {a.value for a in runkit.Action} - {a.value for a in CLIENT_ACTIONS}
    rid = uuid4()
    for status in runkit.Status:
        for action in CLIENT_ACTIONS:
            if (status, action) in TRANSITIONS:
                continue
            exc = runkit.IllegalTransition(rid, status, action, allowed_actions(status))
            assert set(exc.allowed) <= CLIENT_ACTIONS
            advice = str(exc).rpartition(";")[2]
            assert not {word.strip(",") for word in advice.split()} & engine_steps, str(exc)
    exc = runkit.IllegalTransition(
        rid, runkit.Status.RUNNING, runkit.Action.DELETE, allowed_actions(runkit.Status.RUNNING)
    )
    assert str(exc) == f"cannot delete run {rid}: it is running; cancel it first"
    assert exc.allowed == (runkit.Action.PAUSE, runkit.Action.CANCEL)
    failed = runkit.IllegalTransition(
        rid, runkit.Status.FAILED, runkit.Action.EXECUTE, allowed_actions(runkit.Status.FAILED)
    )
    assert str(failed).endswith("it is failed; retry it to run it again")


async def test_every_string_a_client_sends_is_bounded(rk: Runkit) -> None:
    long = "x" * 256
    cases: list[tuple[Any, tuple[str, ...]]] = [
        (rk.create("t_noop", action_id=long), ("action_id",)),
        (rk.create("t_noop", idempotency_key=long), ("idempotency_key",)),
        (rk.create("t_noop", concurrency_key=long), ("concurrency_key",)),
        (rk.list(action_id=long), ("action_id",)),
        (rk.list(kind=long), ("kind",)),
    ]
    for call, loc in cases:
        with pytest.raises(ValidationError) as info:
            await call
        assert info.value.details[0].loc == loc
    assert (await rk.create("t_noop", action_id="x" * 255)).run.action_id == "x" * 255
    gate = (await rk.create("t_gate")).run
    with pytest.raises(ValidationError) as info:
        await rk.reject(gate.id, reason="r" * 2001)
    assert info.value.details[0].loc == ("reason",)


async def test_a_replay_with_execute_returns_the_run_as_it_is(rk: Runkit) -> None:
    first = await rk.create("t_noop", {"a": 1}, idempotency_key="k", execute=True)
    assert first.created and first.run.status is Status.QUEUED
    again = await rk.create("t_noop", {"a": 1}, idempotency_key="k", execute=True)
    assert again.replayed and again.run == first.run  # nothing re-executed, nothing raised
    lease = await _claim_one(rk)
    await rk.ops.complete(lease, {"ok": True})
    done = await rk.create("t_noop", {"a": 1}, idempotency_key="k", execute=True)
    assert done.replayed and done.run.status is Status.SUCCEEDED
    assert done.run.result == {"ok": True}
