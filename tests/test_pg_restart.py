"""R4: PostgreSQL restarts in the middle of a load. Workers reconnect and carry on, and no
run whose creation was acknowledged is lost or duplicated.

This restarts the machine's PostgreSQL cluster (``pg_ctlcluster ... restart -m fast``), so
it runs as the last test of its module and waits until the server answers again. CI runs as
root, which ``pg_ctlcluster`` needs; without it the test fails rather than skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest

from runkit import Runkit, Status, StorageUnavailable
from worker_proc import make_runkit

pytestmark = pytest.mark.slow

WORKER = str(Path(__file__).with_name("worker_proc.py"))
RUNS = 120
RESTART_AT = 40


def _restart_postgres() -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
    subprocess.run([*command, "-m", "fast"], check=True, capture_output=True, timeout=120)


def _wait_for_postgres(deadline: float) -> None:
    while time.monotonic() < deadline:
        ready = subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432"], check=False)
        if ready.returncode == 0:
            return
        time.sleep(0.5)
    raise AssertionError("PostgreSQL did not come back")


async def _create_through_outage(rk: Runkit, i: int) -> int:
    """Create run ``i``; through an outage, retry with the same idempotency key, so a create
    whose commit landed before the connection died is answered, not duplicated. Returns how
    many attempts failed."""
    for failed in range(600):
        try:
            await rk.create("noop", idempotency_key=f"restart-{i}", execute=True)
            return failed
        except StorageUnavailable:
            await anyio.sleep(0.1)
    raise AssertionError(f"create {i} never got through")


def _server_started_at() -> str:
    query = "SELECT pg_postmaster_start_time()"
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-Atc", query],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def test_postgres_restart_under_load(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert shutil.which("pg_ctlcluster"), "pg_ctlcluster is needed to restart PostgreSQL"
    monkeypatch.setenv("RUNKIT_ENABLE_TEST_KINDS", "1")  # the kinds this process validates
    env = {**os.environ, "RUNKIT_ENABLE_TEST_KINDS": "1", "RUNKIT_TEST_LEDGER": "/dev/null"}
    logs = [open(tmp_path / f"worker-{i}.log", "wb") for i in range(2)]  # noqa: SIM115
    workers = [
        subprocess.Popen(
            [sys.executable, WORKER, pg_url, "--concurrency", "4"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    restarter: threading.Thread | None = None
    started_before = _server_started_at()
    outage_failures = 0
    try:

        async def load() -> list[Status]:
            nonlocal restarter, outage_failures
            async with make_runkit(pg_url) as rk:
                # Both workers up before the load: a worker still starting when the server
                # goes down would die in its start-up migration check, not under load.
                with anyio.fail_after(60):
                    while len(await rk.workers()) < len(workers):  # noqa: ASYNC110
                        await anyio.sleep(0.1)
                for i in range(RUNS):
                    if i == RESTART_AT:
                        restarter = threading.Thread(target=_restart_postgres)
                        restarter.start()
                    outage_failures += await _create_through_outage(rk, i)
                    await anyio.sleep(0.02)
                assert restarter is not None
                restarter.join(timeout=120)
                _wait_for_postgres(time.monotonic() + 60)
                deadline = time.monotonic() + 90
                while True:
                    try:
                        page = await rk.list(limit=100)
                        rest = await rk.list(limit=100, offset=100)
                    except StorageUnavailable:
                        await anyio.sleep(0.2)
                        continue
                    runs = [*page.runs, *rest.runs]
                    assert page.total == RUNS, "a run was lost or duplicated"
                    if all(r.status.terminal for r in runs) or time.monotonic() > deadline:
                        assert all(r.interrupt_count <= 1 for r in runs)
                        return [r.status for r in runs]
                    await anyio.sleep(0.2)

        statuses = anyio.run(load)
        assert _server_started_at() != started_before, "PostgreSQL was not restarted"
        assert outage_failures > 0, "no create met the outage: the restart came too late"
        assert statuses.count(Status.SUCCEEDED) == RUNS, statuses
        for worker in workers:
            assert worker.poll() is None, "a worker died with the database restart"
    finally:
        if restarter is not None:
            restarter.join(timeout=120)
        _wait_for_postgres(time.monotonic() + 60)
        for worker in workers:
            worker.kill()
            worker.wait()
        for log in logs:
            log.close()
