"""Workers as real OS processes on SQLite and PostgreSQL: crashes, zombies, crash loops,
concurrency keys, exactly-once, cross-process control and graceful shutdown (R1-R3, R8-R10).

Timings are short (lease 2 s, heartbeat 0.3 s, rescue 0.3 s); bounds are recovery bounds
with generous margins, never speed assertions.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from run_support import wait_status
from runkit import Runkit, Status
from worker_proc import make_runkit

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

WORKER = str(Path(__file__).with_name("worker_proc.py"))
TERMINAL = {Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.REJECTED}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest) -> str:
    value: str = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    return value


class Fleet:
    """Worker processes for one test; all killed at teardown."""

    def __init__(self, url: str, ledger: Path) -> None:
        self.url = url
        self.ledger = ledger
        self.procs: list[subprocess.Popen[bytes]] = []
        self._outputs: list[Any] = []

    def spawn(self, concurrency: int = 4, *extra: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "RUNKIT_ENABLE_TEST_KINDS": "1",
            "RUNKIT_TEST_LEDGER": str(self.ledger),
        }
        output = open(self.ledger.with_name(f"worker-{len(self.procs)}.log"), "wb")  # noqa: SIM115
        self._outputs.append(output)
        proc = subprocess.Popen(
            [sys.executable, WORKER, self.url, "--concurrency", str(concurrency), *extra],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def ledger_lines(self) -> list[list[str]]:
        if not self.ledger.exists():
            return []
        return [line.split() for line in self.ledger.read_text().splitlines() if line]

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait(10)
        for output in self._outputs:
            output.close()


@pytest.fixture
def fleet(url: str, tmp_path: Path) -> Iterator[Fleet]:
    f = Fleet(url, tmp_path / "ledger.txt")
    try:
        yield f
    finally:
        f.close()


@pytest.fixture
async def rk(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "1")
    async with make_runkit(url, interrupt_budget=2) as instance:
        yield instance


async def _checkpointed(rk: Runkit, run_id: Any) -> None:
    """Wait until the run's executor has saved a checkpoint (it is well under way)."""
    with anyio.fail_after(20):
        while (await rk.get(run_id)).checkpoint is None:  # noqa: ASYNC110
            await anyio.sleep(0.05)


async def logs(rk: Runkit, run_id: Any) -> list[Any]:
    return [entry async for entry in rk.iter_logs(run_id)]


async def test_sigkill_mid_run_is_reclaimed(rk: Runkit, fleet: Fleet) -> None:
    a = fleet.spawn(2)
    definition = {"count": 12, "intervalSeconds": 0.15}
    run = (await rk.create("emit_logs", definition, execute=True)).run
    with anyio.fail_after(20):
        while len([e for e in await logs(rk, run.id) if e.event is None]) < 3:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    os.kill(a.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    before = [(e.seq, e.attempt, e.message) for e in await logs(rk, run.id)]
    fleet.spawn(2)
    reclaimed = await wait_status(rk, run.id, {Status.RUNNING}, within=30)
    while reclaimed.attempt < 2:
        reclaimed = await wait_status(rk, run.id, {Status.RUNNING, *TERMINAL}, within=30)
        await anyio.sleep(0.05)
    assert time.monotonic() - killed_at < 2 + 0.3 + 5 + 5  # lease + rescue + start-up margin
    done = await wait_status(rk, run.id, TERMINAL, within=30)
    assert done.status is Status.SUCCEEDED and done.interrupt_count == 1 and done.attempt == 2
    after = await logs(rk, run.id)
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    assert set(before) <= {(e.seq, e.attempt, e.message) for e in after}  # nothing lost
    second = [e.data["i"] for e in after if e.event is None and e.attempt == 2]
    assert second == list(range(12))


async def test_sigstop_zombie_changes_nothing(rk: Runkit, fleet: Fleet) -> None:
    a = fleet.spawn(1)
    run = (await rk.create("sleep", {"seconds": 3.0}, execute=True)).run
    await wait_status(rk, run.id, {Status.RUNNING}, within=20)
    await _checkpointed(rk, run.id)
    os.kill(a.pid, signal.SIGSTOP)
    try:
        fleet.spawn(1)
        done = await wait_status(rk, run.id, TERMINAL, within=30)
        assert done.status is Status.SUCCEEDED and done.attempt == 2
    finally:
        os.kill(a.pid, signal.SIGCONT)
    # The zombie wakes and heartbeats: its registry row comes back, then is renewed again
    # (each renewal runs with the lease heartbeat that finds its lease gone).
    woke = rk.clock.now()

    async def renewed() -> bool:
        return any(
            w.pid == a.pid and (w.last_seen_at - woke).total_seconds() > 0.5
            for w in await rk.workers()
        )

    with anyio.fail_after(20):
        while not await renewed():  # noqa: ASYNC110
            await anyio.sleep(0.05)
    assert a.poll() is None  # alive, not crashed by its failed writes
    entries = await logs(rk, run.id)
    terminal = [e for e in entries if e.event == "status.changed" and e.data["to"] == "succeeded"]
    assert len(terminal) == 1
    claim2 = next(e.seq for e in entries if e.event == "status.changed" and e.attempt == 2)
    assert all(e.seq < claim2 for e in entries if e.attempt == 1 and e.worker_id)
    final = await rk.get(run.id)
    assert final.updated_at == done.updated_at and final.log_seq == done.log_seq


async def test_crash_loop_fails_crashed_while_others_flow(rk: Runkit, fleet: Fleet) -> None:
    budget = 2  # rk and the workers use interrupt_budget=2
    poison_args = ("--interrupt-budget", str(budget), "--kinds", "crash")
    fleet.spawn(2, "--interrupt-budget", str(budget), "--kinds", "record")
    poison_worker = fleet.spawn(1, *poison_args)
    poison = (await rk.create("crash", {}, execute=True)).run
    others = [(await rk.create("record", {"sleep": 0.05}, execute=True)).run for _ in range(40)]
    crashes = 0
    with anyio.fail_after(60):
        while (await rk.get(poison.id)).status not in TERMINAL:
            if poison_worker.poll() is not None:  # a supervisor restarts the dead worker
                crashes += 1
                poison_worker = fleet.spawn(1, *poison_args)
            await anyio.sleep(0.1)
    failed = await rk.get(poison.id)
    assert (failed.status, failed.status_reason) == (Status.FAILED, "crashed")
    assert failed.interrupt_count == budget + 1 and failed.attempt == budget + 1
    assert crashes >= budget
    for other in others:
        assert (await wait_status(rk, other.id, TERMINAL, within=30)).status is Status.SUCCEEDED
    assert fleet.procs[0].poll() is None  # the fleet's other worker never went down


async def test_concurrency_key_limit_and_fifo(rk: Runkit, fleet: Fleet) -> None:
    for _ in range(3):
        fleet.spawn(4)
    runs = [
        (await rk.create("record", {"sleep": 0.005}, concurrency_key="k", execute=True)).run
        for _ in range(200)
    ]
    for run in runs:
        assert (await wait_status(rk, run.id, TERMINAL, within=120)).status is Status.SUCCEEDED
    lines = fleet.ledger_lines()
    assert len(lines) == 200
    by_start = sorted(lines, key=lambda line: float(line[2]))
    assert [line[0] for line in by_start] == [str(r.id) for r in runs]  # FIFO
    for prev, nxt in itertools.pairwise(by_start):
        assert float(prev[3]) <= float(nxt[2])  # never two at once (limit 1)


async def test_thousand_runs_each_executed_once(rk: Runkit, fleet: Fleet) -> None:
    for _ in range(4):
        fleet.spawn(8)
    runs = [(await rk.create("record", {}, execute=True)).run for _ in range(1000)]
    with anyio.fail_after(180):
        while len(fleet.ledger_lines()) < 1000:  # noqa: ASYNC110
            await anyio.sleep(0.2)
    for run in runs:
        done = await wait_status(rk, run.id, TERMINAL, within=30)
        assert done.status is Status.SUCCEEDED and done.attempt == 1
    ids = [line[0] for line in fleet.ledger_lines()]
    assert len(ids) == 1000 and set(ids) == {str(r.id) for r in runs}
    assert len({line[4] for line in fleet.ledger_lines()}) > 1  # shared among processes


async def test_cancel_and_pause_across_processes(rk: Runkit, fleet: Fleet) -> None:
    fleet.spawn(4)
    to_cancel = (await rk.create("sleep", {"seconds": 60}, execute=True)).run
    to_pause = (await rk.create("sleep", {"seconds": 3.0}, execute=True)).run
    await wait_status(rk, to_cancel.id, {Status.RUNNING}, within=20)
    await wait_status(rk, to_pause.id, {Status.RUNNING}, within=20)
    await _checkpointed(rk, to_pause.id)
    started = time.monotonic()
    await rk.cancel(to_cancel.id)
    await wait_status(rk, to_cancel.id, {Status.CANCELLED}, within=10)
    assert time.monotonic() - started < 5.0
    started = time.monotonic()
    await rk.pause(to_pause.id)
    paused = await wait_status(rk, to_pause.id, {Status.PAUSED, Status.SUCCEEDED}, within=10)
    assert time.monotonic() - started < 5.0
    if paused.status is Status.PAUSED:
        assert paused.checkpoint is not None
        await rk.resume(to_pause.id)
        done = await wait_status(rk, to_pause.id, TERMINAL, within=20)
        assert done.status is Status.SUCCEEDED and done.attempt == 2


async def test_graceful_shutdown(rk: Runkit, fleet: Fleet) -> None:
    a = fleet.spawn(2, "--grace", "1.0")
    short = (await rk.create("sleep", {"seconds": 0.5}, execute=True)).run
    long = (await rk.create("sleep", {"seconds": 60}, execute=True)).run
    await wait_status(rk, long.id, {Status.RUNNING}, within=20)
    await wait_status(rk, short.id, {Status.RUNNING, Status.SUCCEEDED}, within=20)
    a.send_signal(signal.SIGTERM)
    assert a.wait(15) == 0
    assert (await rk.get(short.id)).status is Status.SUCCEEDED  # finished within grace
    released = await rk.get(long.id)
    assert released.status is Status.QUEUED and released.interrupt_count == 0
    # a second signal exits at once, without waiting for the grace period
    b = fleet.spawn(2, "--grace", "30")
    await wait_status(rk, long.id, {Status.RUNNING}, within=20)
    # Two signals: whichever the worker handles first asks for a graceful stop, the
    # other makes it exit at once (it need not wait for the first to be handled).
    b.send_signal(signal.SIGTERM)
    b.send_signal(signal.SIGINT)
    started = time.monotonic()
    b.wait(10)
    assert time.monotonic() - started < 5
    # its run is rescued and finished by the next worker
    fleet.spawn(2)
    await wait_status(rk, long.id, {Status.RUNNING}, within=20)
    await rk.cancel(long.id)
    await wait_status(rk, long.id, {Status.CANCELLED}, within=10)


# ------------------------------------------------------------------ kinds a worker serves --
async def _live_workers(rk: Runkit, n: int) -> dict[str, Any]:
    with anyio.fail_after(30):
        while len(workers := await rk.workers()) < n:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    return {w.id: w for w in workers}


async def _claimed_by(rk: Runkit, run_id: Any) -> list[str]:
    return [
        e.worker_id
        for e in await logs(rk, run_id)
        if e.event == "status.changed" and e.data.get("to") == "running"
    ]


async def test_workers_with_disjoint_kinds_each_run_only_their_own(
    rk: Runkit, fleet: Fleet
) -> None:
    fleet.spawn(2, "--no-proc-kinds")  # the test kinds only: no `record`
    fleet.spawn(2, "--kinds", "record")  # has every kind, claims only `record`
    workers = await _live_workers(rk, 2)
    runs = []
    for _ in range(10):
        runs.append((await rk.create("record", execute=True)).run)
        runs.append((await rk.create("noop", execute=True)).run)
    for run in runs:
        done = await wait_status(rk, run.id, TERMINAL, within=30)
        assert done.status is Status.SUCCEEDED, done
        (claimer,) = await _claimed_by(rk, run.id)
        assert run.kind in workers[claimer].kinds
    assert {w.kinds for w in workers.values()} == {
        ("record",),
        tuple(sorted(set(rk.kinds.names()) - {"record", "crash", "fanout"})),
    }


async def test_a_run_of_an_unserved_kind_waits_for_a_worker_that_serves_it(
    rk: Runkit, fleet: Fleet
) -> None:
    fleet.spawn(2, "--no-proc-kinds")
    await _live_workers(rk, 1)
    waiting = (await rk.create("record", execute=True)).run
    later = (await rk.create("noop", execute=True)).run
    # The later run finishing shows the worker has claimed past the unserved one.
    assert (await wait_status(rk, later.id, TERMINAL, within=30)).status is Status.SUCCEEDED
    still = await rk.get(waiting.id)
    assert still.status is Status.QUEUED and still.attempt == 0
    assert await rk.display_status(still) == "Queued · no worker serves kind 'record'"
    fleet.spawn(1, "--kinds", "record")
    done = await wait_status(rk, waiting.id, TERMINAL, within=30)
    assert done.status is Status.SUCCEEDED and done.retry_count == 0


async def test_an_unserved_head_blocks_only_its_own_key(rk: Runkit, fleet: Fleet) -> None:
    fleet.spawn(2, "--no-proc-kinds")
    await _live_workers(rk, 1)
    head = (await rk.create("record", concurrency_key="k1", execute=True)).run
    behind = (await rk.create("noop", concurrency_key="k1", execute=True)).run
    other_key = (await rk.create("noop", concurrency_key="k2", execute=True)).run
    unkeyed = (await rk.create("noop", execute=True)).run
    for run in (other_key, unkeyed):
        assert (await wait_status(rk, run.id, TERMINAL, within=30)).status is Status.SUCCEEDED
    # FIFO within k1: the served run behind the unserved head must not overtake it.
    assert (await rk.get(behind.id)).status is Status.QUEUED
    assert (await rk.get(head.id)).status is Status.QUEUED
    fleet.spawn(1, "--kinds", "record")
    first = await wait_status(rk, head.id, TERMINAL, within=30)
    second = await wait_status(rk, behind.id, TERMINAL, within=30)
    assert first.status is second.status is Status.SUCCEEDED


async def test_a_killed_workers_run_is_taken_over_within_the_default_lease(
    rk: Runkit, url: str, tmp_path: Path
) -> None:
    """``runkit worker`` with its default timing (a 10 s lease renewed every 2 s): a run
    held by a SIGKILLed worker is running again on another within lease + rescue interval
    (about 12 s; it was 32 s with the 30 s lease)."""
    env = {**os.environ, "RUNKIT_ENABLE_TEST_KINDS": "1"}
    for name in ("RUNKIT_LEASE_SECONDS", "RUNKIT_HEARTBEAT_SECONDS"):
        env.pop(name, None)

    def spawn(n: int) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "runkit", "worker", "--database", url, "--concurrency", "2"]
        with open(tmp_path / f"cli-worker-{n}.log", "wb") as log:  # the child keeps its copy
            return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)

    first = spawn(1)
    second: subprocess.Popen[bytes] | None = None
    try:
        run = (await rk.create("sleep", {"seconds": 60}, execute=True)).run
        await wait_status(rk, run.id, {Status.RUNNING}, within=30)
        second = spawn(2)
        with anyio.fail_after(30):
            while len(await rk.workers()) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        os.kill(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        with anyio.fail_after(40):
            while (await rk.get(run.id)).attempt < 2:  # noqa: ASYNC110
                await anyio.sleep(0.1)
        taken_over = time.monotonic() - killed_at
        print(f"taken over {taken_over:.1f} s after SIGKILL")  # shown with -s
        assert taken_over < 10 + 2 + 3, f"taken over after {taken_over:.1f} s"
        again = await rk.get(run.id)
        assert again.interrupt_count == 1 and again.status is Status.RUNNING
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(10)
