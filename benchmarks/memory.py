"""Issue #16: memory targets.

**Worker RSS flat over 100,000 runs** (``memory-worker-sqlite``, ``memory-worker-pg``):
one ``runkit worker`` process (the CLI, concurrency 16, test kind ``emit_logs`` with
``count: 2``) on a fresh SQLite file and on a fresh PostgreSQL database executes N no-op
runs of two log lines each (full 100,000, smoke 5,000). They are created one at a time
through ``Runkit.create(execute=True)`` by a producer process (``_memory_producer``) that
stays at most 2,000 runs ahead of the succeeded ones, so the worker is in a steady state
throughout. This process reads the number of succeeded runs and the worker's ``VmRSS``
(``/proc/<pid>/status``) every 0.25 s and keeps the first reading at or past every tenth
of N (10,000 runs in full). Target: the RSS after N within 10 % of the RSS after the first
tenth (the warm figure): ``rss_N / rss_N/10 <= 1.10``. Every run must succeed on its
first attempt with its 6 log entries.

**SSE API process under 200 MB** (``memory-sse-pg``): the API alone (uvicorn, one worker,
core 0, ``_http_server streams``: no worker in it, stream caps raised) on PostgreSQL; R
runs created and claimed by this process, one SSE client per run (``_memory_clients``, one
process, core 1) following ``GET /api/v1/action-runs/{id}/logs/stream``; this process
appends E entries to each run through ``append_logs`` (full R = 100, E = 10,000: 1,000,000
entries; smoke 10 x 10,000), round robin over the runs in batches of 100, as fast as it
goes (the worst case for memory: every run's shared tail keeps its full window of ready
frames), then completes the runs, which ends the streams. The server hears of the entries
the way it hears of a worker's: by PostgreSQL notification from another process. Its
``VmRSS`` is sampled every 0.1 s from before the streams open to after they close; the
figure is the peak (the larger of the sampled peak and the kernel's ``VmHWM``). Target:
peak < 200 MB. Every client must receive every entry of its run exactly once (ids
consecutive up to the run's last entry, E benchmark lines, the end event): anything else
is an error.

Both are single passes (no repetition: a pass is the measurement over time). Smoke mode
reports the targets without judging them: small passes end before memory settles.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa

from . import _harness as h
from ._memory_proc import hwm_mb, rss_mb
from ._runkit import check_runs, prepare_schema

DATABASE = "bench_memory"
CONCURRENCY = 16
#: The producer stays at most this many runs ahead of the succeeded ones.
BACKLOG = 2000
POLL = 0.25
RSS_RATIO_TARGET = 1.10
SMOKE_NOTE = " (full size; smoke: reported)"


# --------------------------------------------------------------------------- processes ---
def _runkit_command() -> list[str]:
    runkit_bin = Path(sys.executable).with_name("runkit")
    return [str(runkit_bin)] if runkit_bin.exists() else [sys.executable, "-m", "runkit"]


def _spawn(command: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """A child whose output goes to ``log`` (a file: a pipe nobody reads could fill up
    over a long pass and stall the child)."""
    env = {**os.environ, "RUNKIT_ENABLE_TEST_KINDS": "1"}
    return subprocess.Popen(command, cwd=h.ROOT.parent, env=env, stdout=log, stderr=log)


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(log: IO[bytes]) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode(errors="replace")[-1500:]


def _succeeded(engine: sa.Engine) -> int | None:
    """Runs succeeded so far; None when the read failed (a connection dropped under us:
    the next poll reconnects)."""
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text("SELECT count(*) FROM runkit_runs WHERE status = 'succeeded'")
                ).scalar_one()
            )
    except sa.exc.OperationalError:
        return None


# --------------------------------------------------------------------------- one pass ----
def worker_pass(url: str, n: int, step: int, timeout: float) -> dict[str, Any]:
    """One worker process executes ``n`` runs a producer process creates; the worker's RSS
    at start, at every ``step`` succeeded runs, and at the end."""
    errors: list[str] = []
    samples: list[dict[str, float]] = []
    engine = sa.create_engine(url, pool_pre_ping=True)
    failed_polls = 0
    with tempfile.TemporaryFile() as wlog, tempfile.TemporaryFile() as plog:
        worker = _spawn(
            [*_runkit_command(), "worker", "--database", url, "--concurrency", str(CONCURRENCY)],
            wlog,
        )
        producer: subprocess.Popen[bytes] | None = None
        try:
            time.sleep(1.5)  # import, open the store, start listening: no readiness signal
            if worker.poll() is not None:
                raise RuntimeError(f"runkit worker exited with {worker.returncode}: {_tail(wlog)}")
            rss_start = rss_mb(worker.pid)
            producer = _spawn(
                [sys.executable, "-m", "benchmarks._memory_producer", url, str(n), str(BACKLOG)],
                plog,
            )
            start = time.monotonic()
            mark = step
            done = 0
            while True:
                polled = _succeeded(engine)
                if polled is None:
                    failed_polls += 1
                else:
                    done = polled
                rss = rss_mb(worker.pid)
                elapsed = time.monotonic() - start
                while done >= mark and mark <= n:
                    samples.append({"mark": mark, "runs": done, "rss_mb": rss, "t_s": elapsed})
                    mark += step
                if done >= n:
                    break
                if worker.poll() is not None:
                    errors.append(f"worker exited with {worker.returncode}: {_tail(wlog)}")
                    break
                if producer.poll() not in (None, 0):
                    errors.append(f"producer exited with {producer.returncode}: {_tail(plog)}")
                    break
                if elapsed > timeout:
                    errors.append(f"timeout: {done} of {n} runs succeeded after {elapsed:.0f} s")
                    break
                time.sleep(POLL)
            seconds = time.monotonic() - start
            peak = hwm_mb(worker.pid)
            time.sleep(2.0)  # idle: what the worker keeps once the work is done
            rss_idle_after = rss_mb(worker.pid)
            if done >= n and producer.wait(30) != 0:
                errors.append(f"producer exited with {producer.returncode}: {_tail(plog)}")
        finally:
            if producer is not None:
                _stop(producer)
            _stop(worker)
            engine.dispose()
    errors += check_runs(url, n)
    first = samples[0]["rss_mb"] if samples else float("nan")
    last = samples[-1]["rss_mb"] if len(samples) * step >= n else float("nan")
    return {
        "samples": samples,
        "rss_start_mb": rss_start,
        "rss_first_mb": first,
        "rss_last_mb": last,
        "ratio": last / first,
        "hwm_mb": peak,
        "rss_idle_after_mb": rss_idle_after,
        "runs_per_s": n / seconds,
        "failed_polls": failed_polls,
        "seconds": seconds,
        "errors": errors,
    }


def _fresh(backend: str, stack: Any) -> str:
    if backend == "pg":
        h.fresh_database(DATABASE)
        url = h.url(DATABASE)
    else:
        path = stack.enter_context(h.fresh_sqlite("memory"))
        url = f"sqlite:///{path}"
    asyncio.run(prepare_schema(url))
    return url


def run_workers(ctx: h.Context) -> None:
    from contextlib import ExitStack

    n = ctx.size(100_000, 5_000)
    step = n // 10
    ctx.say(f"worker RSS: {n:,} runs through one `runkit worker` (concurrency {CONCURRENCY})")
    backends = ["sqlite", *(["pg"] if h.pg_available() else [])]
    for backend in backends:
        with ExitStack() as stack:
            url = _fresh(backend, stack)
            f = worker_pass(url, n, step, timeout=ctx.size(3600, 600))
        ratio = f["ratio"]
        target = f"<= {RSS_RATIO_TARGET:.2f}" + (SMOKE_NOTE if ctx.smoke else "")
        met = None if ctx.smoke or ratio != ratio else ratio <= RSS_RATIO_TARGET
        ctx.add(
            h.Result(
                f"memory-worker-{backend}",
                "runkit worker x1",
                f"RSS at {n:,} runs / at {step:,}",
                value=ratio,
                unit="x",
                baseline=f"RSS after {step:,} runs (warm)",
                baseline_value=f["rss_first_mb"],
                target=target,
                met=met,
                extra={
                    "rss_mb_by_runs": {
                        s["mark"]: [int(s["runs"]), round(s["rss_mb"], 1)] for s in f["samples"]
                    },
                    **{
                        k: round(v, 2)
                        for k, v in f.items()
                        if isinstance(v, float) and k not in ("ratio",)
                    },
                    "concurrency": CONCURRENCY,
                    "producer_backlog": BACKLOG,
                },
                errors=f["errors"],
            )
        )
        ctx.say(
            "    RSS (MB) by runs: "
            + ", ".join(f"{s['runs']:,.0f}: {s['rss_mb']:.1f}" for s in f["samples"])
            + f"; start {f['rss_start_mb']:.1f}, peak {f['hwm_mb']:.1f}, "
            f"{f['runs_per_s']:.0f} runs/s"
        )


# --------------------------------------------------------------------------- family ------
def run(ctx: h.Context, parts: tuple[str, ...] = ("worker", "sse")) -> None:
    # The producer's Runkit must know the worker's kind (emit_logs) too.
    os.environ["RUNKIT_ENABLE_TEST_KINDS"] = "1"
    if "worker" in parts:
        run_workers(ctx)
    if "sse" in parts:
        from ._memory_sse import run_sse

        run_sse(ctx)


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.memory [--smoke] [worker|sse ...]``: alone, or one part."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m benchmarks.memory")
    parser.add_argument("--smoke", action="store_true", help="small sizes")
    parser.add_argument("parts", nargs="*", help="worker, sse (default: both)")
    args = parser.parse_args(argv)
    if unknown := set(args.parts) - {"worker", "sse"}:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    ctx = h.Context(smoke=args.smoke, reps=1)
    run(ctx, tuple(args.parts) or ("worker", "sse"))
    for result in ctx.results:
        print(f"  {result.scenario} / {result.system}: {result.extra}")


if __name__ == "__main__":
    main()
