"""Durable waits across worker processes, on SQLite and PostgreSQL: parents waiting for
children hold no worker, no run is lost or run twice, and a SIGKILL while parents wait
loses nothing."""

from __future__ import annotations

import os
import signal
from collections import Counter
from typing import Any

import anyio
import pytest

import test_worker_processes as procs
from run_support import wait_status
from runkit import Runkit, Status
from test_worker_processes import TERMINAL, Fleet
from worker_proc import make_runkit

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# The backends and the fleet of worker processes are test_worker_processes's fixtures.
url = procs.url
fleet = procs.fleet


@pytest.fixture
async def rk(url: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "1")
    async with make_runkit(url) as instance:
        yield instance


async def _all_done(rk: Runkit, parents: list[Any], within: float) -> list[Any]:
    with anyio.fail_after(within):
        while True:
            page = await rk.list(kind="fanout", status=Status.SUCCEEDED, limit=1)
            if page.total == len(parents):
                break
            await anyio.sleep(0.2)
    return [await rk.get(p.id) for p in parents]


async def _check_children(rk: Runkit, fleet: Fleet, parents: list[Any], per: int) -> None:
    """Every parent has exactly ``per`` children, each succeeded and recorded once."""
    ledger = Counter(line[0] for line in fleet.ledger_lines())
    for parent in parents:
        kids = (await rk.list(parent_action_run_id=parent.id)).runs
        assert len(kids) == per, f"parent {parent.id} has {len(kids)} children"
        assert parent.result["children"] == [str(k.id) for k in kids]
        for kid in kids:
            assert kid.status is Status.SUCCEEDED
            assert ledger[str(kid.id)] >= 1
    assert sum(ledger.values()) >= len(parents) * per


async def test_two_hundred_parents_of_five_across_two_processes(rk: Runkit, fleet: Fleet) -> None:
    fleet.spawn(10)
    fleet.spawn(10)
    parents = [(await rk.create("fanout", {}, execute=True)).run for _ in range(200)]
    done = await _all_done(rk, parents, within=300)
    assert all(p.status is Status.SUCCEEDED for p in done)
    await _check_children(rk, fleet, done, 5)
    ledger = Counter(line[0] for line in fleet.ledger_lines())
    assert len(ledger) == 1000 and set(ledger.values()) == {1}  # no child ran twice
    # With 20 slots for 200 parents and 1,000 children, parents could only finish because
    # waiting ones gave their slots back; every parent waited at least once.
    assert all(p.attempt >= 2 for p in done)


async def test_sigkill_while_parents_wait_loses_nothing(rk: Runkit, fleet: Fleet) -> None:
    a = fleet.spawn(6)
    definition = {"children": 3, "sleep": 0.5}
    parents = [(await rk.create("fanout", definition, execute=True)).run for _ in range(12)]
    with anyio.fail_after(60):
        while (await rk.list(kind="fanout", status=Status.WAITING, limit=1)).total < 2:  # noqa: ASYNC110
            await anyio.sleep(0.05)
    os.kill(a.pid, signal.SIGKILL)
    fleet.spawn(6)
    done = await _all_done(rk, parents, within=120)
    await _check_children(rk, fleet, done, 3)
    for parent in done:
        kids = (await rk.list(parent_action_run_id=parent.id)).runs
        for kid in kids:
            finished = await wait_status(rk, kid.id, TERMINAL)
            assert finished.status is Status.SUCCEEDED
