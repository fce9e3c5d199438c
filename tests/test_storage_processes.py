"""Cross-process storage guarantees on SQLite and PostgreSQL, with real OS processes."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import anyio
import pytest

from runkit import Kind, Runkit, Status

SCRIPT = Path(__file__).with_name("storage_proc.py")
KINDS = [Kind("p_noop", executor=lambda ctx: None)]

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    value: str = request.getfixturevalue(name)
    # Make the schema once, before the processes race (migrations have their own test).
    anyio.run(_open_once, value)
    return value


async def _open_once(url: str) -> None:
    async with Runkit(url, kinds=KINDS, autoload_plugins=False):
        pass


def _spawn(*args: str) -> list[subprocess.Popen[str]]:
    return [
        subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    ]


def _run_all(commands: list[list[str]], timeout: float = 120) -> list[list[str]]:
    procs = [p for cmd in commands for p in _spawn(*cmd)]
    outputs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=timeout)
            assert proc.returncode == 0, err
            outputs.append([line for line in out.splitlines() if line.strip()])
    finally:
        for proc in procs:  # a failed or hung sibling must not outlive the test
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    return outputs


def test_concurrent_idempotent_creates_across_processes(url: str) -> None:
    start_at = str(time.time() + 1.5)
    outputs = _run_all([["create", url, start_at, "10", "same-key"] for _ in range(5)])
    lines = [line.split() for out in outputs for line in out]
    assert len(lines) == 50
    assert len({run_id for run_id, _ in lines}) == 1
    assert sum(int(created) for _, created in lines) == 1

    async def count() -> int:
        async with Runkit(url, kinds=KINDS, autoload_plugins=False) as rk:
            return (await rk.list()).total

    assert anyio.run(count) == 1


def _enqueue(url: str, free: int, keyed: int, key_limit: int) -> None:
    async def go() -> None:
        async with Runkit(url, kinds=KINDS, autoload_plugins=False) as rk:
            for i in range(max(free, keyed)):
                if i < keyed:
                    await rk.create(
                        "p_noop", concurrency_key="k", concurrency_limit=key_limit, execute=True
                    )
                if i < free:
                    await rk.create("p_noop", execute=True)

    anyio.run(go)


def test_four_processes_never_claim_the_same_run(url: str) -> None:
    _enqueue(url, free=200, keyed=0, key_limit=1)
    start_at = str(time.time() + 1.5)
    outputs = _run_all([["claim", url, start_at, f"w{i}", "5", "0"] for i in range(4)])
    ids = Counter(line.split()[0] for out in outputs for line in out)
    assert len(ids) == 200
    assert max(ids.values()) == 1

    async def statuses() -> Counter[Status]:
        async with Runkit(url, kinds=KINDS, autoload_plugins=False) as rk:
            page = await rk.list(limit=100)
            rest = await rk.list(limit=100, offset=100)
            return Counter(r.status for r in (*page.runs, *rest.runs))

    assert anyio.run(statuses) == Counter({Status.SUCCEEDED: 200})


def test_concurrency_limit_holds_across_processes(url: str) -> None:
    limit = 2
    _enqueue(url, free=30, keyed=30, key_limit=limit)
    start_at = str(time.time() + 1.5)
    outputs = _run_all([["claim", url, start_at, f"w{i}", "3", "0.02"] for i in range(4)])
    keyed = [
        (int(start), int(end))
        for out in outputs
        for line in out
        for _, key, start, end in [line.split()]
        if key == "k"
    ]
    assert len(keyed) == 30
    # Recorded intervals lie inside the real lease intervals, so an overlap of more than
    # `limit` here is a real violation.
    events = sorted([(s, 1) for s, _ in keyed] + [(e, -1) for _, e in keyed])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= limit
