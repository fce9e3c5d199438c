"""The engine in one process: executors, outcomes, retries, timeouts, control, approvals,
shutdown, embedded mode and the CLI. Multi-process behaviour: test_worker_processes.py."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from typing import Any

import anyio
import pytest

import runkit
from run_support import wait_status
from runkit import IllegalTransition, Kind, NotAllowed, Principal, Runkit, Settings, Status
from runkit.__main__ import build_parser, main
from runkit.domain.kind import RetryPolicy
from runkit.engine import Fatal, RunContext, Worker, embedded_workers
from runkit.engine._executors import backoff
from runkit.engine._wakeups import Signal

pytestmark = pytest.mark.anyio

SETTINGS = Settings(
    lease=timedelta(seconds=2),
    heartbeat=timedelta(seconds=0.3),
    rescue_interval=timedelta(seconds=0.3),
)
FAST = {"poll_interval": 0.1, "control_interval": 0.2, "grace_period": 5.0}


@pytest.fixture(autouse=True)
def _test_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "1")


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    value: str = request.getfixturevalue(fixture)
    return value


# --- kinds used only here -------------------------------------------------------------------
async def _boom(ctx: RunContext) -> None:
    raise ValueError("boom")


async def _fatal(ctx: RunContext) -> None:
    raise Fatal("no point retrying")


async def _forever(ctx: RunContext) -> None:
    await ctx.log("info", "started")
    await anyio.sleep(3600)


def _sync_exec(ctx: RunContext) -> dict[str, Any]:
    ctx.sync.log("info", "from a thread", data={"sync": True})
    ctx.sync.progress({"half": True})
    return {"sync": True}


async def _parent(ctx: RunContext) -> dict[str, Any]:
    child = await ctx.start_child("noop", {})
    [done] = await ctx.wait_for([child.id])
    return {"child": str(done.id), "childStatus": done.status.value}


async def _spawn_and_wait(ctx: RunContext) -> None:
    await ctx.start_child("sleep", {"seconds": 60})
    await anyio.sleep(3600)


class _Extra:
    @runkit.hookimpl
    def runkit_register_kinds(self, register: Callable[[Kind], None]) -> None:
        register(Kind("boom", _boom, retry=RetryPolicy(max_attempts=1)))
        register(Kind("boom3", _boom, retry=RetryPolicy(max_attempts=3, backoff_base=0.05)))
        register(Kind("fatal", _fatal, retry=RetryPolicy(max_attempts=5)))
        register(Kind("slow", _forever, timeout_seconds=0.3))
        register(Kind("forever", _forever))
        register(Kind("stubborn", _forever, cancellable=True, pausable=False))
        register(Kind("sync", _sync_exec))
        register(Kind("parent", _parent))
        register(Kind("spawner", _spawn_and_wait))


def _runkit(url: str, **kw: Any) -> Runkit:
    return Runkit(url, plugins=[_Extra()], settings=SETTINGS, autoload_plugins=False, **kw)


@pytest.fixture
async def rk(url: str) -> AsyncIterator[Runkit]:
    async with _runkit(url) as instance:
        yield instance


async def all_logs(rk: Runkit, run_id: Any) -> list[Any]:
    return [entry async for entry in rk.iter_logs(run_id)]


TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.REJECTED}


# --- outcomes -------------------------------------------------------------------------------
async def test_runs_execute_and_logs_carry_attempt_and_worker(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=4, worker_id="w1", **FAST):
        noop = (await rk.create("noop", {}, execute=True)).run
        logs = (await rk.create("emit_logs", {"count": 25}, execute=True)).run
        sync = (await rk.create("sync", {}, execute=True)).run
        for r in (noop, logs, sync):
            await wait_status(rk, r.id, TERMINAL)
    assert (await rk.get(noop.id)).result == {}
    done = await rk.get(logs.id)
    assert done.status is Status.SUCCEEDED and done.result == {"count": 25}
    entries = await all_logs(rk, logs.id)
    emitted = [e for e in entries if e.event is None]
    assert [e.data["i"] for e in emitted] == list(range(25))
    assert {(e.attempt, e.worker_id) for e in emitted} == {(1, "w1")}
    # flushed before completion: the terminal transition is the last entry
    assert entries[-1].data["to"] == "succeeded"
    s = await rk.get(sync.id)
    assert s.result == {"sync": True} and s.progress == {"half": True}
    assert any(e.data.get("sync") for e in await all_logs(rk, sync.id))


async def test_retry_with_backoff_then_success(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=2, **FAST):
        run = (
            await rk.create("fail_n_times", {"times": 3, "backoffSeconds": 0.2}, execute=True)
        ).run
        done = await wait_status(rk, run.id, TERMINAL, within=20)
    assert done.status is Status.SUCCEEDED
    assert done.attempt == 4 and done.retry_count == 3
    claims = [
        e.occurred_at
        for e in await all_logs(rk, run.id)
        if e.event == "status.changed" and e.data["to"] == "running"
    ]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(claims)]
    # backoff 0.2, 0.4, 0.8 s with ±20% jitter: never earlier than the policy allows
    for gap, expected in zip(gaps, (0.2, 0.4, 0.8), strict=True):
        assert gap >= expected * 0.8 - 0.01


async def test_retries_exhausted_fatal_and_plain_errors(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=4, **FAST):
        always = (
            await rk.create(
                "fail_n_times",
                {"times": 10, "maxAttempts": 3, "backoffSeconds": 0.05},
                execute=True,
            )
        ).run
        boom = (await rk.create("boom", {}, execute=True)).run
        boom3 = (await rk.create("boom3", {}, execute=True)).run
        fatal = (await rk.create("fatal", {}, execute=True)).run
        runs = {
            r.id: await wait_status(rk, r.id, TERMINAL, 20) for r in (always, boom, boom3, fatal)
        }
    a = runs[always.id]
    assert (a.status, a.status_reason, a.attempt) == (Status.FAILED, "retries_exhausted", 3)
    assert a.error is not None and a.error["retryable"] is False
    assert a.error["type"] == "RetriesExhausted" and a.error["attempts"] == 3
    assert a.error["message"].startswith("gave up after 3 attempts: ")
    assert a.error["cause"]["type"] == "Retryable"
    assert await rk.display_status(a) == f"Failed: {a.error['message']}"
    b = runs[boom.id]
    assert (b.status, b.status_reason, b.attempt) == (Status.FAILED, "error", 1)
    assert b.error == {"type": "ValueError", "message": "boom", "retryable": False}
    assert runs[boom3.id].attempt == 3
    f = runs[fatal.id]
    assert (f.status, f.attempt, f.error["type"]) == (Status.FAILED, 1, "Fatal")  # type: ignore[index]


async def test_timeout_fails_with_reason_timeout(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=1, **FAST):
        run = (await rk.create("slow", {}, execute=True)).run
        done = await wait_status(rk, run.id, TERMINAL)
    assert (done.status, done.status_reason) == (Status.FAILED, "timeout")
    assert done.error is not None and done.error["type"] == "Timeout"


# --- control --------------------------------------------------------------------------------
async def test_cancel_running_stops_within_bound_and_cascades(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=4, **FAST) as worker:
        parent = (await rk.create("spawner", {}, execute=True)).run
        await wait_status(rk, parent.id, {Status.RUNNING})
        with anyio.fail_after(10):
            while not (await rk.list(parent_action_run_id=parent.id)).runs:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        child = (await rk.list(parent_action_run_id=parent.id)).runs[0]
        await wait_status(rk, child.id, {Status.RUNNING})
        started = time.monotonic()
        await rk.cancel(parent.id)
        await wait_status(rk, parent.id, {Status.CANCELLED}, within=5)
        await wait_status(rk, child.id, {Status.CANCELLED}, within=5)
        assert time.monotonic() - started < 2.0 + 0.5  # bound: 2 s in-process (+ margin)
        with anyio.fail_after(2):
            while worker.held:  # noqa: ASYNC110
                await anyio.sleep(0.02)
    assert (await rk.get(child.id)).status_reason in {"parent_cancelled", "stopped"}


async def test_pause_at_checkpoint_then_resume_continues(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=2, **FAST):
        run = (await rk.create("sleep", {"seconds": 2.0}, execute=True)).run
        await wait_status(rk, run.id, {Status.RUNNING})
        with anyio.fail_after(10):
            while (await rk.get(run.id)).checkpoint is None:  # noqa: ASYNC110
                await anyio.sleep(0.02)
        started = time.monotonic()
        await rk.pause(run.id)
        paused = await wait_status(rk, run.id, {Status.PAUSED}, within=5)
        assert time.monotonic() - started < 2.5
        assert paused.checkpoint is not None and 0 < paused.checkpoint["elapsed"] < 2.0
        await rk.resume(run.id)
        done = await wait_status(rk, run.id, TERMINAL, within=10)
    assert done.status is Status.SUCCEEDED and done.attempt == 2
    messages = [e.message for e in await all_logs(rk, run.id) if e.attempt == 2]
    assert any(m.startswith("resuming after") for m in messages)


async def test_pause_refused_for_unpausable_running_kind(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=1, **FAST):
        run = (await rk.create("stubborn", {}, execute=True)).run
        await wait_status(rk, run.id, {Status.RUNNING})
        with pytest.raises(IllegalTransition):
            await rk.pause(run.id)
        await rk.cancel(run.id)
        await wait_status(rk, run.id, {Status.CANCELLED}, within=5)


async def test_children_start_and_wait(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=2, **FAST):
        run = (await rk.create("parent", {}, execute=True)).run
        done = await wait_status(rk, run.id, TERMINAL)
    assert done.status is Status.SUCCEEDED
    assert done.result is not None and done.result["childStatus"] == "succeeded"
    child = await rk.get(done.result["child"])
    assert child.parent_action_run_id == run.id


# --- approval gate --------------------------------------------------------------------------
async def test_approval_gate_parks_without_a_slot(url: str) -> None:
    async with _runkit(url) as rk, embedded_workers(rk, concurrency=1, **FAST) as worker:
        gate = (
            await rk.create(
                "approval_gate",
                {"title": "Go?", "approvers": ["alice", "bob"], "requiredApprovals": 2},
                execute=True,
                principal=Principal("carol"),
                concurrency_key="deploy",
            )
        ).run
        await wait_status(rk, gate.id, {Status.AWAITING_APPROVAL})
        assert worker.held == 0
        # the gate holds neither worker nor slot: a run of the same key proceeds
        other = (await rk.create("noop", {}, execute=True, concurrency_key="deploy")).run
        await wait_status(rk, other.id, {Status.SUCCEEDED})
        with pytest.raises(NotAllowed):
            await rk.approve(gate.id, principal=Principal("mallory"))
        await rk.approve(gate.id, principal=Principal("alice"))
        partial = await rk.get(gate.id)
        assert partial.status is Status.AWAITING_APPROVAL
        assert await rk.display_status(partial) == "Awaiting approval · 1 of 2"
        await rk.approve(gate.id, principal=Principal("bob"))
        done = await rk.get(gate.id)
        assert done.status is Status.SUCCEEDED and len(done.approvals) == 2
        noop = await rk.get(other.id)
        with pytest.raises(IllegalTransition):
            await rk.approve(noop.id, principal=Principal("alice"))


async def test_approval_gate_lets_its_creator_decide_unless_four_eyes(rk: Runkit) -> None:
    carol = Principal("carol", kind="api_key")
    async with embedded_workers(rk, concurrency=2, **FAST):
        open_gate = (await rk.create("approval_gate", {}, execute=True, principal=carol)).run
        strict = (
            await rk.create(
                "approval_gate", {"allowSelfApproval": False}, execute=True, principal=carol
            )
        ).run
        await wait_status(rk, open_gate.id, {Status.AWAITING_APPROVAL})
        await wait_status(rk, strict.id, {Status.AWAITING_APPROVAL})
    assert (await rk.approve(open_gate.id, principal=carol)).status is Status.SUCCEEDED
    with pytest.raises(NotAllowed, match="created run"):
        await rk.approve(strict.id, principal=carol)
    rejected = await rk.reject(strict.id, principal=Principal("dave"), reason="not today")
    assert rejected.status is Status.REJECTED
    assert rejected.approvals[-1]["reason"] == "not today"
    assert await rk.display_status(rejected) == "Rejected: not today"


async def test_approval_gate_timeout_applies_policy(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=1, **FAST):
        runs = {
            outcome: (
                await rk.create(
                    "approval_gate",
                    {"timeoutSeconds": 0.3, "onTimeout": outcome},
                    execute=True,
                )
            ).run
            for outcome in ("reject", "fail", "approve")
        }
        done = {o: await wait_status(rk, r.id, TERMINAL) for o, r in runs.items()}
    assert done["reject"].status is Status.REJECTED
    assert done["fail"].status is Status.FAILED
    assert done["approve"].status is Status.SUCCEEDED


# --- shutdown, embedded ---------------------------------------------------------------------
async def test_graceful_shutdown_releases_after_grace(rk: Runkit) -> None:
    quick = {**FAST, "grace_period": 0.3}
    worker = Worker(rk, concurrency=2, **quick)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.run)
        long = (await rk.create("forever", {}, execute=True)).run
        short = (await rk.create("sleep", {"seconds": 0.1}, execute=True)).run
        await wait_status(rk, long.id, {Status.RUNNING})
        await wait_status(rk, short.id, {Status.RUNNING, Status.SUCCEEDED})
        worker.stop()
    released = await rk.get(long.id)
    assert released.status is Status.QUEUED
    assert released.interrupt_count == 0 and released.status_reason == "worker shutdown"
    assert (await rk.get(short.id)).status is Status.SUCCEEDED
    # a new worker picks it up again
    async with embedded_workers(rk, concurrency=1, **FAST):
        await wait_status(rk, long.id, {Status.RUNNING})
        await rk.cancel(long.id)
        await wait_status(rk, long.id, {Status.CANCELLED})


async def test_lost_lease_writes_nothing() -> None:
    async with _runkit("memory://") as rk:
        worker = Worker(rk, concurrency=2, rescue=False, **FAST)
        async with anyio.create_task_group() as tg:
            await tg.start(worker.run)
            definition = {"count": 1000, "intervalSeconds": 0.01}
            run = (await rk.create("emit_logs", definition, execute=True)).run
            await wait_status(rk, run.id, {Status.RUNNING})
            with anyio.fail_after(10):
                while len(await all_logs(rk, run.id)) < 10:  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            # Another party takes the run over (as the rescuer would after lease expiry);
            # this same worker may even claim it again as attempt 2.
            lease = runkit.Lease(run.id, 1, (await rk.get(run.id)).lease_token or "")
            await rk.ops.release(lease)
            takeover = (await rk.get(run.id)).log_seq
            with anyio.fail_after(10):  # its next heartbeats: attempt 1 notices and stops
                while (run.id, 1) in worker.holding():  # noqa: ASYNC110
                    await anyio.sleep(0.02)
            await rk.cancel(run.id)
            await wait_status(rk, run.id, TERMINAL)
            worker.stop()
        late = [e for e in await all_logs(rk, run.id) if e.seq > takeover and e.attempt == 1]
        assert late == []


def test_backoff_policy_bounds() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_base=1.0, backoff_max=5.0, jitter=0.2)
    for n, expected in enumerate((1.0, 2.0, 4.0, 5.0, 5.0)):
        for _ in range(50):
            assert expected * 0.8 <= backoff(policy, n) <= expected * 1.2


# --- CLI ------------------------------------------------------------------------------------
def test_cli_parser_and_db(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args(["worker", "--database", "sqlite:///x.db", "--concurrency", "3"])
    assert args.concurrency == 3 and args.database == "sqlite:///x.db"
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["db", "upgrade", "--database", url]) == 0
    assert main(["db", "check", url]) == 0
    with pytest.raises(SystemExit) as exit_info:
        main(["nonsense"])
    assert exit_info.value.code == 2


@pytest.fixture
def demo_dir(tmp_path: Any) -> Iterator[Any]:
    yield tmp_path


@pytest.mark.slow
def test_cli_demo_runs(demo_dir: Any) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RUNKIT_ENABLE_TEST_KINDS"}
    out = subprocess.run(
        [sys.executable, "-m", "runkit", "demo"],
        cwd=demo_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "entry 2" in out and "Succeeded" in out


@pytest.mark.slow
async def test_cli_worker_announces_itself_and_logs_runs_with_v(sqlite_url: str) -> None:
    env = {**os.environ, "RUNKIT_ENABLE_TEST_KINDS": "1"}
    cmd = [sys.executable, "-m", "runkit", "-v", "worker", "--database", sqlite_url]
    proc = subprocess.Popen(  # noqa: ASYNC220 - a real process, read line by line
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        async with Runkit(sqlite_url, autoload_plugins=False) as rk:
            (info,) = await rk.workers()
            assert first.startswith(f"runkit worker {info.id}: database {sqlite_url}, kinds ")
            assert "approval_gate, call_agent, call_automation, " in first
            assert "create_flashboard" in first and "emit_logs" in first
            assert "concurrency 10, lease 10 s" in first
            run = (await rk.create("noop", execute=True)).run
            assert (await rk.wait(run.id, timeout=30)).status is Status.SUCCEEDED
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert f"claimed run {run.id} (noop), attempt 1" in err
    assert f"run {run.id} (noop) attempt 1: succeeded" in err


# --- the host's in-process API: wait, embedded workers, sync hosts ---------------------------
async def test_wait_returns_the_terminal_run_and_times_out(rk: Runkit) -> None:
    run = (await rk.create("sleep", {"seconds": 60}, execute=True)).run
    with pytest.raises(TimeoutError):
        await rk.wait(run.id, timeout=0.2)  # nobody executes it
    async with embedded_workers(rk, concurrency=2, **FAST):
        quick = (await rk.create("noop", execute=True)).run
        done = await rk.wait(quick.id, timeout=20)
        assert done.status is Status.SUCCEEDED and done.id == quick.id
        await rk.cancel(run.id)
        assert (await rk.wait(run.id, timeout=20)).status is Status.CANCELLED
    with pytest.raises(runkit.RunNotFound):
        await rk.wait("00000000-0000-4000-8000-000000000000", timeout=1)


async def test_wait_wakes_on_the_move_not_the_poll(rk: Runkit) -> None:
    run = (await rk.create("noop", execute=True)).run
    async with embedded_workers(rk, concurrency=1, **FAST):
        # With a one-hour poll, only the run's own move can wake the waiter in time.
        with anyio.fail_after(20):
            done = await rk.wait(run.id, poll=3600)
    assert done.status is Status.SUCCEEDED


async def test_wait_wakes_on_a_move_between_its_read_and_its_sleep() -> None:
    """The run moves after wait() read it and before it sleeps: the move's wake-up must
    not be lost (it was, and the waiter slept until its poll)."""
    kinds = [Kind("t_waited", executor=lambda ctx: None)]
    async with Runkit("memory://", kinds=kinds, autoload_plugins=False) as rk:
        run = (await rk.create("t_waited", execute=True)).run
        read = rk.mover.require
        moved = False

        async def read_then_move(run_id: Any) -> Any:
            nonlocal moved
            current = await read(run_id)
            if not moved:  # the move lands after wait()'s first read, before it sleeps
                moved = True
                await rk.cancel(run_id)
            return current

        rk.mover.require = read_then_move  # type: ignore[method-assign]
        with anyio.fail_after(10):
            done = await rk.wait(run.id, poll=3600)
        assert done.status is Status.CANCELLED


def test_an_armed_signal_keeps_a_fire_that_came_before_the_wait() -> None:
    async def scenario() -> tuple[bool, bool]:
        sig = Signal()
        armed = sig.arm()
        sig.fire()
        caught = await sig.wait(0.5, armed=armed)
        missed = await sig.wait(0.05)  # a wait that did not arm before: the next fire
        return caught, missed

    assert anyio.run(scenario) == (True, False)


class _HostError(Exception):
    pass


async def test_a_host_exception_leaves_embedded_workers_as_itself(rk: Runkit) -> None:
    with pytest.raises(_HostError) as caught:
        async with embedded_workers(rk, concurrency=1, **FAST):
            raise _HostError("from the host's own code")
    assert not isinstance(caught.value, BaseExceptionGroup)
    assert await rk.workers() == []  # stopped gracefully: unregistered


async def test_embedded_workers_register_while_they_run(rk: Runkit) -> None:
    async with embedded_workers(rk, concurrency=3, **FAST) as worker:
        (info,) = await rk.workers()
        assert info.id == worker.worker_id and info.pid == os.getpid()
        assert info.concurrency == 3 and set(info.kinds) == set(rk.kinds.names())
    assert await rk.workers() == []


def test_a_sync_host_runs_embedded_workers_in_a_background_thread(sqlite_url: str) -> None:
    with (
        runkit.SyncRunkit(lambda: _runkit(sqlite_url)) as rk,
        rk.embedded_workers(concurrency=2, **FAST),
    ):
        run = rk.create("noop", execute=True).run
        done = rk.wait(run.id, timeout=20)
        assert done.status is Status.SUCCEEDED
        assert len(rk.workers()) == 1
