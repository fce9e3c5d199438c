"""Issue #3, end to end through real workers (S1, S2, S3-lite, S4).

Throughput (S1 SQLite, S2 PostgreSQL 1 process, S3-lite PostgreSQL 4 processes): N no-op
runs with two log lines each, created one at a time through ``Runkit.create(execute=True)``
while the workers run; runs/s from the first create to the last ``completed_at``. Workers
are either embedded (``runkit.engine.embedded_workers`` in the creating process, kind
``bench_noop``) or ``runkit worker`` processes (the CLI, kind ``emit_logs`` with
``count: 2`` from the test kinds, ``RUNKIT_ENABLE_TEST_KINDS=1``), concurrency 16 each.

Dispatch latency (S4): an idle system, one run every 20 ms (open loop: scheduled send
times), create committed -> executor start. Embedded: exact (``CLOCK_MONOTONIC`` in the
executor minus the moment ``create`` returned). Processes: the claim's ``started_at`` (wall
clock, written in the claim's transaction just before the executor starts) minus the wall
clock when ``create`` returned.

Cross-process wake-ups: the creating process's Runkit sends a coalesced NOTIFY on
PostgreSQL; on SQLite the workers watch ``PRAGMA data_version``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import AsyncExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import _harness as h
from ._runkit import KIND, check_runs, make_runkit, prepare_schema

CONCURRENCY = 16
CLI_KIND = "emit_logs"
CLI_DEFINITION = {"count": 2}
#: S4: one run every this many seconds.
INTERVAL = 0.020


# --------------------------------------------------------------------------- processes ---
def start_cli_workers(url: str, count: int) -> list[subprocess.Popen[bytes]]:
    """``runkit worker`` processes on ``url``; returns once each has claimed its place
    (its notification listener and pool are up: we wait for its first database session)."""
    runkit_bin = Path(sys.executable).with_name("runkit")
    command = [str(runkit_bin)] if runkit_bin.exists() else [sys.executable, "-m", "runkit"]
    env = {**os.environ, "RUNKIT_ENABLE_TEST_KINDS": "1"}
    procs = [
        subprocess.Popen(
            [*command, "worker", "--database", url, "--concurrency", str(CONCURRENCY)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]
    # Ready once each has registered (it does so just before its first claim): on a busy
    # machine four processes take longer than any fixed sleep to import and connect, and
    # runs created before then would count their wait against the workers.
    deadline = time.monotonic() + 60
    engine = sa.create_engine(url)
    try:
        while _registered(engine) < count:
            for p in procs:
                if p.poll() is not None:
                    err = p.stderr.read().decode() if p.stderr else ""
                    raise RuntimeError(f"runkit worker exited with {p.returncode}: {err[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{count} runkit workers did not register within 60 s")
            time.sleep(0.1)
    finally:
        engine.dispose()
    time.sleep(0.3)  # registered, then LISTEN starts with the first wait
    return procs


def _registered(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM runkit_workers")).scalar_one())


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _progress(url: str) -> tuple[int, datetime | None]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            done, last = conn.execute(
                sa.text(
                    "SELECT count(*), max(completed_at) FROM runkit_runs WHERE status = 'succeeded'"
                )
            ).one()
    finally:
        engine.dispose()
    if isinstance(last, str):  # SQLite keeps naive UTC text
        last = datetime.fromisoformat(last)
    return done, last


def _wall(ts: datetime | None) -> float:
    from datetime import UTC

    assert ts is not None
    return (ts if ts.tzinfo else ts.replace(tzinfo=UTC)).timestamp()


# --------------------------------------------------------------------------- one pass ----
async def _pass(
    url: str, mode: str, procs: int, n: int, paced: bool, timeout: float
) -> dict[str, Any]:
    """Create ``n`` runs (back to back, or one per INTERVAL when ``paced``) and wait until
    all succeeded. ``mode``: ``embedded`` or ``cli``."""
    from runkit.engine import embedded_workers

    kind, definition = (KIND, {}) if mode == "embedded" else (CLI_KIND, CLI_DEFINITION)
    workers: list[subprocess.Popen[bytes]] = []
    if mode == "cli":
        workers = start_cli_workers(url, procs)
    # Client CPU only: PostgreSQL backends of this pass start (and end) inside it, so a
    # before/after sample of backend pids cannot see them; server CPU needs a
    # pg_stat_statements or cluster-wide accounting (not done yet).
    client_pids = [os.getpid(), *(w.pid for w in workers)]
    cpu0 = h.process_cpu_seconds(client_pids)
    committed: dict[Any, tuple[int, float]] = {}
    create_ms: list[float] = []
    lateness_ms: list[float] = []
    try:
        async with AsyncExitStack() as stack:
            rk = await stack.enter_async_context(make_runkit(url))
            if mode == "embedded":
                await stack.enter_async_context(
                    embedded_workers(rk, concurrency=CONCURRENCY, grace_period=5.0)
                )
            start_wall = time.time()
            t0 = time.perf_counter()
            for i in range(n):
                if paced:
                    delay = t0 + i * INTERVAL - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    else:
                        lateness_ms.append(-delay * 1000)
                c0 = time.perf_counter()
                created = await rk.create(kind, definition, execute=True)
                committed[created.run.id] = (time.monotonic_ns(), time.time())
                create_ms.append((time.perf_counter() - c0) * 1000)
            deadline = time.monotonic() + timeout
            while True:
                page = await rk.list(status="succeeded", limit=1)
                if page.total >= n or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.02)
            cpu1 = h.process_cpu_seconds(client_pids)  # before the workers exit
            latencies = await _dispatch(rk, committed, mode)
    finally:
        stop_workers(workers)
    done, last = await asyncio.to_thread(_progress, url)
    elapsed = _wall(last) - start_wall if last else float("nan")
    return {
        "runs_per_s": done / elapsed if elapsed else 0.0,
        "create_p50_ms": h.percentile(create_ms, 0.5),
        "create_p99_ms": h.percentile(create_ms, 0.99),
        "dispatch_p50_ms": h.percentile(latencies, 0.5),
        "dispatch_p99_ms": h.percentile(latencies, 0.99),
        "dispatch_max_ms": max(latencies) if latencies else float("nan"),
        "late_sends": len(lateness_ms),
        "client_cpu_ms_per_run": (cpu1 - cpu0) * 1000 / max(n, 1),
        "errors": check_runs(url, n),
    }


async def _dispatch(rk: Any, committed: dict[Any, tuple[int, float]], mode: str) -> list[float]:
    """create-committed -> executor start (embedded, exact) or -> claim (cli), in ms."""
    out: list[float] = []
    for run_id, (mono_ns, wall) in committed.items():
        run = await rk.get(run_id)
        if mode == "embedded":
            started = (run.result or {}).get("started_ns")
            if started is not None:
                out.append((started - mono_ns) / 1e6)
        elif run.started_at is not None:
            out.append((run.started_at.timestamp() - wall) * 1000)
    return out


# --------------------------------------------------------------------------- scenario ----
def _fresh(backend: str, tag: str) -> tuple[str, Any]:
    """A fresh database (PostgreSQL) or file (SQLite) with runkit's schema."""
    if backend == "pg":
        h.fresh_database("bench_runkit")
        url = h.url("bench_runkit")
        cleanup = None
    else:
        cm = h.fresh_sqlite(tag)
        path = cm.__enter__()
        url = f"sqlite:///{path}"
        cleanup = cm
    asyncio.run(prepare_schema(url))
    return url, cleanup


def _once(backend: str, mode: str, procs: int, n: int, paced: bool) -> dict[str, Any]:
    url, cleanup = _fresh(backend, "e2e")
    try:
        timeout = 120.0 if not paced else n * INTERVAL + 30
        return asyncio.run(_pass(url, mode, procs, n, paced, timeout))
    finally:
        if cleanup is not None:
            cleanup.__exit__(None, None, None)


def _configs(ctx: h.Context) -> list[tuple[str, str, str, int]]:
    """(scenario, backend, mode, processes)."""
    out = [("S1-sqlite", "sqlite", "embedded", 0), ("S1-sqlite", "sqlite", "cli", 1)]
    if h.pg_available():
        out += [
            ("S2-pg", "pg", "embedded", 0),
            ("S2-pg", "pg", "cli", 1),
            ("S3lite-pg", "pg", "cli", 4),
        ]
    return out


def _label(mode: str, procs: int) -> str:
    return "runkit embedded" if mode == "embedded" else f"runkit worker x{procs}"


THROUGHPUT: dict[str, dict[str, Any]] = {}
"""Figures of this run's throughput passes, read by ``peers`` for its ratios."""


def run(ctx: h.Context) -> None:
    # The creating Runkit must know the CLI workers' kind (emit_logs) too.
    os.environ["RUNKIT_ENABLE_TEST_KINDS"] = "1"
    n = ctx.size(3000, 300)
    ctx.say(f"e2e throughput: {n} runs, concurrency {CONCURRENCY} per worker")
    for scenario, backend, mode, procs in _configs(ctx):
        figures = h.repeat(ctx, lambda b=backend, m=mode, p=procs: _once(b, m, p, n, False))
        label = _label(mode, procs)
        THROUGHPUT[f"{scenario}/{label}"] = figures
        ctx.add(
            h.Result(
                scenario,
                label,
                "runs/s",
                stats=figures["runs_per_s"],
                unit="runs/s",
                extra={
                    k: v.median
                    for k, v in figures.items()
                    if isinstance(v, h.Stats) and k != "runs_per_s" and "dispatch" not in k
                },
                errors=figures["errors"],
            )
        )

    seconds = ctx.size(5.0, 1.0)
    count = int(seconds / INTERVAL)
    ctx.say(f"dispatch latency (S4): {count} runs at one per {INTERVAL * 1000:.0f} ms, idle")
    for _, backend, mode, procs in _configs(ctx):
        if procs > 1:
            continue
        figures = h.repeat(ctx, lambda b=backend, m=mode, p=procs: _once(b, m, p, count, True))
        p50, p99 = figures["dispatch_p50_ms"], figures["dispatch_p99_ms"]
        target, met = _dispatch_target(backend, mode, p50.median, p99.median)
        ctx.add(
            h.Result(
                f"S4-{backend}",
                _label(mode, procs),
                "dispatch p50",
                stats=p50,
                unit="ms",
                target=target,
                met=met,
                extra={
                    "p99_ms": p99.median,
                    "max_ms": figures["dispatch_max_ms"].median,
                    "create_p50_ms": figures["create_p50_ms"].median,
                    "late_sends": figures["late_sends"],
                    "measured_to": "executor start" if mode == "embedded" else "claim",
                },
                errors=figures["errors"],
            )
        )


def _dispatch_target(backend: str, mode: str, p50: float, p99: float) -> tuple[str, bool]:
    if backend == "pg":
        return "p50 <= ~3 ms, p99 <= 10 ms", p50 <= 3.0 and p99 <= 10.0
    if mode == "embedded":
        return "p50 <= 1 ms (in-process)", p50 <= 1.0
    # The CLI worker polls SQLite every Worker.poll_interval (1 s by default).
    return "p50 <= P/2 + 1 ms (P = 1 s poll)", p50 <= 501.0
