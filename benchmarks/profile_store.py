"""The storage lifecycle at the store level, for before/after comparisons of the SQL store.

N runs, each: inserted queued with its two creation entries (what ``create(execute=True)``
writes), claimed in batches of 16, given two log lines (``append_logs`` fenced by the
lease), completed (a fenced compare-and-set ``update`` with its status entry). Mode
``many`` completes each claimed batch with one ``update_many``.

    python -m benchmarks.profile_store [--n 2000] [--pg URL] [--sqlite-only] [--profile]

Prints runs/s, create/s, drain/s, statements and write transactions per run. The machine
is noisy: compare figures from the same invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import sqlalchemy as sa

from runkit import Lease, NewLogEntry, Run, Status
from runkit.storage.base import Update, fence_expect, status_entry
from runkit.storage.sql.store import SqlStore

from ._runkit import count_statements

BATCH = 16
LEASE = timedelta(minutes=5)
DEFAULT_PG = os.environ.get("RUNKIT_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _new_run(now: datetime) -> tuple[Run, list[NewLogEntry]]:
    run = Run(id=uuid4(), kind="bench_noop", status=Status.QUEUED, created_at=now, updated_at=now)
    entries = [
        status_entry(None, Status.PENDING, "created", "system", now),
        status_entry(Status.PENDING, Status.QUEUED, "execute", "system", now),
    ]
    return run, entries


def _completion(run: Run, now: datetime) -> Update:
    lease = Lease(run.id, run.attempt, run.lease_token or "")
    changes: dict[str, Any] = {
        "status": Status.SUCCEEDED,
        "result": {},
        "completed_at": now,
        "updated_at": now,
        "deadline_at": None,
        "lease_token": None,
    }
    note = status_entry(run.status, Status.SUCCEEDED, "completed", run.worker_id, now, run.attempt)
    return Update(run.id, fence_expect(lease), changes, [note])


async def lifecycle(store: SqlStore, n: int, mode: str) -> dict[str, float]:
    lines = [NewLogEntry("line 1"), NewLogEntry("line 2")]
    with count_statements(store.engine) as counts:
        t0 = time.perf_counter()
        for _ in range(n):
            run, entries = _new_run(datetime.now(UTC))
            await store.insert(run, entries)
        t1 = time.perf_counter()
        done = 0
        while done < n:
            runs = await store.claim("w", BATCH, now=datetime.now(UTC), lease=LEASE)
            if not runs:
                break
            updates = []
            for run in runs:
                lease = Lease(run.id, run.attempt, run.lease_token or "")
                assert await store.append_logs(run.id, lines, fence=lease) is not None
                updates.append(_completion(run, datetime.now(UTC)))
            if mode == "many":
                results = await store.update_many(updates)
            else:
                results = [
                    await store.update(u.run_id, u.expect, u.changes, u.entries) for u in updates
                ]
            assert all(r is not None for r in results)
            done += len(runs)
        t2 = time.perf_counter()
    assert done == n, (done, n)
    return {
        "runs/s": n / (t2 - t0),
        "create/s": n / (t1 - t0),
        "drain/s": n / (t2 - t1),
        "stmts/run": counts.statements / n,
        "tx/run": counts.write_transactions / n,
    }


async def _reset_pg(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS runkit_profile CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA runkit_profile")
    engine.dispose()


async def run_one(backend: str, url: str, n: int, mode: str) -> dict[str, float]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            store = SqlStore(f"sqlite:///{tmp}/p.db", create_schema=True)
            async with store:
                return await lifecycle(store, n, mode)
    await _reset_pg(url)
    engine = sa.create_engine(
        url, connect_args={"options": "-c search_path=runkit_profile"}, pool_size=8
    )
    try:
        async with SqlStore(engine, create_schema=True) as store:
            return await lifecycle(store, n, mode)
    finally:
        engine.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--pg-only", action="store_true")
    parser.add_argument("--mode", choices=["one", "many", "both"], default="both")
    parser.add_argument("--profile", action="store_true", help="cProfile the first case")
    args = parser.parse_args()
    backends = ["sqlite", "postgresql"]
    if args.sqlite_only:
        backends = ["sqlite"]
    if args.pg_only:
        backends = ["postgresql"]
    modes = ["one", "many"] if args.mode == "both" else [args.mode]
    for backend in backends:
        for mode in modes:
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
            figures = await run_one(backend, args.pg, args.n, mode)
            if args.profile:
                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(35)
            shown = "  ".join(f"{k} {v:,.1f}" for k, v in figures.items())
            print(f"{backend:10} {mode:4}  {shown}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
