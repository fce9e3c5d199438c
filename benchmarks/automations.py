"""Durable waits: ``call_automation`` runs through one ``runkit worker`` process.

Automations (A): N ``call_automation`` runs in ``sequence`` mode, each of
:data:`STEPS` steps of the test kind ``noop`` (``RUNKIT_ENABLE_TEST_KINDS=1``), created one
at a time with ``execute=True`` on a fresh PostgreSQL database, drained by one
``runkit worker`` process of concurrency :data:`CONCURRENCY`. Each step is a child run; the
parent waits for it holding no worker (status ``waiting``) and the child's terminal move
wakes it (back to ``queued``), so a parent is executed ``STEPS + 1`` times. Steps/s =
``N * STEPS`` / (first create -> last parent's ``completed_at``); parents/s beside it.

Flat (B), the baseline, measured first in the same repetition: the same ``N * STEPS``
``noop`` runs created one at a time with no parent, drained by the same kind of worker
process; steps/s the same way. The ratio is automations / flat.

Wake-up latency, read from runkit's tables after the pass: for each ``status.changed``
entry of a parent to ``queued`` with a reason starting ``children done``, the time from the
``completed_at`` of the parent's child that finished last before it to the entry's
``occurred_at`` (both written by the worker process's clock). Also to the parent's next
claim (``status.changed`` to ``running``): the wake plus the wait in the queue.

Correct when every parent succeeded with exactly :data:`STEPS` children, every child
succeeded on its first attempt; otherwise the result carries errors (exit status 1).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from . import _harness as h
from ._runkit import prepare_schema
from .e2e import stop_workers

KIND = "call_automation"
STEP_KIND = "noop"
STEPS = 5
CONCURRENCY = 10
DATABASE = "bench_runkit"
#: Automations per measured pass (full mode), and in the warm-up pass.
AUTOMATIONS = 1000
WARMUP = 20
WAKE_REASON = "children done"


def definition(steps: int = STEPS) -> dict[str, Any]:
    return {
        "mode": "sequence",
        "inputs": {},
        "steps": [
            {"name": f"step{i}", "kind": STEP_KIND, "definition": {}, "continueOnError": False}
            for i in range(steps)
        ],
    }


# --------------------------------------------------------------------------- processes ---
def start_worker(url: str) -> subprocess.Popen[bytes]:
    """One ``runkit worker`` process (test kinds on) of concurrency :data:`CONCURRENCY`."""
    runkit_bin = Path(sys.executable).with_name("runkit")
    command = [str(runkit_bin)] if runkit_bin.exists() else [sys.executable, "-m", "runkit"]
    env = {**os.environ, "RUNKIT_ENABLE_TEST_KINDS": "1"}
    # A file, not a pipe: a pass lasts minutes, and a full pipe would stall the worker.
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [*command, "worker", "--database", url, "--concurrency", str(CONCURRENCY)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        time.sleep(1.5)  # import, open the store, start LISTEN: no readiness signal exists
        if proc.poll() is not None:
            stderr.seek(0)
            err = stderr.read().decode(errors="replace")
            raise RuntimeError(f"runkit worker exited with {proc.returncode}: {err[-2000:]}")
    return proc


def _runkit(url: str) -> Any:
    """The creating Runkit: built-in kinds (call_automation) and the test kinds (noop)."""
    import runkit
    from runkit.storage.sql.store import SqlStore

    return runkit.Runkit(SqlStore(url), autoload_plugins=False)


def _sql(query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(h.dsn(DATABASE), autocommit=True) as conn:
        return conn.execute(query, params).fetchall()


_FINISHED = (
    "SELECT count(*), max(completed_at) FROM runkit_runs"
    " WHERE kind = %s AND parent_action_run_id IS NULL AND status = 'succeeded'"
)


def _finished(kind: str) -> tuple[int, datetime | None]:
    [(done, last)] = _sql(_FINISHED, kind)
    return done, last


# --------------------------------------------------------------------------- one pass ----
async def _create_and_drain(
    url: str, kind: str, spec: dict[str, Any], n: int, timeout: float
) -> dict[str, Any]:
    """Start the worker, create ``n`` runs of ``kind`` one at a time, wait until all
    succeeded (or ``timeout``); the creates' wall-clock start and the worker's CPU."""
    worker = start_worker(url)
    before = h.pg_counters(DATABASE)
    try:
        async with (
            _runkit(url) as rk,
            await psycopg.AsyncConnection.connect(h.dsn(DATABASE), autocommit=True) as poll,
        ):
            cpu0 = h.process_cpu_seconds([worker.pid])
            start_wall = time.time()
            for _ in range(n):
                await rk.create(kind, spec, execute=True)
            created_s = time.time() - start_wall
            deadline = time.monotonic() + timeout
            while True:
                cursor = await poll.execute(_FINISHED, [kind])
                done, _ = await cursor.fetchone() or (0, None)
                if done >= n or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
            cpu = h.process_cpu_seconds([worker.pid]) - cpu0
    finally:
        stop_workers([worker])
    # Every connection of the pass is closed now, so its commits are counted.
    after = h.pg_counters(DATABASE)
    done, last = _finished(kind)
    elapsed = _utc(last).timestamp() - start_wall if last is not None else float("nan")
    return {
        "done": done,
        "elapsed": elapsed,
        "create_s": created_s,
        "worker_cpu_s": cpu,
        "commits": after["xact_commit"] - before["xact_commit"],
        "wal_bytes": after["wal_bytes"] - before["wal_bytes"],
    }


def _flat_pass(n_steps: int, timeout: float) -> dict[str, Any]:
    h.fresh_database(DATABASE)
    url = h.url(DATABASE)
    asyncio.run(prepare_schema(url))
    out = asyncio.run(_create_and_drain(url, STEP_KIND, {}, n_steps, timeout))
    errors = _check_flat(n_steps)
    elapsed = out["elapsed"]
    return {
        "flat_steps_per_s": out["done"] / elapsed if elapsed else 0.0,
        "flat_elapsed_s": elapsed,
        "flat_worker_cpu_ms_per_step": out["worker_cpu_s"] * 1000 / max(n_steps, 1),
        "flat_commits_per_step": out["commits"] / max(n_steps, 1),
        "flat_wal_kb_per_step": out["wal_bytes"] / 1024 / max(n_steps, 1),
        "errors": [f"flat: {e}" for e in errors],
    }


def _automation_pass(n: int, timeout: float) -> dict[str, Any]:
    h.fresh_database(DATABASE)
    url = h.url(DATABASE)
    asyncio.run(prepare_schema(url))
    out = asyncio.run(_create_and_drain(url, KIND, definition(), n, timeout))
    errors = _check_automations(n)
    wakes, claims, parent_attempts = _wake_latencies()
    elapsed = out["elapsed"]
    wake = h.latency_summary(wakes)
    claim = h.latency_summary(claims)
    return {
        "steps_per_s": out["done"] * STEPS / elapsed if elapsed else 0.0,
        "parents_per_s": out["done"] / elapsed if elapsed else 0.0,
        "elapsed_s": elapsed,
        "create_s": out["create_s"],
        "worker_cpu_ms_per_step": out["worker_cpu_s"] * 1000 / max(n * STEPS, 1),
        "commits_per_step": out["commits"] / max(n * STEPS, 1),
        "wal_kb_per_step": out["wal_bytes"] / 1024 / max(n * STEPS, 1),
        "log_entries_per_automation": _log_entries() / max(n, 1),
        "wakes": wake["n"],
        "wake_p50_ms": wake["p50_ms"],
        "wake_p99_ms": wake["p99_ms"],
        "wake_min_ms": min(wakes, default=float("nan")),
        "wake_max_ms": wake["max_ms"],
        "reclaim_p50_ms": claim["p50_ms"],
        "reclaim_p99_ms": claim["p99_ms"],
        "parent_executions_per_parent": parent_attempts,
        "errors": errors,
    }


def _once(n: int, timeout: float) -> dict[str, Any]:
    """One repetition: the flat baseline first, then the automations, each on a fresh
    database with its own worker process."""
    flat = _flat_pass(n * STEPS, timeout)
    auto = _automation_pass(n, timeout)
    flat_rate = flat["flat_steps_per_s"]
    ratio = auto["steps_per_s"] / flat_rate if flat_rate else 0.0
    return {**flat, **auto, "pass_ratio": ratio, "errors": flat["errors"] + auto["errors"]}


# --------------------------------------------------------------------------- checks ------
def _check_flat(expected: int) -> list[str]:
    [(total, done, attempts)] = _sql(
        "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'),"
        " coalesce(max(attempt), 0) FROM runkit_runs"
    )
    errors = []
    if total != expected:
        errors.append(f"{total} runs stored, {expected} created")
    if done != expected:
        errors.append(f"{done} of {expected} runs succeeded (lost runs)")
    if attempts > 1:
        errors.append(f"a run was executed {attempts} times (duplicate execution)")
    return errors


def _check_automations(n: int) -> list[str]:
    """Every parent succeeded with exactly STEPS children, each succeeded once."""
    errors: list[str] = []
    [(parents, parents_ok)] = _sql(
        "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM runkit_runs"
        " WHERE parent_action_run_id IS NULL"
    )
    if parents != n:
        errors.append(f"{parents} parents stored, {n} created")
    if parents_ok != n:
        errors.append(f"{parents_ok} of {n} parents succeeded")
    [(children, children_ok, attempts, foreign)] = _sql(
        "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'),"
        " coalesce(max(attempt), 0), count(*) FILTER (WHERE kind <> %s)"
        " FROM runkit_runs WHERE parent_action_run_id IS NOT NULL",
        STEP_KIND,
    )
    if children != n * STEPS:
        errors.append(f"{children} children stored, expected {n * STEPS}")
    if children_ok != children:
        errors.append(f"{children_ok} of {children} children succeeded")
    if attempts > 1:
        errors.append(f"a child was executed {attempts} times (duplicate execution)")
    if foreign:
        errors.append(f"{foreign} children of a kind other than {STEP_KIND}")
    [(wrong,)] = _sql(
        "SELECT count(*) FROM runkit_runs p WHERE p.parent_action_run_id IS NULL AND"
        " (SELECT count(*) FROM runkit_runs c WHERE c.parent_action_run_id = p.id) <> %s",
        STEPS,
    )
    if wrong:
        errors.append(f"{wrong} parents without exactly {STEPS} children")
    [(bad_results,)] = _sql(
        "SELECT count(*) FROM runkit_runs WHERE parent_action_run_id IS NULL"
        " AND status = 'succeeded' AND json_array_length(result -> 'steps') <> %s",
        STEPS,
    )
    if bad_results:
        errors.append(f"{bad_results} parents' results do not list {STEPS} steps")
    return errors


def _log_entries() -> int:
    [(count,)] = _sql(
        "SELECT count(*) FROM runkit_logs l JOIN runkit_runs r ON r.seq = l.run_seq"
        " WHERE r.parent_action_run_id IS NULL"
    )
    return int(count)


def _wake_latencies() -> tuple[list[float], list[float], float]:
    """(child done -> parent queued, child done -> parent running again) in ms, one per
    wake, and the mean number of executions (attempts) per parent."""
    children: dict[Any, list[datetime]] = defaultdict(list)
    for parent, completed in _sql(
        "SELECT parent_action_run_id, completed_at FROM runkit_runs"
        " WHERE parent_action_run_id IS NOT NULL AND completed_at IS NOT NULL"
    ):
        children[parent].append(completed)
    entries: dict[Any, list[tuple[str, str | None, datetime]]] = defaultdict(list)
    for run_id, to, reason, occurred in _sql(
        "SELECT r.id, l.data ->> 'to', l.data ->> 'reason', l.occurred_at"
        " FROM runkit_logs l JOIN runkit_runs r ON r.seq = l.run_seq"
        " WHERE r.parent_action_run_id IS NULL AND l.event = 'status.changed'"
        " AND l.data ->> 'to' IN ('queued', 'running') ORDER BY l.run_seq, l.seq"
    ):
        entries[run_id].append((to, reason, occurred))
    wakes: list[float] = []
    claims: list[float] = []
    for parent, log in entries.items():
        done = sorted(children.get(parent, []))
        for i, (to, reason, occurred) in enumerate(log):
            if to != "queued" or not (reason or "").startswith(WAKE_REASON):
                continue
            before = [c for c in done if c <= occurred]
            if not before:
                continue
            child_done = before[-1]
            wakes.append((occurred - child_done).total_seconds() * 1000)
            claim = next((e for e in log[i + 1 :] if e[0] == "running"), None)
            if claim is not None:
                claims.append((claim[2] - child_done).total_seconds() * 1000)
    [(attempts,)] = _sql(
        "SELECT coalesce(avg(attempt), 0) FROM runkit_runs WHERE parent_action_run_id IS NULL"
    )
    return wakes, claims, float(attempts)


# --------------------------------------------------------------------------- scenario ----
def _repeat(ctx: h.Context, n: int, timeout: float) -> dict[str, Any]:
    """:func:`h.repeat`, with a short warm-up (full mode): a measured pass takes minutes and
    starts on a fresh database with a fresh worker process, so a full-size warm-up would
    add minutes and warm nothing the small one does not."""
    if ctx.warmup:
        _once(WARMUP, timeout)
    runs = []
    for i in range(ctx.repetitions):
        runs.append(figures := _once(n, timeout))
        ctx.say(
            f"  pass {i + 1}: flat {figures['flat_steps_per_s']:.0f} steps/s, automations"
            f" {figures['steps_per_s']:.1f} steps/s in {figures['elapsed_s']:.0f} s"
            f" (ratio {figures['pass_ratio']:.3f}), wake-up"
            f" p50 {_ms(figures['wake_p50_ms'])} p99 {_ms(figures['wake_p99_ms'])}"
        )
    out: dict[str, Any] = {"errors": [e for r in runs for e in r["errors"]]}
    for key in runs[-1]:
        if key != "errors":
            out[key] = h.Stats.of([float(r[key]) for r in runs])
    return out


def _medians(figures: dict[str, Any], keep: Any) -> dict[str, float]:
    return {k: v.median for k, v in figures.items() if isinstance(v, h.Stats) and keep(k)}


def run(ctx: h.Context) -> None:
    scenario = "automations-pg"
    if not h.pg_available():
        ctx.add(h.Result(scenario, "runkit", "steps/s", skipped="PostgreSQL unreachable"))
        return
    # The creating Runkit must know the step kind (noop, a test kind) too.
    os.environ["RUNKIT_ENABLE_TEST_KINDS"] = "1"
    n = ctx.size(AUTOMATIONS, 20)
    timeout = ctx.size(900, 120)
    ctx.say(
        f"automations: {n} call_automation runs of {STEPS} {STEP_KIND} steps (sequence),"
        f" beside {n * STEPS} flat {STEP_KIND} runs; one runkit worker process,"
        f" concurrency {CONCURRENCY}, PostgreSQL"
    )
    figures = _repeat(ctx, n, timeout)
    flat = figures["flat_steps_per_s"]
    ctx.add(
        h.Result(
            scenario,
            f"flat {STEP_KIND} runs",
            "steps/s",
            stats=flat,
            unit="steps/s",
            extra={
                "runs": n * STEPS,
                **{
                    k.removeprefix("flat_"): v
                    for k, v in _medians(figures, lambda k: k.startswith("flat_")).items()
                    if k != "flat_steps_per_s"
                },
            },
            errors=[e for e in figures["errors"] if e.startswith("flat:")],
        )
    )
    mine = figures["steps_per_s"]
    ctx.add(
        h.Result(
            scenario,
            f"call_automation x{STEPS} steps",
            "steps/s",
            stats=mine,
            unit="steps/s",
            baseline="flat",
            baseline_value=flat.median,
            ratio=mine.median / flat.median if flat.median else None,
            ratio_key=f"{scenario}.steps_vs_flat",
            extra={
                "automations": n,
                **_medians(figures, lambda k: not k.startswith(("flat_", "steps_per_s"))),
            },
            errors=[e for e in figures["errors"] if not e.startswith("flat:")],
        )
    )
    ctx.add(
        h.Result(
            scenario,
            "parent wake-up",
            "child done -> parent queued p50",
            stats=figures["wake_p50_ms"],
            unit="ms",
            extra={
                "p99_ms": figures["wake_p99_ms"].median,
                "min_ms": figures["wake_min_ms"].median,
                "max_ms": figures["wake_max_ms"].median,
                "wakes": figures["wakes"].median,
                "to_running_p50_ms": figures["reclaim_p50_ms"].median,
                "to_running_p99_ms": figures["reclaim_p99_ms"].median,
            },
        )
    )
    ctx.say(
        f"  wake-up p99 {_ms(figures['wake_p99_ms'].median)}"
        f" (min {_ms(figures['wake_min_ms'].median)});"
        f" child done -> parent running again p50 {_ms(figures['reclaim_p50_ms'].median)},"
        f" p99 {_ms(figures['reclaim_p99_ms'].median)}"
    )
    ctx.say(
        f"  per step: {figures['commits_per_step'].median:.1f} commits"
        f" (flat {figures['flat_commits_per_step'].median:.1f}),"
        f" worker CPU {figures['worker_cpu_ms_per_step'].median:.1f} ms"
        f" (flat {figures['flat_worker_cpu_ms_per_step'].median:.1f}),"
        f" WAL {figures['wal_kb_per_step'].median:.1f} kB"
        f" (flat {figures['flat_wal_kb_per_step'].median:.1f});"
        f" {figures['parent_executions_per_parent'].median:.2f} executions and"
        f" {figures['log_entries_per_automation'].median:.0f} log entries per automation"
    )


def _ms(value: float) -> str:
    return f"{value:,.1f} ms"


def _utc(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
