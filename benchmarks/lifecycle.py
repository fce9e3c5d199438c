"""Issue #2, storage lifecycle (the storage part of S1/S2).

N no-op runs, each: created with ``execute=True`` (one at a time, as the public API does),
claimed in batches of B, given two log lines, completed; each claimed batch is finished with
one ``Runkit.report`` carrying the runs' log lines, as a worker's completion buffer does.
Sequential phases in one process and one connection's worth of concurrency: create all,
then drain. The same lifecycle as
raw SQL through the same driver (``_raw``) gives the anchors:

* B-SQ-2 / B-PG-2: unbatched, three commits per run;
* B-SQ-3 / B-PG-3: claims and completions of B runs per transaction (``1 + 2/B`` commits).

Reported: runs/s (first create to last completion), create/s, drain/s, write transactions
per run (client-side count), on PostgreSQL also server commits per run (``xact_commit``,
which includes autocommit reads) and WAL bytes per run, and the ratio runkit / B-*-3
(target >= 0.60).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from . import _harness as h
from ._raw import RawPg, RawSqlite
from ._runkit import KIND, LINES, check_runs, count_statements, make_runkit, prepare_schema

#: Claim batch: what ``Worker(concurrency=16)`` claims at most (``min(concurrency, 50)``).
BATCH = 16
TARGET = 0.60


def _raw_lifecycle(store: RawSqlite | RawPg, n: int, batch: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    for _ in range(n):
        store.create()
    t1 = time.perf_counter()
    done = 0
    while done < n:
        claimed = store.claim(batch)
        if not claimed:
            break
        done += store.complete(claimed)
    t2 = time.perf_counter()
    return {"t_create": t1 - t0, "t_drain": t2 - t1, "done": done, "commits": store.commits}


async def _runkit_lifecycle(url: str, n: int, batch: int) -> dict[str, Any]:
    import runkit

    rk = make_runkit(url)
    async with rk:
        engine = rk.store.engine  # type: ignore[attr-defined]
        with count_statements(engine) as counts:
            t0 = time.perf_counter()
            for _ in range(n):
                await rk.create(KIND, {}, execute=True)
            t1 = time.perf_counter()
            done = 0
            while done < n:
                runs = await rk.ops.claim("w", batch)
                if not runs:
                    break
                # As a worker finishes a batch: each run's log lines ride with its outcome,
                # and the batch is one Runkit.report (one transaction), like B-*-3.
                reports = [
                    rk.ops.completion(
                        runkit.Lease(run.id, run.attempt, run.lease_token or ""),
                        {},
                        logs=[runkit.NewLogEntry(m) for m in LINES],
                        known=run,
                    )
                    for run in runs
                ]
                results = await rk.ops.report(reports)
                assert not any(isinstance(r, Exception) for r in results), results
                done += len(runs)
            t2 = time.perf_counter()
    return {
        "t_create": t1 - t0,
        "t_drain": t2 - t1,
        "done": done,
        "commits": counts.write_transactions,
        "statements": counts.statements,
    }


def _figures(raw: dict[str, Any], n: int) -> dict[str, Any]:
    total = raw["t_create"] + raw["t_drain"]
    out = {
        "runs_per_s": n / total,
        "create_per_s": n / raw["t_create"],
        "drain_per_s": n / raw["t_drain"] if raw["t_drain"] else float("nan"),
        "write_tx_per_run": raw["commits"] / n,
    }
    if "statements" in raw:
        out["statements_per_run"] = raw["statements"] / n
    return out


# --------------------------------------------------------------------------- SQLite ------
def _sqlite_raw(n: int, batch: int) -> Callable[[], dict[str, Any]]:
    def once() -> dict[str, Any]:
        with h.fresh_sqlite("raw") as path:
            store = RawSqlite(path)
            try:
                raw = _raw_lifecycle(store, n, batch)
            finally:
                store.close()
            out = _figures(raw, n)
            out["errors"] = check_runs(f"sqlite:///{path}", n)
        return out

    return once


def _sqlite_runkit(n: int, batch: int) -> Callable[[], dict[str, Any]]:
    def once() -> dict[str, Any]:
        with h.fresh_sqlite("runkit") as path:
            url = f"sqlite:///{path}"
            asyncio.run(prepare_schema(url))
            raw = asyncio.run(_runkit_lifecycle(url, n, batch))
            out = _figures(raw, n)
            out["errors"] = check_runs(url, n)
        return out

    return once


# --------------------------------------------------------------------------- PostgreSQL --
def _pg_measured(database: str, n: int, body: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    before = h.pg_counters(database)
    raw = body()
    after = h.pg_counters(database)
    out = _figures(raw, n)
    out["server_commits_per_run"] = (after["xact_commit"] - before["xact_commit"]) / n
    out["wal_bytes_per_run"] = (after["wal_bytes"] - before["wal_bytes"]) / n
    out["errors"] = check_runs(h.url(database), n)
    return out


def _pg_raw(n: int, batch: int) -> Callable[[], dict[str, Any]]:
    database = "bench_raw"

    def once() -> dict[str, Any]:
        conninfo = h.fresh_database(database)
        from ._raw import create_tables

        create_tables(h.url(database))

        def body() -> dict[str, Any]:
            store = RawPg(conninfo, h.url(database))
            try:
                return _raw_lifecycle(store, n, batch)
            finally:
                store.close()

        return _pg_measured(database, n, body)

    return once


def _pg_runkit(n: int, batch: int) -> Callable[[], dict[str, Any]]:
    database = "bench_runkit"

    def once() -> dict[str, Any]:
        h.fresh_database(database)
        url = h.url(database)
        asyncio.run(prepare_schema(url))
        return _pg_measured(database, n, lambda: asyncio.run(_runkit_lifecycle(url, n, batch)))

    return once


# --------------------------------------------------------------------------- scenario ----
def _report(
    ctx: h.Context,
    scenario: str,
    backend: str,
    unbatched: dict[str, Any],
    batched: dict[str, Any],
    mine: dict[str, Any],
) -> None:
    names = {"sqlite": ("B-SQ-2", "B-SQ-3"), "pg": ("B-PG-2", "B-PG-3")}[backend]
    for label, figures in ((names[0], unbatched), (f"{names[1]} (B={BATCH})", batched)):
        ctx.add(
            h.Result(
                scenario,
                label,
                "runs/s",
                stats=figures["runs_per_s"],
                unit="runs/s",
                extra=_extras(figures),
                errors=figures["errors"],
            )
        )
    anchor = batched["runs_per_s"].median
    ratio = mine["runs_per_s"].median / anchor
    ctx.add(
        h.Result(
            scenario,
            f"runkit (claim B={BATCH})",
            "runs/s",
            stats=mine["runs_per_s"],
            unit="runs/s",
            baseline=names[1],
            baseline_value=anchor,
            ratio=ratio,
            ratio_key=f"{scenario}.runkit_vs_batched",
            target=f">= {TARGET:.0%} of {names[1]}",
            met=ratio >= TARGET,
            extra={
                **_extras(mine),
                "ratio_vs_unbatched": mine["runs_per_s"].median / unbatched["runs_per_s"].median,
            },
            errors=mine["errors"],
        )
    )


def _extras(figures: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v.median if isinstance(v, h.Stats) else v)
        for k, v in figures.items()
        if k not in ("runs_per_s", "errors")
    }


def run(ctx: h.Context) -> None:
    n = ctx.size(5000, 500)
    ctx.say(f"lifecycle: {n} runs, claim batch {BATCH}, SQLite WAL+NORMAL (runkit's default)")
    unbatched = h.repeat(ctx, _sqlite_raw(n, 1))
    batched = h.repeat(ctx, _sqlite_raw(n, BATCH))
    mine = h.repeat(ctx, _sqlite_runkit(n, BATCH))
    _report(ctx, "lifecycle-sqlite", "sqlite", unbatched, batched, mine)

    if not h.pg_available():
        ctx.add(h.Result("lifecycle-pg", "runkit", "runs/s", skipped="PostgreSQL unreachable"))
        return
    ctx.say(f"lifecycle: {n} runs on PostgreSQL (durable: synchronous_commit as configured)")
    unbatched = h.repeat(ctx, _pg_raw(n, 1))
    batched = h.repeat(ctx, _pg_raw(n, BATCH))
    mine = h.repeat(ctx, _pg_runkit(n, BATCH))
    _report(ctx, "lifecycle-pg", "pg", unbatched, batched, mine)
